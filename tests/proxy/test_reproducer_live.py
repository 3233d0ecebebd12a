"""A failing requirement's standalone reproducer reproduces its failure: the conformance suite runs through
the fault proxy (``byteswap``), writes ``repro/POOL-ENC-004.py``, and that script, run by a Python that has
only httpx and numpy, exits 1 against the same proxied server and 0 against the server itself. The same
for the checks that compare two requests' answers (bytes, bytes_only and fp8 answers against the float32
one: POOL-ENC-003, POOL-CLI-010, POOL-CLI-011), whose scripts send both requests."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geopool.conformance.matrix import MATRIX
from geopool.conformance.registry import SUITE_DIR
from geopool.contract import load_contract
from geopool.proxy import FaultProxy

pytestmark = pytest.mark.live
REPO = SUITE_DIR.parent
FAULT, REQUIREMENT = "byteswap", "POOL-ENC-004"
SELECTED = "conformance/test_encoding.py::test_reduced_precision[float16-little]"
#: The only distributions a reproducer needs, pinned to this venv's versions (the cache key).
NEEDS = {name: importlib.metadata.version(name) for name in ("httpx", "numpy")}


def _venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


@pytest.fixture(scope="session")
def bare_python() -> Path:
    """A Python with only httpx and numpy (and their dependencies), cached across runs by versions."""
    key = f"py{sys.version_info.major}.{sys.version_info.minor}-" + "-".join(f"{n}{v}" for n, v in NEEDS.items())
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "geopool" / f"repro-venv-{key}"
    if not _venv_python(folder).exists():
        building = folder.with_name(folder.name + f".building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, timeout=120)
        pip = subprocess.run([str(_venv_python(building)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              *[f"{name}=={version}" for name, version in NEEDS.items()]],
                             capture_output=True, text=True, timeout=600)
        assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
        try:
            building.rename(folder)  # whole or not at all: a concurrent run may have won the race
        except OSError:
            shutil.rmtree(building, ignore_errors=True)
    python = _venv_python(folder)
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in ('geopool', 'torch', "
                            "'hypothesis', 'terratorch') if u.find_spec(m)])"], capture_output=True, text=True,
                           timeout=60, cwd="/", env={"PATH": os.environ.get("PATH", "")})
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr  # nothing of geopool's world
    return python


def run_script(python: Path, script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment and another folder: nothing from this checkout can be imported by accident.
    return subprocess.run([str(python), str(script), *args], capture_output=True, text=True, timeout=300, cwd="/",
                          env={"PATH": os.environ.get("PATH", "")})


def run_suite(server, proxy_url: str, tmp_path: Path, *selected: str) -> tuple[subprocess.CompletedProcess[str], Path,
                                                                                Path]:
    """The selected conformance tests against ``proxy_url`` (no expectations), writing reproducers."""
    report, repro = tmp_path / "conformance.json", tmp_path / "repro"
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--hypothesis-profile", "fast", *selected,
         "--base-url", proxy_url, "--input-dtype", server.dtype, "--model", server.model_name, "--expectations", "none",
         "--conformance-report", str(report), "--junitxml", str(tmp_path / "junit.xml"), "--repro-dir", str(repro)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    return suite, report, repro


def test_reproducer_of_a_byteswap_failure_reproduces_it_with_httpx_and_numpy_only(embedded_server, bare_python,
                                                                                  tmp_path):
    assert REQUIREMENT in MATRIX[FAULT][1]  # the fault this test plants is one that fails the requirement
    contract = load_contract(embedded_server.served_dir, input_dtype=embedded_server.dtype)
    with FaultProxy(embedded_server.url, FAULT, max_seconds=600, contract=contract) as proxy:
        suite, report, repro = run_suite(embedded_server, proxy.url, tmp_path, SELECTED)
        assert suite.returncode == 1, suite.stdout[-3000:] + suite.stderr[-2000:]
        entry = next(e for e in json.loads(report.read_text())["requirements"] if e["id"] == REQUIREMENT)
        assert entry["outcome"] == "fail" and entry["reproducer"] == str(repro / f"{REQUIREMENT}.py"), entry
        script = Path(entry["reproducer"])
        assert sorted(p.name for p in repro.iterdir()) == [f"{REQUIREMENT}.py"]
        size = script.stat().st_size
        assert size < 10_000, size
        assert "Note: NOT" not in script.read_text()  # neither "not reproducible" nor "not judged here"

        # The run's URL is the script's default: the same proxied server.
        proxied = run_script(bare_python, script)
        assert proxied.returncode == 1, proxied.stdout[-3000:] + proxied.stderr[-3000:]
        assert f"target: {proxy.url}" in proxied.stdout and "REPRODUCED:" in proxied.stdout, proxied.stdout
        assert "values differ from the reference answer" in proxied.stdout, proxied.stdout
    # The server itself answers float16 within float16's rounding of its float32 answer: nothing to reproduce.
    direct = run_script(bare_python, script, embedded_server.url)
    assert direct.returncode == 0, direct.stdout[-3000:] + direct.stderr[-3000:]
    assert "NOT REPRODUCED" in direct.stdout, direct.stdout
    print(f"\n{script.name}: {size} bytes; proxied: exit {proxied.returncode}; direct: exit {direct.returncode}\n"
          + proxied.stdout)


#: Faults that break the comparisons between two requests' answers: bytes answers whose metadata header
#: reverses the shape (POOL-ENC-003), bytes_only and fp8 answers with every value's lowest bit flipped
#: (POOL-CLI-010, POOL-CLI-011).
COMPARING_FAULT = "bytes-metadata+low-bit"
COMPARED = ("POOL-ENC-003", "POOL-CLI-010", "POOL-CLI-011")
COMPARING_TESTS = ("conformance/test_encoding.py::test_bytes_encoding",
                   "conformance/test_client_mistakes.py::test_bytes_only_is_the_raw_baseline",
                   "conformance/test_client_mistakes.py::test_fp8_embed_dtypes")


def test_reproducers_of_comparisons_between_two_requests_send_both_and_judge(embedded_server, bare_python, tmp_path):
    assert set(COMPARED) <= MATRIX["bytes-metadata"][1] | MATRIX["low-bit"][1]
    contract = load_contract(embedded_server.served_dir, input_dtype=embedded_server.dtype)
    with FaultProxy(embedded_server.url, COMPARING_FAULT, max_seconds=600, contract=contract) as proxy:
        suite, report, repro = run_suite(embedded_server, proxy.url, tmp_path, *COMPARING_TESTS)
        assert suite.returncode == 1, suite.stdout[-3000:] + suite.stderr[-2000:]
        outcomes = {e["id"]: e["outcome"] for e in json.loads(report.read_text())["requirements"]}
        assert {rid: outcomes.get(rid) for rid in COMPARED} == dict.fromkeys(COMPARED, "fail"), outcomes
        scripts = {rid: repro / f"{rid}.py" for rid in COMPARED}
        for rid, script in scripts.items():
            text = script.read_text()
            assert "Note: NOT" not in text and '"kind":"close"' in text, (rid, text[:3000])
        proxied = {rid: run_script(bare_python, script) for rid, script in scripts.items()}
    direct = {rid: run_script(bare_python, script, embedded_server.url) for rid, script in scripts.items()}
    for rid in COMPARED:
        assert proxied[rid].returncode == 1 and "REPRODUCED:" in proxied[rid].stdout, (rid, proxied[rid].stdout[-3000:])
        assert direct[rid].returncode == 0 and "NOT REPRODUCED" in direct[rid].stdout, (rid, direct[rid].stdout[-3000:])
        assert "\\x" not in proxied[rid].stdout  # no answer's raw bytes on the terminal
        print(f"\n{rid}: proxied exit 1, direct exit 0\n" + proxied[rid].stdout[-1200:])
