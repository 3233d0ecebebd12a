"""The seed's reference client, unchanged except its URL and model name, against `geopool serve`.

It runs with the seed's own settings: float16 tensors, so the server is loaded with --dtype float16
(the only dtype vLLM 0.32 accepts float16 inputs with). On 2 CPU cores one request takes ~20 s.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

SEED_COPY = Path(__file__).resolve().parents[1] / "seed_client.py"
SEED_DOC = Path(__file__).resolve().parents[3] / "shared" / "seed" / "serving_tensor_to_tensor.md"


#: sha256 of the seed document's client block, taken from ../shared/seed/serving_tensor_to_tensor.md; the
#: document is not beside every clone (CI's), so the copy is checked against this digest everywhere and the
#: digest against the document wherever it is.
SEED_SHA256 = "5126f1d9d63249c1132a3b22793957f7423abc726a14fe7e68375b1e721f964c"


def seed_block(document: str) -> str:
    block = re.search(r'```python title="vLLM perform a tensor-to-tensor inference"\n(.*?)```', document, re.S)
    assert block is not None, "the seed document has no tensor-to-tensor client block"
    return block.group(1)


def test_committed_copy_is_the_seed_verbatim():
    assert hashlib.sha256(SEED_COPY.read_bytes()).hexdigest() == SEED_SHA256
    if SEED_DOC.is_file():  # where the seed is at hand, the digest itself is checked against it
        assert seed_block(SEED_DOC.read_text()) == SEED_COPY.read_text()
        assert hashlib.sha256(seed_block(SEED_DOC.read_text()).encode()).hexdigest() == SEED_SHA256


def printed_shape(text: str) -> tuple[int, ...]:
    """The shape of an array from numpy's full (unsummarised) print: brackets per depth, numbers last."""
    opened: list[int] = []
    depth = 0
    for char in text:
        if char == "[":
            depth += 1
            opened.extend([0] * (depth - len(opened)))
            opened[depth - 1] += 1
        elif char == "]":
            depth -= 1
    numbers = len(text.replace("[", " ").replace("]", " ").split())
    counts = [*opened, numbers]
    return tuple(counts[i + 1] // counts[i] for i in range(len(counts) - 1))


def test_printed_shape_parser():
    import numpy as np

    with np.printoptions(threshold=sys.maxsize):
        assert printed_shape(str(np.zeros((1, 2, 3, 4)))) == (1, 2, 3, 4)
        assert printed_shape(str(np.ones((2, 5)))) == (2, 5)


def test_seed_client_prints_a_1x2x512x512_array(float16_server, tmp_path):
    source = SEED_COPY.read_text()
    server = float16_server  # the session's float16 server (tests/conftest.py): the seed client sends float16
    script = (source
              .replace('f"http://localhost:8000/pooling"', repr(f"{server.url}/pooling"))
              .replace("'ibm-nasa-geospatial/Prithvi-EO-2.0-300M-TL-Sen1Floods11'", repr(server.model_name)))
    changed = [(a, b) for a, b in zip(source.splitlines(), script.splitlines(), strict=True) if a != b]
    assert len(changed) == 2, changed  # exactly the URL line and the model-name line
    (tmp_path / "seed.py").write_text(script)
    # Full printing (no "..." summary) so the printed array's shape can be read back exactly.
    harness = ("import numpy, runpy, sys; numpy.set_printoptions(threshold=sys.maxsize); "
               f"runpy.run_path({str(tmp_path / 'seed.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", harness], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    prefix = "Returned result: "
    assert result.stdout.startswith(prefix), result.stdout[:300]
    printed = result.stdout[len(prefix):]
    assert printed_shape(printed) == (1, 2, 512, 512)
    assert "nan" not in printed and "inf" not in printed
