"""The driver of every standalone reproducer: httpx and numpy only, embedded verbatim in each script
(geopool.conformance.reproducers) after geopool.numpy_payloads. main(RECIPE) sends the request, judges
the answer as the failing check did and returns 1 (reproduced), 0 (the server behaves) or 2 (could not
run). Answers are read with numpy.frombuffer; nothing is unpickled.
"""

import base64
import json
import os
import sys
import time
import uuid

import httpx
import numpy as np

# geopool:skip-start (the reproducer embeds geopool/numpy_payloads.py instead)
from geopool.numpy_payloads import fill, values_from_bytes

# geopool:skip-end


def post(http, recipe, overrides=None):
    request, path, request_id = recipe["request"], recipe["path"], "geopool-repro-" + uuid.uuid4().hex[:12]
    if "raw" in request:
        content = base64.b64decode(request["raw"])
    else:
        content = json.dumps(fill({**request["json"], **(overrides or {})})).encode()
    answer = http.post(path, content=content, headers={"X-Request-Id": request_id})
    print(f"POST {path} {overrides or ''}({len(content)} bytes) -> {answer.status_code}, {len(answer.content)} bytes")
    return answer, request_id


def decoded(answer, options, shape):
    """The float32 output of an answer in the request's encoding_format, or the reason it has none."""
    if answer.status_code // 100 != 2:
        return None, f"a valid request was answered {answer.status_code}: {answer.text[:300]!r}"
    order, encoding = (options.get("embed_dtype", "float32"), options.get("endianness", "little")), options.get(
        "encoding_format", "float")
    try:
        if encoding.startswith("bytes"):
            values = bytes_values(answer, options, shape)
        elif encoding == "float":
            values = np.asarray(answer.json()["data"][0]["data"], np.float32).ravel()
        else:
            values = values_from_bytes(base64.b64decode(answer.json()["data"][0]["data"], validate=True), *order)
    except (ValueError, KeyError, IndexError, TypeError) as error:
        return None, f"the answer does not decode: {type(error).__name__}: {error}"
    if values.size != int(np.prod(shape)):
        return None, f"{values.size} values decoded, shape {shape} needs {int(np.prod(shape))}"
    return values.reshape(shape), None


def bytes_values(answer, options, shape):
    """A bytes answer's values read as its metadata header says (as geopool reads it); bytes_only: raw values."""
    item = {"embed_dtype": options.get("embed_dtype", "float32"), "endianness": options.get("endianness", "little"),
            "start": 0, "end": None}
    if options["encoding_format"] == "bytes":
        item = json.loads(answer.headers["metadata"])["data"][0]
        if list(item["shape"]) not in (list(shape), list(shape[1:])):
            raise ValueError(f"the metadata header reports shape {item['shape']}, the output's is {list(shape)}")
    return values_from_bytes(answer.content[item["start"]:item["end"]], item["embed_dtype"], item["endianness"])


def described(answer):
    """An answer for the terminal: its text if it is text, else its size and type (never raw bytes)."""
    kind = answer.headers.get("content-type", "")
    if kind.startswith(("application/json", "text/")):
        return answer.text[:300]
    metadata = answer.headers.get("metadata")
    return f"{len(answer.content)} bytes of {kind or 'an unnamed type'}, metadata {metadata!r:.200}"


def show(name, values):
    bad = int((~np.isfinite(values)).sum())
    finite = values[np.isfinite(values)].astype(np.float64)
    stats = f"min {finite.min():.6g} max {finite.max():.6g} mean {finite.mean():.6g}" if finite.size else "no finite"
    print(f"{name}: shape {list(values.shape)} float32, {stats}, {bad} non-finite, first {values.ravel()[:4]}")


def judge(http, recipe):
    """What is wrong with the server's answers (empty: it behaves; None: not judged)."""
    answer, request_id = post(http, recipe)
    kind = (recipe["expect"] or {}).get("kind")
    if kind is None:
        return print("answer:", described(answer))
    if kind in ("rejection", "envelope", "survives", "headers"):
        return globals()["judge_" + kind](http, recipe, answer, request_id)
    values, problem = decoded(answer, recipe["request"].get("json", {}), recipe["output_shape"])
    if problem:
        return [problem]
    show("answer", values)
    return globals()["judge_" + kind](http, recipe, values)


def judge_answer(http, recipe, values):
    return []


def judge_rejection(http, recipe, answer, request_id):
    expect = recipe["expect"]
    print("expected:", expect["statuses"] or "a 4xx", "with vLLM's error object, naming one of", expect["names"])
    print("error body:", answer.text[:400])
    # Read here, not through geopool.wire.error_message: a reproducer runs with httpx and numpy only.
    try:
        error = answer.json()["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        error, message = None, ""
    wrong = {"status": not (answer.status_code in expect["statuses"] if expect["statuses"]
                            else 400 <= answer.status_code < 500),
             "error-body": not (isinstance(error, dict) and isinstance(error.get("message"), str)
                                and isinstance(error.get("type"), str) and error.get("code") == answer.status_code),
             "message": not any(word.lower() in message.lower() for word in expect["names"]),
             "message-or-text": not any(word.lower() in (message or answer.text).lower() for word in expect["names"])}
    return [f"the {expect['aspect']} is wrong (status {answer.status_code})"] if wrong[expect["aspect"]] else []


def judge_envelope(http, recipe, answer, request_id):
    if answer.status_code // 100 != 2:
        return [f"a valid request was answered {answer.status_code}: {answer.text[:300]!r}"]
    body, model = answer.json(), recipe["request"]["json"].get("model")
    data, usage = body.get("data"), body.get("usage") if isinstance(body.get("usage"), dict) else {}
    entry, prompt = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}, usage.get(
        "prompt_tokens")
    print("envelope:", {key: body.get(key) for key in ("id", "object", "created", "model", "usage")})
    facts = {"a JSON content-type": answer.headers.get("content-type", "").startswith("application/json"),
             "a string id": isinstance(body.get("id"), str) and body["id"],
             "object 'list'": body.get("object") == "list",
             "an integer created, within 600 s of this clock": type(body.get("created")) is int
             and abs(body["created"] - time.time()) < 600, f"model {model!r}": body.get("model") == model,
             "1 data entry, index 0, object 'pooling'": isinstance(data, list) and len(data) == 1
             and entry.get("index") == 0 and entry.get("object") == "pooling",
             "usage.total_tokens = prompt_tokens (>= 1) + completion_tokens": isinstance(prompt, int) and prompt >= 1
             and usage.get("total_tokens") == prompt + (usage.get("completion_tokens") or 0),
             f"the X-Request-Id {request_id} in the id": not recipe["expect"]["request_id"]
             or request_id in str(body.get("id"))}
    return [f"expected {fact}" for fact, held in facts.items() if not held]


