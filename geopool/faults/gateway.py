"""A validating gateway in front of vLLM: the proxy judges each model request against the contract.

``repair-validate`` is a positive control. It answers what a conforming server would: every request
whose inputs vLLM 0.32 mishandles (a 500, a dead engine, a 200 for a wrong shape) is refused with 400
or 413 and vLLM's error body, whose message names the problem; the rest is forwarded unchanged.
``die-on-killer`` plays vLLM 0.32's death instead: the inputs that kill its engine get 500
"EngineCore encountered an issue", then the server is down until a ``/health`` probe saw it. Neither
ever forwards such an input, so the shared real server survives the destructive tests.

Inputs are only read with ``numpy.load(allow_pickle=False)`` or ``torch.load(weights_only=True)``
(:func:`geopool.wire.torch_load`): a hostile pickle is refused, never run.
"""

from __future__ import annotations

import binascii
import dataclasses
import io
import json
from typing import Any

import numpy as np

from geopool import wire
from geopool.contract import ModelContract
from geopool.faults.base import Exchange, Fault

__all__ = ["Problem", "find_problem", "RepairValidate", "DieOnKiller"]

#: Paths whose bodies reach the model (``/invocations`` is SageMaker's alias of ``/pooling``).
MODEL_PATHS = ("/pooling", "/invocations")
#: vLLM 0.32's answer to a request whose input kills the engine (pooling_contract §6.3).
ENGINE_DIED = "EngineCore encountered an issue. See stack trace (above) for the root cause."


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why a request is refused: the status, a message naming the field at fault, and whether the same
    request kills a vLLM 0.32 engine (``kills``)."""

    status: int
    message: str
    param: str | None = None
    kills: bool = False

    def error_json(self) -> bytes:
        kind = "RequestEntityTooLarge" if self.status == 413 else "BadRequestError"
        return wire.error_json(self.message, type=kind, code=self.status, param=self.param)


def find_problem(exchange: Exchange, contract: ModelContract, *, limit_bytes: int) -> Problem | None:
    """The first problem of a model request, or None when a conforming server would serve it."""
    if len(exchange.request_body) > limit_bytes:
        return Problem(413, f"request body of {len(exchange.request_body)} bytes is over the limit of "
                            f"{limit_bytes} bytes")
    body = exchange.request_json
    if not isinstance(body, dict):
        return _not_json(exchange.request_body)
    try:
        embeds = _the_image_embeds(body)
    except _Refused as refused:
        return refused.problem
    names = {spec.name for spec in contract.inputs}
    if not isinstance(embeds, dict):
        return Problem(400, f"image_embeds must map input names to base64 tensors, got {type(embeds).__name__}",
                       "image_embeds")
    if extra := sorted(set(embeds) - names):
        return Problem(400, f"unexpected input {', '.join(map(str, extra))}: the model takes {sorted(names)}",
                       extra[0], kills=True)
    if missing := sorted(names - set(embeds)):
        return Problem(400, f"missing required input {', '.join(missing)} (expected inputs: {sorted(names)})",
                       missing[0])
    for spec in contract.inputs:
        if problem := _input_problem(spec.name, embeds[spec.name], contract, limit_bytes):
            return problem
    return None


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _not_json(raw: bytes) -> Problem:
    try:
        json.loads(raw)
    except RecursionError:
        return Problem(400, "JSON decode error: the body nests deeper than the parser allows")
    except ValueError as exc:
        return Problem(400, f"JSON decode error: {exc}")
    return Problem(400, "the JSON body must be an object with model and messages")


def _the_image_embeds(body: dict[str, Any]) -> Any:
    """``image_embeds`` of the one image part, or _Refused naming what is wrong with the structure."""
    messages = body.get("messages")
    if messages is None and isinstance(body.get("input"), list):
        # The completions API's token-id form (the seed's [1]) with the tensors beside it: vLLM 0.32 runs
        # it without the image and its engine dies (POOL-CLI-004, case input-token-ids).
        raise _Refused(Problem(400, "input as token ids is not supported: send the tensors as one "
                                    f"{wire.IMAGE_EMBEDS} part of a chat message", "input", kills=True))
    if not isinstance(messages, list):
        raise _Refused(Problem(400, "messages must be a list of chat messages (this server takes chat-style "
                                    f"requests), got {type(messages).__name__}", "messages"))
    if not messages:
        raise _Refused(Problem(400, "messages is empty: one user message with one image_embeds part is needed",
                               "messages", kills=True))
    parts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            raise _Refused(Problem(400, f"content must be a list of content parts with one {wire.IMAGE_EMBEDS} "
                                        "part, got a string", "content", kills=True))
        if not isinstance(content, list) or not content:
            raise _Refused(Problem(400, f"content must be a non-empty list of parts, got {content!r:.40}",
                                   "content", kills=True))
        parts.extend(content)
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != wire.IMAGE_EMBEDS:
            raise _Refused(Problem(400, f"content part type {kind!r} is not supported: only {wire.IMAGE_EMBEDS}",
                                   "type"))
    if len(parts) != 1:
        raise _Refused(Problem(400, f"content holds {len(parts)} image_embeds parts; the model takes exactly one "
                                    "image (list length must be 1)", "content"))
    return parts[0].get(wire.IMAGE_EMBEDS)


def _input_problem(name: str, value: Any, contract: ModelContract, limit_bytes: int) -> Problem | None:
    if not isinstance(value, str):
        return Problem(400, f"input {name} must be a base64 string of a tensor file, got {type(value).__name__}",
                       name)
    try:
        raw = wire.base64_bytes(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        return Problem(400, f"input {name} is not valid base64: {exc}", name)
    if not raw:
        return Problem(400, f"input {name} is empty: not a tensor file", name)
    try:
        dtype, shape, sparse_error = _read_tensor(raw)
    except _Refused as refused:
        return dataclasses.replace(refused.problem, message=f"input {name}: {refused.problem.message}", param=name)
    expected = contract.input_shape(name)
    dense_bytes = int(np.prod(shape, dtype=np.float64)) * 4
    if dense_bytes > limit_bytes:  # a sparse tensor may declare a size no server should allocate
        return Problem(400, f"input {name} declares shape {shape}: {dense_bytes} bytes dense, over the decode limit "
                            f"of {limit_bytes} bytes", name)
    if sparse_error:
        return Problem(400, f"input {name}: sparse tensor of shape {shape} is invalid: {sparse_error}", name)
    if dtype != contract.input_dtype:
        return Problem(400, f"input {name} has dtype {dtype}; this server takes {contract.input_dtype}", name,
                       kills=True)
    if name == contract.target:
        if len(shape) != len(expected) or shape[:-2] != expected[:-2]:
            what = "rank" if len(shape) != len(expected) else "channel count"
            return Problem(400, f"input {name} has shape {shape} (wrong {what}); expected "
                                f"{(*expected[:-2], 'H', 'W')}", name, kills=True)
    elif shape != expected:
        return Problem(400, f"input {name} has shape {shape}; expected {expected}", name)
    return None


def _read_tensor(raw: bytes) -> tuple[str, tuple[int, ...], str | None]:
    """(dtype, shape, sparse invariant error) of ``.npy`` or ``torch.save`` bytes, loaded safely."""
    if raw.startswith(b"\x93NUMPY"):
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _Refused(Problem(400, f"not a loadable tensor file (.npy: {exc})")) from exc
        return array.dtype.name, tuple(array.shape), None
    saved_on: list[str] = []
    try:
        loaded = wire.torch_load(raw, saved_on=saved_on)
    except Exception as exc:  # any failure to load untrusted bytes is the client's: a 400, never a 500
        raise _Refused(Problem(400, f"not a loadable tensor file (torch.load: {str(exc).splitlines()[0][:200]})")) \
            from exc
    import torch

    if not isinstance(loaded, torch.Tensor):
        raise _Refused(Problem(400, f"did not deserialize to a torch.Tensor (got {type(loaded).__name__})"))
    devices = sorted({location for location in saved_on if location != "cpu"})
    if devices:  # what vLLM 0.32 answers with a 500; a conforming server names the device
        raise _Refused(Problem(400, f"the tensor was saved on device {', '.join(devices)}; this server loads "
                                    "tensors on the CPU: save it from the CPU (tensor.cpu())"))
    sparse_error = None
    if loaded.layout == torch.sparse_coo:
        try:
            torch._validate_sparse_coo_tensor_args(loaded._indices(), loaded._values(), loaded.size())
        except RuntimeError as exc:
            sparse_error = str(exc).splitlines()[0][:200]
    elif loaded.layout != torch.strided:
        sparse_error = f"layout {loaded.layout} is not supported"
    return str(loaded.dtype).removeprefix("torch."), tuple(loaded.shape), sparse_error


class _ContractFault(Fault):
    needs_contract = True
    #: The request size limit, MiB (a parameter of repair-validate).
    limit_mib = 32.0

    def problem(self, exchange: Exchange) -> Problem | None:
        if exchange.method != "POST" or exchange.path not in MODEL_PATHS:
            return None
        assert self.contract is not None  # bind() refuses to run without it
        limit = int(self.limit_mib * 2**20)
        key = f"problem@{limit}"  # stacked gateway layers judge each request once (every input decoded)
        if key not in exchange.notes:
            exchange.notes[key] = find_problem(exchange, self.contract, limit_bytes=limit)
        return exchange.notes[key]


class RepairValidate(_ContractFault):
    name, summary = ("repair-validate", "positive control: a validating gateway refuses bad model requests with "
                     "400/413 and vLLM's error body naming the problem (param: size limit MiB [32])")

    def __init__(self, *params):
        super().__init__(*params)
        self.limit_mib = self._float(0, 32.0)

    async def intercept(self, exchange):
        if (problem := self.problem(exchange)) is None:
            return False
        exchange.status, exchange.body = problem.status, problem.error_json()
        exchange.headers = {"content-type": "application/json"}
        return True


class DieOnKiller(_ContractFault):
    name, summary = ("die-on-killer", "inputs that kill vLLM 0.32's engine get its 500, then every request 503 "
                     "until /health was probed (param: probes [1]); never forwarded")

    def __init__(self, *params):
        super().__init__(*params)
        self.dead_probes_left = 0

    async def intercept(self, exchange):
        if self.dead_probes_left > 0:
            if exchange.path == "/health":
                self.dead_probes_left -= 1
            exchange.status, exchange.headers = 503, {"content-type": "application/json"}
            exchange.body = wire.error_json("proxy fault: the engine died; the server is down", type="EngineDeadError",
                                            code=503)
            return True
        problem = self.problem(exchange)
        if problem is None or not problem.kills:
            return False
        self.dead_probes_left = max(1, int(self._float(0, 1.0)))
        exchange.status, exchange.headers = 500, {"content-type": "application/json"}
        exchange.body = wire.error_json(ENGINE_DIED, type="InternalServerError", code=500)
        return True
