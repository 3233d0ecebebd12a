"""pyproject.toml declares what the code imports: the client install (core dependencies) covers every
third-party import of geopool/, conformance/ and load/; torch, TerraTorch, torchvision and vLLM sit in
extras only and are imported lazily. No network: the files are parsed, nothing is installed."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {"geopool", "geopool_conformance", "geopool_load", "geopool_fixtures"}
#: Import name → distribution name, where they differ.
DISTRIBUTION = {"prometheus_client": "prometheus-client", "yaml": "pyyaml", "PIL": "pillow"}
#: The reference and server halves: never in the client install.
HEAVY = {"torch", "torchvision", "terratorch", "vllm"}
#: Modules that may import a heavy package at module level, because the client install never imports them.
#: Modules only a vLLM server imports (the IO-processor plugin's class, loaded by vLLM's plugin loader);
#: the client never does, and tests/test_io_plugin.py checks that the registration module stays import-free.
CLIENT_NEVER_IMPORTS: set[str] = {"geopool/i2i_plugin/processor.py"}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_normalized(Requirement(line).name) for line in requirements}


CORE = _names(PYPROJECT["project"]["dependencies"])
EXTRAS = {extra: _names(lines) for extra, lines in PYPROJECT["project"]["optional-dependencies"].items()}


def _sources() -> list[Path]:
    return sorted([*(ROOT / "geopool").rglob("*.py"), *(ROOT / "conformance").glob("*.py"),
                   *(ROOT / "load").glob("*.py")])


def _imports(source: str) -> list[tuple[str, bool]]:
    """(top-level module, imported at module level) for every absolute import in ``source`` and every
    ``import_optional("module", ...)``; imports in functions and under ``if TYPE_CHECKING:`` are not at
    module level."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name.split(".")[0], not lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.split(".")[0], not lazy))
            elif (isinstance(child, ast.Call) and ast.unparse(child.func).endswith("import_optional") and child.args
                  and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str)):
                found.append((child.args[0].value.split(".")[0], not lazy))  # geopool.errors.import_optional
            type_checking = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            visit(child, lazy or type_checking or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef |
                                                                       ast.Lambda))
    visit(ast.parse(source), False)
    return found


def _third_party() -> dict[str, list[tuple[str, bool]]]:
    """Third-party top-level module → [(importing file, at module level)]."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for path in _sources():
        for module, eager in _imports(path.read_text()):
            if module not in sys.stdlib_module_names and module not in FIRST_PARTY:
                found.setdefault(module, []).append((str(path.relative_to(ROOT)), eager))
    return found


def test_the_sources_are_found_and_parsed():
    assert len(_sources()) > 50
    assert {"numpy", "httpx", "locust"} <= set(_third_party())


def test_every_third_party_import_is_a_core_dependency_or_a_heavy_extra():
    missing = {module: sorted({where for where, _ in uses}) for module, uses in _third_party().items()
               if module not in HEAVY and _normalized(DISTRIBUTION.get(module, module)) not in CORE}
    assert missing == {}, "declare these in pyproject.toml's [project] dependencies"


def test_every_core_dependency_is_imported():
    imported = {_normalized(DISTRIBUTION.get(module, module)) for module in _third_party()}
    assert CORE - imported == set(), "a core dependency nothing imports: drop it, or say here why it stays"


def test_the_heavy_packages_are_only_in_extras():
    assert CORE & HEAVY == set()
    imported_heavy = set(_third_party()) & HEAVY
    assert imported_heavy <= EXTRAS["reference"] | {"vllm"}, "the numeric oracle's packages go in [reference]"
    assert {"torch", "torchvision", "terratorch"} <= EXTRAS["reference"] and EXTRAS["reference"] <= EXTRAS["server"]


def test_the_heavy_packages_are_imported_lazily():
    eager = sorted({where for module, uses in _third_party().items() if module in HEAVY
                    for where, at_module_level in uses if at_module_level} - CLIENT_NEVER_IMPORTS)
    assert eager == [], "import torch/terratorch/torchvision/vllm inside the function that needs it"


def test_laziness_is_detected():
    source = ("import torch\nif TYPE_CHECKING:\n    import vllm\ndef f():\n    from terratorch import x\n"
              "    y = import_optional('prometheus_client.parser', 'reading')\n")
    assert _imports(source) == [("torch", True), ("vllm", False), ("terratorch", False),
                                ("prometheus_client", False)]


@pytest.mark.parametrize("section", ["dependencies", *PYPROJECT["project"]["optional-dependencies"]])
def test_ranges_not_pins(section):
    lines = (PYPROJECT["project"]["dependencies"] if section == "dependencies"
             else PYPROJECT["project"]["optional-dependencies"][section])
    pinned = [line for line in lines if any(spec.operator in ("==", "===") for spec in Requirement(line).specifier)]
    assert pinned == [], "pin tested versions in requirements/constraints.txt, not in pyproject.toml"


def test_every_pin_of_the_constraints_is_a_declared_package():
    text = (ROOT / "requirements" / "constraints.txt").read_text()
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    pinned = {_normalized(Requirement(line).name) for line in lines if line}
    declared = CORE.union(*EXTRAS.values())
    assert pinned and pinned <= declared


def test_the_plugins_are_registered_under_their_module_names():
    entry_points = PYPROJECT["project"]["entry-points"]["pytest11"]
    assert entry_points == {"geopool.pytest_plugin": "geopool.pytest_plugin",
                            "geopool.conformance.plugin": "geopool.conformance.plugin"}
