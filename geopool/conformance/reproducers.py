"""Standalone reproducers: ``<REQ-ID>.py`` per failing requirement, a few KB, httpx + numpy only.

Each script holds its failing check's recipe (geopool.conformance.recipes: the request as a template,
what was expected, the target's URL and output shape) and embeds, as source, the functions it needs of
geopool.numpy_payloads (which geopool builds its own tensors with) and of the driver,
geopool.conformance.repro_script. Docstrings are left out to keep it small; the code is the modules'.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import tokenize
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from geopool import numpy_payloads
from geopool.conformance import repro_script

__all__ = ["REPRODUCED_OUTCOMES", "write_reproducers", "reproducer_source", "embedded_source"]

#: A script must fit in a bug report.
SIZE_LIMIT = 10_000
#: The outcomes that get a reproducer: failures, and the known defects users report upstream.
REPRODUCED_OUTCOMES = ("fail", "expected-fail")
#: Driver functions every script needs; the kind's ``judge_<kind>`` comes on top, and what it calls.
_DRIVER = ("post", "judge", "main")
#: The kinds of check that decode an answer's values (the others judge its status, headers or envelope).
_DECODING = ("answer", "finite", "close", "figures", "survives")
_IMPORTS = "\n".join(["import base64", "import io", "import json", "import os", "import sys", "import time",
                      "import uuid", "", "import httpx", "import numpy as np", ""])


def embedded_source(module: ModuleType, names: tuple[str, ...] | None = None) -> str:
    """The source of ``module``'s top-level functions (``names`` only, when given), without docstrings."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    parts = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef) or (names is not None and node.name not in names):
            continue
        text = lines[node.lineno - 1:node.end_lineno]
        doc = node.body[0]
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            del text[doc.lineno - node.lineno:doc.end_lineno - node.lineno + 1]
        parts.append(_without_comments("\n".join(text)))
    return "\n\n\n".join(parts)


def _without_comments(code: str) -> str:
    """``code`` without its comments (they explain the modules, where they stay; the script must be small)."""
    lines = code.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            lines[row - 1] = lines[row - 1][:column].rstrip()
    return "\n".join(line for line in lines if line.strip())


