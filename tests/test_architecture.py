"""geopool's import graph: no cycles anywhere, and the serving modes at the bottom.

Every import counts, including ``if TYPE_CHECKING:`` and function-level ones: a lazy import hides a cycle
from the interpreter, not from a reader, who still has to hold both modules in mind at once.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "geopool"


def _modules() -> dict[str, Path]:
    """Every module under geopool/ by dotted name (a package by its own name, for its ``__init__.py``)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _nearest(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its closest enclosing package that is one of geopool's modules (None: not geopool's)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The geopool modules ``module`` imports anywhere in its source, relative imports resolved and
    ``from package import submodule`` counted as the submodule."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (found := _nearest(alias.name, modules)) is not None:
                    yield found
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _nearest(base, modules)
                if found is not None:
                    yield found


def import_graph() -> dict[str, set[str]]:
    """Module → the geopool modules it imports (itself left out)."""
    modules = _modules()
    return {module: set(_imports(module, path, modules)) - {module} for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "geopool.load.run.plan" in graph["geopool.load.run.master"]
    # a function-level import (rasterio's module, only in image-to-image mode) is an edge too
    assert "geopool.load.run.io_payloads" in graph["geopool.load.run.worker"]
    # ``from geopool.load.judge import slo`` is an edge to the submodule, not only to its package
    assert "geopool.load.judge.slo" in graph["geopool.load.run.master"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_geopool_has_no_import_cycle():
    found = cycles(import_graph())
    assert found == [], "import cycles (every import counts, TYPE_CHECKING and function-level too): " + "; ".join(
        " <-> ".join(component) for component in found)


#: geopool.load's rooms, top to bottom (geopool/load/__init__.py): each imports only from rooms below it;
#: its own modules (scenario, schedule, records) are the floor.
LOAD_ROOMS = ("study", "run", "report", "judge")


def test_the_load_rooms_import_only_downwards():
    def room(module: str) -> int | None:
        parts = module.split(".")
        if parts[:2] != ["geopool", "load"] or len(parts) < 3:
            return None
        return LOAD_ROOMS.index(parts[2]) if parts[2] in LOAD_ROOMS else len(LOAD_ROOMS)

    upwards = sorted(f"{module} -> {imported}" for module, imports in import_graph().items() for imported in imports
                     if room(module) is not None and room(imported) is not None and room(imported) < room(module))
    assert upwards == [], f"geopool.load's rooms import only from the rooms below them: {upwards}"
    assert {path.name for path in (ROOT / "load").iterdir() if path.is_dir() and path.name != "__pycache__"} == \
        set(LOAD_ROOMS), "a new room of geopool.load goes into LOAD_ROOMS (and geopool/load/__init__.py's table)"


def test_the_serving_modes_module_imports_nothing_from_geopool():
    assert import_graph()["geopool.modes"] == set()
