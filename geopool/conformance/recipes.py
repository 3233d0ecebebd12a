"""The recipe of a failing check: the request it sent, as a small JSON template, and what was checked.

A conformance failure's evidence carries ``repro`` (:func:`capture`), from which
geopool.conformance.reproducers writes a standalone script. The request is the last one the running
test sent (:func:`sent`, called by the suite's recording client). Its multi-MB tensors are not kept:
each base64 input becomes ``{"$tensor": spec, "dtype": d}`` (geopool.numpy_payloads), found as a fill
value, a few literal values or the :class:`~geopool.strategies.TensorRecipe` that built it, and kept
only when rebuilding it gives the very values sent; short strings and short non-JSON bodies are kept as
they are. What cannot be rebuilt with numpy (bfloat16 inputs, torch.save bytes that do not load as a
dense CPU tensor and are too long to keep) is said so (``cannot``), never approximated.

``expect`` says what the check wanted, in the words of the reproducer's driver
(geopool.conformance.repro_script): the builders below make each kind.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from geopool import numpy_payloads, wire
from geopool.strategies import recipe_of

__all__ = ["sent", "sending", "capture", "describe_request", "NotRegenerable", "answer", "finite", "close_to",
           "envelope", "figures", "headers", "rejection", "survives"]

#: Strings up to this length are kept as they are (bad values, short bodies); longer ones must be rebuilt.
LITERAL_LIMIT = 2048
#: The largest request template kept (the whole script must stay under 10 KB).
RECIPE_LIMIT = 4000
#: Shorter strings are kept as they are even when they are a tensor's base64.
SHORTER_AS_RECIPE = 100
#: Arrays up to this size are kept as literal values (coordinates, small wrong-shape inputs).
LITERAL_VALUES = 32
#: Samples of an answer kept to compare with (the reproducer must stay a few KB).
SAMPLES = 8


class NotRegenerable(Exception):
    """The request cannot be rebuilt from a recipe with numpy alone; the message says why."""


_SENT: contextvars.ContextVar[list | None] = contextvars.ContextVar("geopool_sent", default=None)


@contextlib.contextmanager
def sending() -> Iterator[None]:
    """Remember the requests the code run inside sends (the plugin wraps each test body in one)."""
    token = _SENT.set([])
    try:
        yield
    finally:
        _SENT.reset(token)


def sent(body: dict[str, Any] | bytes | None, *, path: str = "/pooling") -> None:
    """Note a request the running test sends (only the last two are kept: a reference to the body); None:
    one the suite cannot describe (sent by another client), so no earlier request is taken for it."""
    log = _SENT.get()
    if log is not None:
        log.append({"path": path, "body": body})
        del log[:-2]


def capture(expect: dict[str, Any] | bool | None) -> dict[str, Any]:
    """The ``repro`` evidence of a failing check: the running test's last request and ``expect`` (what the
    check wanted; None or False: nothing a reproducer can judge)."""
    expect = expect or None
    log = _SENT.get()
    if not log:
        return {"cannot": "the failing check sent no request of its own (it judged a shared answer or another "
                          "endpoint)", "expect": expect}
    last = log[-1]
    if last["body"] is None:
        return {"cannot": "a request the suite does not record (concurrent requests, another client)",
                "expect": expect}
    if "described" not in last:  # once per request, however many of its facts fail
        try:
            request, notes = describe_request(last["body"])
            last["described"] = {"request": request, "notes": notes}
        except NotRegenerable as reason:
            last["described"] = {"cannot": str(reason)}
        except Exception as error:  # evidence must never turn a verdict into an error
            last["described"] = {"cannot": f"a request geopool failed to describe ({type(error).__name__}: "
                                           f"{str(error)[:200]})"}
    return {"path": last["path"], **last["described"], "expect": expect}


def describe_request(body: dict[str, Any] | bytes) -> tuple[dict[str, Any], list[str]]:
    """``({"json": template} or {"raw": base64 text}, notes)`` of a request body; NotRegenerable if the
    template would not give the same request."""
    notes: list[str] = []
    if isinstance(body, bytes | bytearray):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            if len(body) > LITERAL_LIMIT:
                raise NotRegenerable(f"a {len(body)}-byte body that Python's json does not read (not JSON, or "
                                     "nested too deep), too large to keep") from None
            return {"raw": base64.b64encode(bytes(body)).decode("ascii")}, notes
    request = {"json": _template(body, notes)}
    size = len(json.dumps(request))
    if size > RECIPE_LIMIT:
        raise NotRegenerable(f"a body whose recipe would take {size} bytes (a reproducer must stay a few KB)")
    return request, notes


def _template(value: Any, notes: list[str]) -> Any:
    if isinstance(value, dict):
        return {key: _template(item, notes) for key, item in value.items()}
    if isinstance(value, list):
        if len(value) > LITERAL_VALUES and all(item == value[0] and type(item) is type(value[0]) for item in value):
            return {"$repeat": [_template(value[0], notes)], "count": len(value)}
        return [_template(item, notes) for item in value]
    if isinstance(value, str) and len(value) > LITERAL_LIMIT:
        return _string(value, notes)
    if isinstance(value, str) and len(value) > SHORTER_AS_RECIPE:  # a small tensor's recipe is shorter
        try:
            return _string(value, notes)
        except NotRegenerable:
            return value
    return value


def _string(text: str, notes: list[str]) -> dict[str, Any]:
    if text.count(text[0]) == len(text):  # filler: counted, not copied (it may be 128 MiB)
        return {"$repeat": text[0], "count": len(text)}
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NotRegenerable(f"a {len(text)}-character string that is not base64") from None
    array, dtype = _tensor(raw)
    spec = describe_array(array, dtype)
    if spec is None:
        raise NotRegenerable(f"a {dtype} tensor of shape {list(array.shape)} that no recipe geopool knows built")
    rebuilt = numpy_payloads.build_tensor(spec, dtype)
    if _bits(rebuilt, dtype) != _bits(array, dtype):
        raise NotRegenerable(f"a {dtype} tensor of shape {list(array.shape)} whose recipe does not rebuild it")
    if not raw.startswith(b"\x93NUMPY") and not notes:
        notes.append("the suite sent this input as torch.save bytes; this sends the same values as .npy, "
                     "which vLLM reads alike (POOL-DTYPE-002)")
    return {"$tensor": spec, "dtype": dtype}


def _bits(array: np.ndarray, dtype: str) -> bytes:
    return numpy_payloads.npy_bytes(array, dtype)


def _tensor(raw: bytes) -> tuple[np.ndarray, str]:
    """The values and dtype of one input's bytes (.npy, or torch.save read with weights_only=True)."""
    if raw.startswith(b"\x93NUMPY"):
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except ValueError as error:
            raise NotRegenerable(f".npy bytes that do not load ({error})") from None
        return array, array.dtype.name
    if not wire.torch_available():
        raise NotRegenerable(f"{len(raw)} bytes that are not .npy (torch.save needs torch to read)")
    locations: list[str] = []
    try:
        tensor = wire.torch_load(raw, saved_on=locations)
    except Exception as error:  # any refusal of the safe load means: only torch builds it
        raise NotRegenerable(f"torch.save bytes that only torch can build ({type(error).__name__}: "
                             f"{str(error)[:120]})") from None
    if type(tensor).__name__ != "Tensor" or str(tensor.layout) != "torch.strided":
        raise NotRegenerable(f"torch.save bytes of a {type(tensor).__name__} that is not a dense tensor: "
                             "only torch builds them")
    if any(location != "cpu" for location in locations):
        raise NotRegenerable(f"a tensor saved from {sorted(set(locations))}: only torch.save records a device")
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype == "bfloat16":
        raise NotRegenerable("a bfloat16 input: numpy has no bfloat16, so only torch.save carries it")
    return tensor.numpy(), dtype