def _evidence_for(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The failing fact a reproducer is made from: the first that can be rebuilt and judged, else the first."""
    failing = [item for test in entry["tests"] if test["outcome"] in REPRODUCED_OUTCOMES
               for item in test["evidence"] if item.get("requirement") == entry["id"]]
    ranked = sorted(failing, key=lambda item: (not (item.get("repro") or {}).get("request"),
                                               not (item.get("repro") or {}).get("expect")))
    return ranked[0] if ranked else None


def reproducer_source(entry: dict[str, Any], evidence: dict[str, Any], target: dict[str, Any],
                      generated: str) -> str:
    """The script of one failing requirement (``entry`` of conformance.json, ``target`` its target): under
    :data:`SIZE_LIMIT`, the header's statement and message cut shorter if need be."""
    for cut in (160, 60, 0):
        source = _source(entry, evidence, target, generated, cut)
        if len(source.encode()) < SIZE_LIMIT:
            return source
    size = len(json.dumps(evidence.get("repro")))
    too_large = {"cannot": f"a request whose recipe ({size} bytes) does not fit a script under {SIZE_LIMIT} bytes"}
    return _source(entry, {**evidence, "repro": too_large}, target, generated, 160)


def _docstring_safe(text: Any) -> str:
    """``text`` as it reads inside the script's docstring: a server's message may hold backslashes
    (``b'\\x00...'``) or triple quotes, which would otherwise be escapes or end the docstring."""
    return str(text).replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _source(entry: dict[str, Any], evidence: dict[str, Any], target: dict[str, Any], generated: str,
            cut: int) -> str:
    repro = dict(evidence.get("repro") or {"cannot": "the failing check recorded no request (it did not send one "
                                                     "the suite could describe)"})
    notes = list(repro.pop("notes", None) or ())
    message = " ".join(str(evidence.get("message", "")).split())[:cut]
    recipe = {"requirement": entry["id"], "url": target.get("url"), "output_shape": target.get("output_shape"),
              "path": "/pooling", "expect": None, **repro}
    kind = (repro.get("expect") or {}).get("kind")
    if repro.get("cannot"):
        notes.append(f"NOT REPRODUCIBLE HERE: the failing request is {repro['cannot']}; the script only says so "
                     "(exit 2)")
    elif not kind:
        notes.append(f"NOT JUDGED HERE: the script cannot redo this check; it sends the test's last request to "
                     f"{recipe['path']} and shows the answer (exit 2)")
    if kind == "survives":
        notes.append("this request harmed the server under test: send it only to a server you may restart")
    if kind == "figures":
        notes.append(f"judged on {len(repro['expect']['positions'])} sampled pixels and per-class statistics of the "
                     f"{repro['expect']['source']} (the suite compared more)")
    header = "\n".join([
        f'"""Reproducer of {entry["id"]} ({entry.get("level", "")}): '
        f'{_docstring_safe(entry.get("statement", "")[:cut])}',
        "",
        f"geopool conformance {generated}, case {_docstring_safe(evidence.get('case'))}: {_docstring_safe(message)}",
        _docstring_safe(f"Target then: {target.get('url')}, model {target.get('model')}, "
                        f"vLLM {target.get('vllm_version')}, input dtype {target.get('input_dtype')}."),
        *[f"Note: {_docstring_safe(note)}" for note in notes],
        "",
        f"Run: python {entry['id']}.py [BASE_URL or $GEOPOOL_BASE_URL; API key: $GEOPOOL_API_KEY] (httpx, numpy)",
        "Exit 1: the failure reproduced, 0: the server behaves, 2: could not run. The request is rebuilt",
        "from RECIPE (tensors: geopool/numpy_payloads.py's functions, below), not stored.",
        '"""',
    ])
    driver = _DRIVER + ((f"judge_{kind}",) if kind else ()) + _driver_needs(repro, kind)
    recipe_text = json.dumps(recipe, separators=(",", ":"))
    return "\n".join([
        "#!/usr/bin/env python3", header, _IMPORTS,
        f"RECIPE = json.loads({recipe_text!r})", "", "",
        "# --- geopool/numpy_payloads.py", embedded_source(numpy_payloads, _builder_needs(repro.get("request"), kind)),
        "",
        "", "# --- geopool/conformance/repro_script.py", embedded_source(repro_script, driver), "", "",
        'if __name__ == "__main__":', "    sys.exit(main(RECIPE, __doc__))", ""])


def _driver_needs(repro: dict[str, Any], kind: str | None) -> tuple[str, ...]:
    """The driver functions beyond :data:`_DRIVER` this script calls (each script must stay small)."""
    options = [((repro.get("request") or {}).get("json") or {}), (repro.get("expect") or {}).get("reference") or {}]
    needs = ("described",) if kind in (None, "headers") else ("decoded", "show") if kind in _DECODING else ()
    return needs + (("bytes_values",) if any(str(o.get("encoding_format")).startswith("bytes") for o in options)
                    else ())


def _builder_needs(request: dict[str, Any] | None, kind: str | None) -> tuple[str, ...]:
    """The functions of geopool.numpy_payloads this request's tensors call, and the check's decoding."""
    specs = list(_tensors((request or {}).get("json")))
    needs = ["_order", "fill"]
    if kind in _DECODING or any(dtype in ("float16", "bfloat16") for _, dtype in specs):
        needs.append("values_from_bytes")
    if kind in _DECODING and str(((request or {}).get("json") or {}).get("embed_dtype", "")).startswith("fp8"):
        needs += ["fp8_format", "fp8_values"]
    if specs:
        needs += ["build_tensor", "npy_bytes"]
    if any(dtype in ("float16", "bfloat16") for _, dtype in specs):
        needs += ["round_to", "values_to_bytes"]
    if any(spec.get("specials") for spec, _ in specs):
        needs.append("special_values")
    return tuple(needs)


def _tensors(template: Any) -> Iterator[tuple[dict[str, Any], str]]:
    if isinstance(template, dict):
        if "$tensor" in template:
            yield template["$tensor"], template["dtype"]
        else:
            for value in template.values():
                yield from _tensors(value)
    elif isinstance(template, list):
        for value in template:
            yield from _tensors(value)


def write_reproducers(report: dict[str, Any], folder: Path) -> dict[str, str]:
    """Write ``<REQ-ID>.py`` into ``folder`` for each failing requirement of ``report`` (conformance.json's
    content); remove the scripts of requirements that no longer fail. Returns id → path."""
    written = {}
    for entry in report["requirements"]:
        path = folder / f"{entry['id']}.py"
        evidence = _evidence_for(entry) if entry["outcome"] in REPRODUCED_OUTCOMES else None
        if evidence is None:
            path.unlink(missing_ok=True)  # a stale script of an earlier run would claim a failure
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(reproducer_source(entry, evidence, report["target"], report["generated"]))
        path.chmod(0o755)
        written[entry["id"]] = str(path)
    return written

