"""Invalid /pooling requests: the named cases of the negative suite and Hypothesis strategies for the
invalid space. A request here is ``(body bytes, description)``; nothing is sent from this module.

Cases marked ``destructive`` are known or suspected to kill a vLLM 0.32 engine (verified: a dtype the
model was not loaded with, rank-4 pixel values, an extra input key, empty or string message content);
the suite only sends them to a server it owns or when the user passes ``--destructive``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from geopool import wire
from geopool.contract import INPUT_DTYPES, ModelContract
from geopool.errors import InvalidArgument

__all__ = ["BadRequest", "Mutation", "bad_requests", "client_mistakes", "invalid_mutations", "code_running_payload",
           "sparse_payload", "device_saved_payload"]

Body = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class BadRequest:
    """One invalid request and what a conforming server answers.

    ``statuses`` are the acceptable 4xx codes; ``names`` are words one of which the error message
    should contain (the field or input at fault); ``edit`` turns a valid seed body into the bad one
    (or returns raw bytes for bodies that are not JSON).
    """

    name: str
    requirement: str
    statuses: tuple[int, ...]
    names: tuple[str, ...]
    edit: Callable[[Body, ModelContract], Body | bytes]
    destructive: bool = False
    #: The bad input is torch.save bytes (a cut archive, a pickled non-tensor): only torch builds it.
    needs_torch: bool = False
    #: A conforming server may instead answer as for the valid request (it casts, squeezes or moves the
    #: input): then the answer must be the valid request's.
    may_answer: bool = False

    def body(self, valid: Body, contract: ModelContract) -> bytes:
        edited = self.edit(json.loads(json.dumps(valid)), contract)
        return edited if isinstance(edited, bytes) else json.dumps(edited).encode()


def _set_input(name_of: Callable[[ModelContract], str], value: Callable[[ModelContract], Any]):
    def edit(body: Body, contract: ModelContract) -> Body:
        return wire.set_image_embed(body, name_of(contract), value(contract))
    return edit


def _target(contract: ModelContract) -> str:
    return contract.target


def _second_input(contract: ModelContract) -> str:
    others = [spec.name for spec in contract.inputs if spec.name != contract.target]
    return others[0] if others else contract.target


def _tensor(shape_of: Callable[[ModelContract], tuple[int, ...]], *, dtype: str | None = None,
            fmt: wire.InputFormat | None = None):
    def make(contract: ModelContract) -> str:
        return wire.encode_array(np.ones(shape_of(contract), np.float32), dtype=dtype or contract.input_dtype,
                                 fmt=fmt)
    return make


def _other_dtype(contract: ModelContract) -> str:
    return next(d for d in INPUT_DTYPES if d != contract.input_dtype)


def _saved(obj: Any) -> str:
    """Base64 ``torch.save`` of any object (the hostile payloads are not tensors)."""
    return wire.base64_text(wire.torch_save_bytes(obj))


def _without(name_of: Callable[[ModelContract], str]):
    def edit(body: Body, contract: ModelContract) -> Body:
        del wire.image_embeds(body)[name_of(contract)]
        return body
    return edit


def _top(**fields: Any):
    def edit(body: Body, contract: ModelContract) -> Body:
        body.update(fields)
        return body
    return edit


def _messages(value: Callable[[Body], Any]):
    def edit(body: Body, contract: ModelContract) -> Body:
        body["messages"] = value(body)
        return body
    return edit


def _content(value: Any):
    def edit(body: Body, contract: ModelContract) -> Body:
        body["messages"][0]["content"] = value
        return body
    return edit


def _target_shape(change: Callable[[tuple[int, ...]], tuple[int, ...]]):
    return lambda contract: change(contract.input_shape(contract.target))


def bad_requests() -> list[BadRequest]:
    """Every named invalid request of the negative suite."""
    return [
        BadRequest("bad-base64", "POOL-REJ-001", (400,), ("base64",),
                   _set_input(_target, lambda c: "@@not base64@@")),
        BadRequest("not-a-tensor-file", "POOL-REJ-002", (400,), ("tensor", "load", "pixel"),
                   _set_input(_target, lambda c: wire.base64_text(b"this is text, not a tensor file"))),
        BadRequest("truncated-tensor-file", "POOL-REJ-002", (400,), ("tensor", "load", "zip", "archive"),
                   _set_input(_target, lambda c: wire.base64_text(
                       wire.base64_bytes(_tensor(_target_shape(tuple), fmt="torch")(c))[:200])), needs_torch=True),
        BadRequest("non-tensor-object", "POOL-REJ-003", (400,), ("tensor",),
                   _set_input(_target, lambda c: _saved({"pixel_values": [1.0, 2.0]})), needs_torch=True),
        BadRequest("missing-input", "POOL-REJ-004", (400,), ("location_coords", "missing", "expected"),
                   _without(_second_input)),
        BadRequest("json-arrays", "POOL-REJ-006", (400,), ("pixel_values", "string", "str"),
                   _set_input(_target, lambda c: [[1.0, 2.0], [3.0, 4.0]])),
        BadRequest("malformed-json", "POOL-REJ-007", (400,), ("json", "JSON", "parsing"),
                   lambda body, c: json.dumps(body).encode()[:1000]),
        BadRequest("unknown-model", "POOL-REJ-008", (404,), ("no-such-model",), _top(model="no-such-model")),
        BadRequest("bad-encoding-format", "POOL-REJ-009", (400,), ("encoding_format",),
                   _top(encoding_format="xml")),
        BadRequest("bad-embed-dtype", "POOL-REJ-009", (400,), ("embed_dtype",), _top(embed_dtype="float64")),
        BadRequest("bad-endianness", "POOL-REJ-009", (400,), ("endianness",), _top(endianness="middle")),
        BadRequest("messages-not-a-list", "POOL-REJ-010", (400,), ("messages",),
                   _messages(lambda body: body["messages"][0])),
        BadRequest("part-of-another-type", "POOL-REJ-010", (400,), ("image_url", "type"),
                   lambda body, c: _retype(body)),
        BadRequest("two-image-parts", "POOL-REJ-010", (400,), ("image", "length"),
                   lambda body, c: _double(body)),
        # Known to kill a vLLM 0.32 engine; sent only to a server the suite owns, or with --destructive.
        BadRequest("extra-input-key", "POOL-REJ-005", (400,), ("temporal_coords", "unexpected", "unknown"),
                   _set_input(lambda c: "temporal_coords", _tensor(lambda c: (1, 2))), destructive=True),
        BadRequest("empty-messages", "POOL-REJ-010", (400,), ("messages",), _messages(lambda body: []),
                   destructive=True),
        BadRequest("empty-content", "POOL-REJ-010", (400,), ("content",), _content([]), destructive=True),
        BadRequest("string-content", "POOL-REJ-010", (400,), ("content", wire.IMAGE_EMBEDS), _content("hello"),
                   destructive=True),
        BadRequest("other-input-dtype", "POOL-SURV-002", (400,), ("dtype", "Half", "float"),
                   lambda body, c: _all_inputs(body, c, _other_dtype(c)), destructive=True),
        BadRequest("rank-4-target", "POOL-SURV-002", (400,), ("shape", "dimension", "rank"),
                   _set_input(_target, _tensor(_target_shape(lambda s: (*s, 1)))), destructive=True),
        BadRequest("rank-2-target", "POOL-SURV-002", (400,), ("shape", "dimension", "rank"),
                   _set_input(_target, _tensor(_target_shape(lambda s: s[-2:]))), destructive=True),
        BadRequest("wrong-channel-count", "POOL-SURV-002", (400,), ("channel", "shape"),
                   _set_input(_target, _tensor(_target_shape(lambda s: (s[0] - 1, *s[1:])))), destructive=True),
        BadRequest("mismatched-coords-shape", "POOL-SURV-002", (400,), ("location_coords", "shape"),
                   _set_input(_second_input, _tensor(lambda c: (1, 3))), destructive=True),
    ]


def client_mistakes() -> list[BadRequest]:
    """Requests real clients get wrong (POOL-CLI-001..004): inputs built the way numpy, a batched
    training loop or a GPU leaves them, and bodies shaped like the completions API's."""
    return [
        # numpy's default dtype: np.ones/np.array give float64, and np.save keeps it.
        BadRequest("float64-npy", "POOL-CLI-001", (400, 422), ("dtype", "float64", "double"),
                   lambda body, c: _numpy_default_inputs(body, c), destructive=True, may_answer=True),
        # A batch of one, as a DataLoader or the offline example's tiling yields it.
        BadRequest("leading-batch-dim", "POOL-CLI-002", (400, 422), ("shape", "dimension", "rank", "batch"),
                   _set_input(_target, _tensor(_target_shape(lambda s: (1, *s)))), destructive=True,
                   may_answer=True),
        BadRequest("cuda-saved-tensor", "POOL-CLI-003", (400, 422), ("cuda", "device"),
                   _set_input(_target, _cuda_saved), needs_torch=True, may_answer=True),
        # The completions/embeddings API's shape: the tensor (base64 text) as the input string ...
        BadRequest("input-text", "POOL-CLI-004", (400, 422), ("messages", wire.IMAGE_EMBEDS),
                   lambda body, c: _completion(body, "input", wire.image_embeds(body)[c.target])),
        # ... under "prompt", the legacy completions field ...
        BadRequest("prompt", "POOL-CLI-004", (400, 422), ("messages", wire.IMAGE_EMBEDS),
                   lambda body, c: _completion(body, "prompt", wire.image_embeds(body))),
        # ... or the seed's token id as input with the tensors beside it (never read by vLLM 0.32).
        BadRequest("input-token-ids", "POOL-CLI-004", (400, 422), ("messages", wire.IMAGE_EMBEDS),
                   lambda body, c: _completion(body, "input", [1], image_embeds=wire.image_embeds(body)),
                   destructive=True),
    ]


