"""Reproducer recipes, without a server: a failing request's template rebuilds the very tensors geopool sent
(with the code the script embeds), what cannot be rebuilt with numpy says so, and every script stays
a few KB of httpx + numpy code."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from geopool import numpy_payloads, wire
from geopool.conformance import recipes, repro_script, reproducers
from geopool.contract import load_contract
from geopool.fixture_models import FIXTURES_DIR
from geopool.invalid import bad_requests, device_saved_payload
from geopool.strategies import PayloadRecipe, TensorRecipe

MODEL = "prithvi-tiny-tl"
LIMIT = 10_000  # bytes: small enough to paste into a bug report


def contract(dtype: str = "float32"):
    return load_contract(FIXTURES_DIR / MODEL, input_dtype=dtype)


def embedded_builder() -> dict:
    """The builder as a reproducer runs it: the embedded source, executed with numpy, base64 and io only."""
    namespace: dict = {}
    exec("import base64\nimport io\nimport numpy as np\n" + reproducers.embedded_source(numpy_payloads), namespace)
    return namespace


def payload(seed: int = 5) -> PayloadRecipe:
    return PayloadRecipe((
        ("pixel_values", TensorRecipe(seed, "normal", -3.0, 100.0, ((3, "nan"), (7, "max"), (11, "subnormal")))),
        ("location_coords", TensorRecipe(0, "gradient", 10.5, -20.25))), "npy")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("distribution", ["uniform", "normal", "constant", "gradient"])
def test_embedded_builder_builds_what_tensor_recipes_build(dtype, distribution):
    recipe = TensorRecipe(7, distribution, -3.5, 1e4, ((5, "nan"), (9, "subnormal"), (123456, "max"), (2, "-zero")))
    built = recipe.build((6, 64, 64), dtype)
    assert embedded_builder()["build_tensor"](recipe.spec((6, 64, 64)), dtype).tobytes() == built.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_embedded_builder_gives_the_bit_identical_npy_body(dtype):
    sent = wire.request_body(MODEL, payload().arrays(contract(dtype)), dtype=dtype, fmt="npy", embed_dtype="float16")
    request, notes = recipes.describe_request(sent)
    assert notes == []
    template = json.loads(json.dumps(request["json"]))  # as the script holds it
    assert template["messages"][0]["content"][0]["image_embeds"]["pixel_values"]["$tensor"]["seed"] == 5
    assert embedded_builder()["fill"](template) == sent  # every base64 input the same text
    assert len(json.dumps(request)) < 1500


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_torch_save_inputs_are_rebuilt_as_the_same_values_in_npy(dtype):
    arrays = payload().arrays(contract(dtype))
    sent = wire.request_body(MODEL, arrays, dtype=dtype, fmt="torch")
    request, notes = recipes.describe_request(sent)
    assert any("torch.save" in note for note in notes)
    rebuilt = wire.image_embeds(embedded_builder()["fill"](request["json"]))
    for name, array in arrays.items():
        values = wire.load_tensor_bytes(wire.base64_bytes(rebuilt[name]))
        assert values.tobytes() == array.tobytes(), name


def test_seed_inputs_and_a_changed_recipe():
    sent = wire.request_body(MODEL, wire.seed_inputs(contract()), dtype="float32", fmt="npy")
    spec = recipes.describe_request(sent)[0]["json"]["messages"][0]["content"][0]["image_embeds"]["pixel_values"]
    assert spec == {"$tensor": {"shape": [6, 512, 512], "fill": 1.0}, "dtype": "float32"}
    # A tensor no recipe built (the recipe table forgot it) is not described, let alone approximated.
    unknown = np.random.default_rng(1).uniform(size=(6, 512, 512)).astype(np.float32)
    with pytest.raises(recipes.NotRegenerable, match="no recipe"):
        recipes.describe_request(wire.request_body(MODEL, {"pixel_values": unknown}, dtype="float32", fmt="npy"))


def test_named_bad_requests_are_rebuilt_or_declared_not_regenerable():
    """JSON-level mistakes are rebuilt exactly; torch.save-only ones say so."""
    valid = wire.request_body(MODEL, wire.seed_inputs(contract()), dtype="float32", fmt="npy")
    rebuilt, refused = {}, {}
    for case in bad_requests():
        if case.needs_torch and not wire.torch_available():
            continue
        raw = case.body(valid, contract())
        try:
            request, _ = recipes.describe_request(raw)
        except recipes.NotRegenerable as reason:
            refused[case.name] = str(reason)
            continue
        if "raw" in request:
            rebuilt[case.name] = wire.base64_bytes(request["raw"]) == raw
        else:
            rebuilt[case.name] = same_request(embedded_builder()["fill"](request["json"]), json.loads(raw))
    assert all(rebuilt.values()), rebuilt
    assert {"bad-base64", "missing-input", "malformed-json", "unknown-model", "rank-4-target",
            "wrong-channel-count", "other-input-dtype", "extra-input-key"} <= set(rebuilt)
    assert refused == {}, refused  # the torch.save-only bad inputs are small: kept as their very bytes


def same_request(rebuilt, sent) -> bool:
    """The same JSON, where each tensor may be .npy instead of torch.save bytes with the same dtype and values."""
    if isinstance(sent, dict):
        return isinstance(rebuilt, dict) and rebuilt.keys() == sent.keys() and all(
            same_request(rebuilt[key], sent[key]) for key in sent)
    if isinstance(sent, list):
        return isinstance(rebuilt, list) and len(rebuilt) == len(sent) and all(map(same_request, rebuilt, sent))
    if isinstance(sent, str) and rebuilt != sent:
        (ours, our_dtype), (theirs, their_dtype) = (recipes._tensor(wire.base64_bytes(text))
                                                    for text in (rebuilt, sent))
        return our_dtype == their_dtype and ours.tobytes() == theirs.tobytes()
    return rebuilt == sent


def test_oversized_and_pathological_json_bodies():
    """Repeated filler and long uniform lists become ``$repeat``; JSON too deep for Python is said so."""
    valid = wire.request_body(MODEL, wire.seed_inputs(contract()), dtype="float32", fmt="npy")
    filler = json.dumps({**valid, "filler": "x" * 5_000_000, "junk": [1] * 1_000_000}).encode()
    request, _ = recipes.describe_request(filler)
    assert request["json"]["filler"] == {"$repeat": "x", "count": 5_000_000}
    assert request["json"]["junk"] == {"$repeat": [1], "count": 1_000_000}
    assert json.loads(json.dumps(embedded_builder()["fill"](request["json"]))) == json.loads(filler)
    deep = json.dumps(valid).encode()[:-1] + b', "junk": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(recipes.NotRegenerable, match="nested too deep"):
        recipes.describe_request(deep)
    varied = json.dumps({**valid, "junk": list(range(100_000))}).encode()
    with pytest.raises(recipes.NotRegenerable, match="recipe would take"):
        recipes.describe_request(varied)


def test_device_saved_and_bfloat16_tensors_are_not_regenerable():
    with pytest.raises(recipes.NotRegenerable, match="cuda"):
        recipes.describe_request({"x": device_saved_payload(np.ones((6, 8, 8)), dtype="float32")})
    bfloat16 = wire.encode_array(np.ones((6, 8, 8)) * np.arange(8), dtype="bfloat16", fmt="torch")
    with pytest.raises(recipes.NotRegenerable, match="bfloat16"):
        recipes.describe_request({"x": bfloat16})


def test_capture_takes_the_running_tests_last_request():
    assert recipes.capture(recipes.finite())["cannot"].startswith("the failing check sent no request")
    with recipes.sending():
        recipes.sent(b'{"model": "m"')
        captured = recipes.capture(recipes.rejection("status"))
    assert captured["request"] == {"raw": "eyJtb2RlbCI6ICJtIg=="} and captured["expect"]["kind"] == "rejection"
    with recipes.sending():
        recipes.sent(b'{"model": "m"')
        recipes.sent(None)  # e.g. concurrent requests of another client: not the one before
        assert "does not record" in recipes.capture(recipes.answer())["cannot"]


def _report(repro: dict, message: str = "x" * 300) -> dict:
    evidence = {"requirement": "POOL-ENC-004", "case": "float16-little", "message": message, "repro": repro}
    return {"generated": "2026-12-01T00:00:00+00:00",
            "target": {"url": "http://127.0.0.1:9", "model": MODEL, "vllm_version": "0.32.0", "input_dtype": "float32",
                       "output_shape": [1, 2, 512, 512]},
            "requirements": [{"id": "POOL-ENC-004", "level": "MUST", "statement": "s" * 200, "outcome": "fail",
                              "tests": [{"test": "t", "outcome": "fail", "evidence": [evidence]}]},
                             {"id": "POOL-ENC-005", "level": "MUST", "statement": "", "outcome": "pass", "tests": []}]}


def _expectations() -> dict[str, dict]:
    golden = json.loads((FIXTURES_DIR / MODEL / "golden-float32.json").read_text())
    return {"answer": recipes.answer(), "finite": recipes.finite(), "envelope": recipes.envelope(request_id=True),
            "close": recipes.close_to({"embed_dtype": "float32", "endianness": "little"}, rtol=1e-3, atol=1e-7),
            "figures": recipes.figures("golden answer", np.asarray(golden["positions"]), np.asarray(golden["values"]),
                                       golden["class_mean"], golden["class_std"], golden["rms"], 1e-2),
            "rejection": recipes.rejection("message", statuses=(400, 422), names=("dtype", "float64", "double")),
            "survives": recipes.survives(wire.request_body(MODEL, wire.seed_inputs(contract()), dtype="float32",
                                                           fmt="npy")),
            "unjudged": None}


@pytest.mark.parametrize("kind", list(_expectations()))
def test_every_script_is_small_and_uses_httpx_and_numpy_only(tmp_path, kind):
    """The largest scripts: half-precision inputs with special values (every builder function)."""
    body = wire.request_body(MODEL, payload().arrays(contract("float16")), dtype="float16", fmt="npy",
                             embed_dtype="float16")
    with recipes.sending():
        recipes.sent(body)
        repro = recipes.capture(_expectations()[kind])
    stale = tmp_path / "POOL-ENC-005.py"
    stale.write_text("# an earlier run's")
    written = reproducers.write_reproducers(_report(repro), tmp_path)
    assert written == {"POOL-ENC-004": str(tmp_path / "POOL-ENC-004.py")} and not stale.exists()
    script = Path(written["POOL-ENC-004"])
    assert script.stat().st_size < LIMIT, script.stat().st_size
    tree = ast.parse(script.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"base64", "io", "json", "os", "sys", "time", "uuid", "httpx", "numpy"}, imported
    text = script.read_text()
    assert "pickle." not in text and "np.load(" not in text and "allow_pickle=True" not in text  # frombuffer only
    assert '"Bearer " + os.environ["GEOPOOL_API_KEY"]' in text  # the key comes from the environment only
    # Nothing listens on port 9: the script says it could not run.
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "could not connect" in result.stdout


def test_a_request_that_cannot_be_rebuilt_gives_a_script_that_says_so(tmp_path):
    script = Path(reproducers.write_reproducers(_report({"cannot": "torch.save bytes that only torch can build",
                                                         "expect": recipes.rejection("status")}), tmp_path)
                  ["POOL-ENC-004"])
    assert "NOT REPRODUCIBLE HERE" in script.read_text()
    result = subprocess.run([sys.executable, str(script), "http://127.0.0.1:9"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "cannot regenerate" in result.stdout, result.stdout


@pytest.mark.parametrize(("status", "body", "aspect", "reproduced"), [
    (500, {"error": {"message": "boom", "type": "InternalServerError", "param": None, "code": 500}}, "status", True),
    (400, {"error": {"message": "bad dtype", "type": "BadRequestError", "param": None, "code": 400}}, "status", False),
    (400, {"detail": "bad dtype"}, "error-body", True),
    (400, {"error": {"message": "no", "type": "BadRequestError", "param": None, "code": 400}}, "message", True),
])
def test_rejection_judgement(status, body, aspect, reproduced):
    recipe = {"expect": recipes.rejection(aspect, statuses=(400,), names=("dtype",))}
    answer = httpx.Response(status, json=body)
    assert bool(repro_script.judge_rejection(None, recipe, answer, "id")) is reproduced


def test_decoding_and_closeness_judgement():
    values = np.linspace(-1, 1, 8, dtype=np.float32)
    text = wire.base64_text(wire.encode_values(values, "float16", "big"))
    answer = httpx.Response(200, json={"data": [{"data": text}]})
    options = {"encoding_format": "base64", "embed_dtype": "float16", "endianness": "big"}
    decoded, problem = repro_script.decoded(answer, options, [1, 2, 2, 2])
    assert problem is None and np.array_equal(decoded.ravel(), wire.decode_values(
        wire.encode_values(values, "float16"), embed_dtype="float16"))
    assert "values decoded" in repro_script.decoded(answer, {**options, "embed_dtype": "float32"}, [1, 2, 4, 4])[1]
    floats = httpx.Response(200, json={"data": [{"data": values.reshape(2, 2, 2).tolist()}]})  # the API default
    assert np.array_equal(repro_script.decoded(floats, {}, [1, 2, 2, 2])[0].ravel(), values)
    assert "answered 503" in repro_script.decoded(httpx.Response(503, text="busy"), {}, [1])[1]



def test_bytes_answers_are_read_as_their_metadata_says_and_bytes_only_as_raw_values():
    values = np.linspace(-1, 1, 8, dtype=np.float32)
    raw = wire.encode_values(values, "float16", "big")
    item = {"index": 0, "embed_dtype": "float16", "endianness": "big", "start": 0, "end": len(raw), "shape": [2, 2, 2]}
    bytes_answer = httpx.Response(200, content=raw, headers={"content-type": "application/octet-stream",
                                                             "metadata": json.dumps({"data": [item]})})
    got, problem = repro_script.decoded(bytes_answer, {"encoding_format": "bytes"}, [1, 2, 2, 2])
    assert problem is None and np.array_equal(got.ravel(), wire.decode_values(raw, embed_dtype="float16",
                                                                               endianness="big"))
    reversed_shape = json.dumps({"data": [{**item, "shape": [2, 4, 1]}]})
    wrong = httpx.Response(200, content=raw, headers={"metadata": reversed_shape})
    assert "reports shape" in repro_script.decoded(wrong, {"encoding_format": "bytes"}, [1, 2, 2, 2])[1]
    assert "does not decode" in repro_script.decoded(httpx.Response(200, content=raw), {"encoding_format": "bytes"},
                                                     [1, 2, 2, 2])[1]  # no metadata header
    raw_only = httpx.Response(200, content=values.astype("<f4").tobytes())
    got, problem = repro_script.decoded(raw_only, {"encoding_format": "bytes_only"}, [1, 2, 2, 2])
    assert problem is None and np.array_equal(got.ravel(), values)
    shown = repro_script.described(bytes_answer)
    assert "16 bytes of application/octet-stream" in shown and "\\x" not in shown


@pytest.mark.parametrize("embed_dtype", list(wire.FP8_FORMATS))
def test_the_scripts_fp8_decoding_is_geopools(embed_dtype):
    every_byte = bytes(range(256))
    expected = wire.decode_fp8(every_byte, embed_dtype=embed_dtype)
    assert expected[0x38] == (1.0 if embed_dtype == "fp8_e4m3" else 0.5) and np.isnan(expected).any()
    got = embedded_builder()["values_from_bytes"](every_byte, embed_dtype)
    assert np.array_equal(got, expected, equal_nan=True)
    assert got.dtype == np.float32


def test_a_fp8_request_gives_a_script_with_the_fp8_decoder(tmp_path):
    body = wire.request_body(MODEL, wire.seed_inputs(contract()), dtype="float32", fmt="npy")
    body = {**body, "embed_dtype": "fp8_e5m2"}
    with recipes.sending():
        recipes.sent(body)
        repro = recipes.capture(recipes.close_to({"embed_dtype": "float32"}, rtol=2.0**-3, atol=2.0**-17))
    text = Path(reproducers.write_reproducers(_report(repro), tmp_path)["POOL-ENC-004"]).read_text()
    assert "def fp8_values(" in text and "def fp8_format(" in text and "def judge_close(" in text
    assert "Note: NOT" not in text
    plain = {**body, "embed_dtype": "float32"}
    with recipes.sending():
        recipes.sent(plain)
        repro = recipes.capture(recipes.headers("application/octet-stream", metadata=False))
    text = Path(reproducers.write_reproducers(_report(repro), tmp_path)["POOL-ENC-004"]).read_text()
    assert "def fp8_values(" not in text and "def judge_headers(" in text


@pytest.mark.parametrize(("content_type", "metadata", "expect", "reproduced"), [
    ("application/octet-stream", None, recipes.headers("application/octet-stream", metadata=False), False),
    ("application/json", None, recipes.headers("application/octet-stream", metadata=False), True),
    ("application/octet-stream", "{}", recipes.headers("application/octet-stream", metadata=False), True),
    ("application/octet-stream", None, recipes.headers("application/octet-stream", metadata=True), True),
    ("application/octet-stream", "{}", recipes.headers("application/octet-stream"), False),
])
def test_headers_judgement(content_type, metadata, expect, reproduced):
    headers = {"content-type": content_type, **({"metadata": metadata} if metadata is not None else {})}
    answer = httpx.Response(200, content=b"\x00\x01", headers=headers)
    assert bool(repro_script.judge_headers(None, {"expect": expect}, answer, "id")) is reproduced


INNER_CONFTEST = '''
import pytest
from geopool.conformance import plugin


class StandInTarget:
    """Where a target would be; the tiny suite never sends a request."""
    server, embedded, version, url, model = None, True, "0.32.0", "http://127.0.0.1:9", "stand-in"

    def describe(self):
        return {"url": self.url, "model": self.model, "vllm_version": self.version, "embedded": True,
                "input_dtype": "float32", "output_shape": [1, 2, 4, 4]}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session):
    session.config.stash[plugin.TARGET_KEY] = StandInTarget()
'''


@pytest.mark.usefixtures("no_target_from_the_environment")
def test_the_plugin_writes_a_script_per_failing_requirement_and_names_it_in_the_report(pytester):
    """Failures and expected failures get one; passes don't; the JSON report names each script."""
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_suite='''
import pytest
from geopool.conformance import recipes

@pytest.mark.requirement("POOL-REJ-001", "POOL-REJ-008", "POOL-REJ-009")
def test_rejections(checks):
    recipes.sent(b'{"model": "stand-in", "messages": "@@"}')
    checks.that("POOL-REJ-001", False, "answered 500", expect=recipes.rejection("status", statuses=(400,)))
    checks.that("POOL-REJ-008", False, "answered 500", case="known", expect=recipes.rejection("status"))
    checks.that("POOL-REJ-009", True, "answered 400", expect=recipes.rejection("status"))
''')
    expectations = pytester.path / "expected.toml"
    expectations.write_text('applies_from = "0.32.0"\n[[expected-fail]]\nid = "POOL-REJ-008"\ncase = "known"\n'
                            'reason = "a known defect"\n')
    stale = pytester.path / "reports" / "repro" / "POOL-REJ-009.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("# from a run where POOL-REJ-009 failed")
    report_path = pytester.path / "report.json"
    result = pytester.runpytest("-p", "geopool.pytest_plugin", "-p", "geopool.conformance.plugin", "-p",
                                "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function",
                                "--expectations", str(expectations),
                                "--conformance-report", str(report_path))
    assert result.ret == 1
    entries = {entry["id"]: entry for entry in json.loads(report_path.read_text())["requirements"]}
    folder = Path("reports") / "repro"  # the default --repro-dir, relative to the run's folder
    assert entries["POOL-REJ-001"]["reproducer"] == str(folder / "POOL-REJ-001.py")
    assert entries["POOL-REJ-008"]["outcome"] == "expected-fail"
    assert entries["POOL-REJ-008"]["reproducer"] == str(folder / "POOL-REJ-008.py")
    assert "reproducer" not in entries["POOL-REJ-009"] and not stale.exists()
    script = pytester.path / folder / "POOL-REJ-001.py"
    assert 'RECIPE = json.loads(\'{"requirement":"POOL-REJ-001"' in script.read_text()
    result.stdout.fnmatch_lines(["reproducers (httpx + numpy; exit 1 = reproduced): 2 in reports/repro/*"])


def test_a_recipe_too_large_for_a_small_script_gives_one_that_says_so(tmp_path):
    repro = {"request": {"json": {"values": "v" * 9000}}, "path": "/pooling", "expect": recipes.envelope()}
    script = Path(reproducers.write_reproducers(_report(repro), tmp_path)["POOL-ENC-004"])
    assert script.stat().st_size < LIMIT and "does not fit a script under 10000 bytes" in script.read_text()


@pytest.mark.parametrize("message", ["server said b'\\x00\\x01\\xff' at C:\\users\\x", 'a """quoted""" body\\'])
def test_a_message_with_backslashes_or_triple_quotes_still_gives_valid_python(tmp_path, message):
    """Messages come from the server: bytes reprs, Windows paths, quotes must not end or break the docstring."""
    for cut_message in (message, message * 40):  # the header cut may fall anywhere in the message
        written = reproducers.write_reproducers(_report({"cannot": "x", "expect": recipes.rejection("status")},
                                                        message=cut_message), tmp_path)
        source = Path(written["POOL-ENC-004"]).read_text()
        tree = ast.parse(source)
        assert " ".join(message.split())[:40] in ast.get_docstring(tree)