def judge_headers(http, recipe, answer, request_id):
    expect = recipe["expect"]
    print("answer:", described(answer))
    if answer.status_code // 100 != 2:
        return [f"a valid request was answered {answer.status_code}"]
    kind, metadata = answer.headers.get("content-type", ""), answer.headers.get("metadata")
    wrong = [f"content-type {kind!r}, expected {expect['content_type']!r}"] if not kind.startswith(
        expect["content_type"]) else []
    if expect["metadata"] is not None and (metadata is not None) != expect["metadata"]:
        wrong.append("a metadata header" if metadata is not None else "no metadata header")
    return wrong


def judge_survives(http, recipe, answer, request_id):
    try:
        health = http.get("/health")
    except httpx.TransportError as error:
        return [f"after the request the server is gone: GET /health: {type(error).__name__}: {error}"]
    print(f"then GET /health -> {health.status_code}")
    if health.status_code != 200:
        return [f"after the request /health answers {health.status_code}, not 200"]
    valid, _ = post(http, {**recipe, "request": recipe["expect"]["valid"]})
    problem = decoded(valid, recipe["expect"]["valid"]["json"], recipe["output_shape"])[1]
    return ["after the request, a valid one: " + problem] if problem else []


def judge_finite(http, recipe, values):
    bad = int((~np.isfinite(values)).sum())
    return [f"{bad} non-finite outputs for finite inputs"] if bad else []


def judge_close(http, recipe, values):
    expect = recipe["expect"]
    reference, _ = post(http, recipe, expect["reference"])
    wanted, problem = decoded(reference, {**recipe["request"]["json"], **expect["reference"]}, recipe["output_shape"])
    if problem:
        return ["the reference request failed: " + problem]
    show("reference answer", wanted)
    print(f"expected: the answer within {expect['atol']:g} + {expect['rtol']:g}*|reference| of the reference answer "
          f"(the same request with {expect['reference']})")
    far = ~np.isclose(values, wanted, rtol=expect["rtol"], atol=expect["atol"], equal_nan=True)
    if not far.any():
        return []
    at = tuple(int(i) for i in np.argwhere(far)[0])
    return [f"{int(far.sum())}/{far.size} values differ from the reference answer; at {at}: "
            f"{values[at]:.9g} vs {wanted[at]:.9g}"]


def judge_figures(http, recipe, values):
    expect = recipe["expect"]
    rows, cols = np.asarray(expect["positions"]).T
    got, ref = values[0][:, rows, cols].astype(np.float64), np.asarray(expect["values"])
    flat = values[0].reshape(values.shape[1], -1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        found = {"sampled relative L2 error": np.linalg.norm(got - ref) / np.linalg.norm(ref),
                 "class mean shift / rms": np.max(np.abs(flat.mean(1) - expect["class_mean"])) / expect["rms"],
                 "class std ratio error": np.max(np.abs(flat.std(1) / expect["class_std"] - 1))}
    print(f"expected ({expect['source']}): class means {expect['class_mean']}, stds {expect['class_std']}, "
          f"each figure <= {expect['bound']:g}; got means {flat.mean(1)}, stds {flat.std(1)}")
    return [f"{name} {value:.3g} > {expect['bound']:g}" for name, value in found.items()
            if not value <= expect["bound"]]


def main(recipe, doc="", argv=None):
    argv = sys.argv[1:] if argv is None else argv
    url = (argv[0] if argv else os.environ.get("GEOPOOL_BASE_URL") or recipe["url"]).rstrip("/")
    print("\n\n".join(doc.strip().split("\n\n")[:2]) + f"\n\ntarget: {url}")
    if recipe.get("cannot"):
        print("cannot regenerate the failing request:", recipe["cannot"])
        return 2
    headers = {"Content-Type": "application/json"}
    if os.environ.get("GEOPOOL_API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["GEOPOOL_API_KEY"]
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(120.0, connect=5.0)) as http:
            problems = judge(http, recipe)
    except httpx.ConnectError as error:
        print(f"could not connect to {url}: {error}")
        return 2
    except httpx.HTTPError as error:  # no answer to a request that needs one
        problems = [f"no HTTP answer: {type(error).__name__}: {error}"]
    if problems is None:
        print("NOT JUDGED: the script cannot redo this check; compare the answer with the message above")
        return 2
    for problem in problems:
        print("REPRODUCED:", problem)
    if not problems:
        print("NOT REPRODUCED: the server now behaves")
    return 1 if problems else 0