def _numpy_default_inputs(body: Body, contract: ModelContract) -> Body:
    for spec in contract.inputs:
        wire.image_embeds(body)[spec.name] = wire.base64_text(_npy(np.ones(spec.shape)))  # float64
    return body


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _cuda_saved(contract: ModelContract) -> str:
    return device_saved_payload(np.ones(contract.input_shape(contract.target)), dtype=contract.input_dtype)


def _completion(body: Body, field: str, value: Any, **more: Any) -> Body:
    return {"model": body["model"], field: value, "encoding_format": body["encoding_format"], **more}


def _retype(body: Body) -> Body:
    wire.image_part(body)["type"] = "image_url"
    return body


def _double(body: Body) -> Body:
    content = body["messages"][0]["content"]
    content.append(json.loads(json.dumps(content[0])))
    return body


def _all_inputs(body: Body, contract: ModelContract, dtype: str) -> Body:
    wire.image_embeds(body).update(wire.encode_inputs(wire.seed_inputs(contract), dtype=dtype))
    return body


class _Canary:
    """Unpickling this calls ``pathlib.Path.touch(path)``: harmless, and visible on the unpickling machine."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def code_running_payload(marker_path: str) -> str:
    """Base64 ``torch.save`` of an object whose unpickling creates ``marker_path``."""
    if not isinstance(marker_path, str | os.PathLike) or not str(marker_path):
        raise InvalidArgument(f"marker_path={marker_path!r} must be a non-empty path, "
                              "e.g. '/tmp/geopool-canary-<uuid>' (the file the unpickling would create)")
    return _saved(_Canary(marker_path))


def sparse_payload(*, indices: list[list[int]], size: tuple[int, ...]) -> str:
    """Base64 ``torch.save`` of a sparse COO tensor with ``indices`` that may lie outside ``size``."""
    _check_sparse(indices, size)
    import torch

    values = torch.ones(len(indices[0]), dtype=torch.float32)
    tensor = torch.sparse_coo_tensor(torch.tensor(indices), values, size, check_invariants=False)
    return _saved(tensor)


def device_saved_payload(array: np.ndarray, *, dtype: str, device: str = "cuda:0") -> str:
    """Base64 ``torch.save`` bytes of ``array`` as a client on a GPU writes them: the storage is tagged
    with ``device`` (what ``torch.save(tensor.cuda())`` records), built on the CPU without a GPU.

    ``torch.save`` pickles each storage with its location string; only that string differs between a
    CPU and a CUDA save, so the archive's ``data.pkl`` is rewritten with the new location (pickle
    protocol 2 writes it as BINUNICODE: ``X``, a 4-byte little-endian length, the UTF-8 text).
    """
    import io
    import zipfile

    if not isinstance(device, str) or not device or device == "cpu":
        raise InvalidArgument(f"device={device!r} must name a device other than the CPU, e.g. 'cuda:0'")
    saved = wire.serialize_array(array, dtype=dtype, fmt="torch")
    cpu, tagged = (b"X" + len(text).to_bytes(4, "little") + text.encode() for text in ("cpu", device))
    rewritten = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(saved)) as source, \
            zipfile.ZipFile(rewritten, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                if data.count(cpu) != 1:  # another pickle protocol or layout: say so rather than send junk
                    raise InvalidArgument(f"cannot find the one storage location 'cpu' in {info.filename}")
                data = data.replace(cpu, tagged)
            target.writestr(info.filename, data)
    return wire.base64_text(rewritten.getvalue())


def _check_sparse(indices: Any, size: Any) -> None:
    if (not isinstance(size, tuple | list) or not size
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in size)):
        raise InvalidArgument(f"size={size!r} must be a non-empty tuple of ints >= 0 (the declared dense shape), "
                              "e.g. (6, 512, 512)")
    if (not isinstance(indices, tuple | list) or len(indices) != len(size)
            or not all(isinstance(row, tuple | list) for row in indices)):
        raise InvalidArgument(f"indices={indices!r:.200} must hold one list of coordinates per dimension of "
                              f"size={size!r}: {len(size)} lists, e.g. {[[0] for _ in size]!r}")
    if len({len(row) for row in indices}) != 1 or not indices[0]:
        raise InvalidArgument(f"indices={indices!r:.200}: every dimension's list needs the same, non-zero number "
                              "of coordinates (one per stored value)")
    if not all(isinstance(i, int) and not isinstance(i, bool) for row in indices for i in row):
        raise InvalidArgument(f"indices={indices!r:.200} must hold ints (out-of-bounds ones are fine)")


# ------------------------------------------------------------------------------------ Hypothesis


MUTATION_KINDS = ("truncate", "damage", "retype")


@dataclasses.dataclass(frozen=True)
class Mutation:
    """A non-destructive way to spoil one input of a valid body; shape-free, so it prints and replays.

    ``kind`` is ``truncate`` (keep ``fraction`` of the base64 text), ``damage`` (overwrite archive bytes
    at ``offset`` from the head, or from the tail when ``at_tail``, with ``junk``) or ``retype`` (put the
    JSON ``value`` where the base64 text was). ``input_index`` picks the input, modulo their number.
    """

    kind: str
    input_index: int = 0
    fraction: float = 0.0
    at_tail: bool = False
    offset: int = 0
    junk: bytes = b"\x00"
    value: Any = None

    def __post_init__(self) -> None:
        if self.kind not in MUTATION_KINDS:
            raise InvalidArgument(f"kind={self.kind!r} must be one of {MUTATION_KINDS}")
        if isinstance(self.input_index, bool) or not isinstance(self.input_index, int) or self.input_index < 0:
            raise InvalidArgument(f"input_index={self.input_index!r} must be an int >= 0 (taken modulo the inputs)")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, int | float) or not 0 <= self.fraction <= 1:
            raise InvalidArgument(f"fraction={self.fraction!r} must be a number in [0, 1] (the share of the base64 "
                                  "text kept)")
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or self.offset < 0:
            raise InvalidArgument(f"offset={self.offset!r} must be an int >= 0 (bytes from the archive's head, "
                                  "or from 64 bytes before its end when at_tail)")
        if not isinstance(self.junk, bytes) or not self.junk:
            raise InvalidArgument(f"junk={self.junk!r} must be non-empty bytes, e.g. b'\\x00'")

    def apply(self, valid: Body, contract: ModelContract) -> tuple[str, bytes]:
        """``(description, body bytes)`` of ``valid`` with this mutation applied."""
        body = json.loads(json.dumps(valid))
        name = contract.inputs[self.input_index % len(contract.inputs)].name
        embeds = wire.image_embeds(body)
        text = embeds[name]
        if self.kind == "truncate":
            embeds[name] = text[: int(len(text) * self.fraction)]
            what = f"base64 truncated to {self.fraction:.3f} of its length"
        elif self.kind == "damage":
            embeds[name] = _damage(text, self.at_tail, self.offset, self.junk)
            what = f"{'tail' if self.at_tail else 'head'} bytes at {self.offset} replaced by {self.junk!r}"
        else:
            embeds[name] = self.value
            what = f"JSON {type(self.value).__name__} {self.value!r:.40} instead of base64"
        return f"{name}: {what}", json.dumps(body).encode()


def invalid_mutations() -> st.SearchStrategy[Mutation]:
    """Truncated base64, damaged torch.save archive headers/tails, and JSON values of the wrong type."""
    index = st.integers(0, 7)
    truncated = st.builds(Mutation, st.just("truncate"), index, fraction=st.floats(0.0, 0.999))
    damaged = st.builds(Mutation, st.just("damage"), index, at_tail=st.booleans(), offset=st.integers(0, 63),
                        junk=st.binary(min_size=1, max_size=8))
    json_values = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                            st.lists(st.floats(-1, 1), max_size=4),
                            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
    retyped = st.builds(Mutation, st.just("retype"), index, value=json_values)
    return st.one_of(truncated, damaged, retyped)


def _damage(text: str, at_tail: bool, offset: int, junk: bytes) -> str:
    """Overwrite bytes of the zip archive's local header (head) or central directory (tail)."""
    raw = bytearray(wire.base64_bytes(text))
    start = len(raw) - 64 + offset if at_tail else offset
    for i, byte in enumerate(junk):
        if 0 <= start + i < len(raw):
            raw[start + i] = byte ^ 0xFF if raw[start + i] == byte else byte
    return wire.base64_text(bytes(raw))