def describe_array(array: np.ndarray, dtype: str) -> dict[str, Any] | None:
    """A tensor spec of ``array`` (see geopool.numpy_payloads), or None when none is known."""
    values = np.asarray(array, np.float32)
    shape = [int(n) for n in values.shape]
    if values.size <= LITERAL_VALUES:
        return {"shape": shape, "values": values.astype(np.float64).ravel().tolist()}
    first = values.flat[0]
    if not np.isnan(first) and bool(np.all(values == first)):
        return {"shape": shape, "fill": float(first)}
    return recipe_of(values, dtype)


# ------------------------------------------------------------------------- what a check expected

def answer() -> dict[str, Any]:
    """A valid request: a 2xx answer whose output decodes to the contract's shape."""
    return {"kind": "answer"}


def finite() -> dict[str, Any]:
    """An answer with finite outputs only."""
    return {"kind": "finite"}


def close_to(reference: dict[str, Any], *, rtol: float = 0.0, atol: float = 0.0) -> dict[str, Any]:
    """An answer within ``atol + rtol·|ref|`` of the answer to the same request with ``reference``'s
    top-level fields (0 and 0: bit for bit)."""
    return {"kind": "close", "reference": reference, "rtol": rtol, "atol": atol}


def headers(content_type: str, *, metadata: bool | None = None) -> dict[str, Any]:
    """A 2xx answer whose content-type starts with ``content_type``, with (True) or without (False) a
    ``metadata`` header (None: either)."""
    return {"kind": "headers", "content_type": content_type, "metadata": metadata}


def envelope(*, request_id: bool = False) -> dict[str, Any]:
    """The answer's envelope: id, object, created, model, data[0], usage; the X-Request-Id in the id."""
    return {"kind": "envelope", "request_id": request_id}


def figures(source: str, positions: np.ndarray, values: np.ndarray, class_mean: Sequence[float],
            class_std: Sequence[float], rms: float, bound: float) -> dict[str, Any]:
    """An answer close to known figures: per-class mean and std, and values at :data:`SAMPLES` of the
    ``positions`` (row, column; ``values`` is classes × positions) within relative error ``bound``."""
    keep = np.linspace(0, len(positions) - 1, min(SAMPLES, len(positions))).astype(int)
    return {"kind": "figures", "source": source, "positions": np.asarray(positions)[keep].tolist(),
            "values": [[float(f"{v:.7g}") for v in row] for row in np.asarray(values)[:, keep]],
            "class_mean": [float(f"{v:.7g}") for v in class_mean], "class_std": [float(f"{v:.7g}") for v in class_std],
            "rms": float(rms), "bound": float(bound)}


def survives(valid: dict[str, Any]) -> dict[str, Any] | None:
    """After the request, whatever its answer: /health answers 200 and the ``valid`` request a 2xx that
    decodes (None when ``valid`` cannot be rebuilt)."""
    try:
        request, _ = describe_request(valid)
    except NotRegenerable:
        return None
    return {"kind": "survives", "valid": request}


def rejection(aspect: str, *, statuses: Sequence[int] = (), names: Sequence[str] = ()) -> dict[str, Any]:
    """A rejection: ``aspect`` ``status`` (one of ``statuses``, any 4xx when empty), ``error-body``
    (vLLM's error object, code = status) or ``message`` (naming one of ``names``)."""
    return {"kind": "rejection", "aspect": aspect, "statuses": list(statuses), "names": list(names)}
