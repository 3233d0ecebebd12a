"""Faults the proxy plants in a real server's answers: ``NAME[:param[:param]]``, or several stacked as
layers, ``NAME+NAME`` (outermost first, see :mod:`geopool.faults.composed`).

Each fault edits what passes through (:meth:`Fault.response`) or answers instead of the upstream
(:meth:`Fault.intercept`). The faults live by what they spoil:

=================  ==========================================================================
``base``           :class:`Exchange` and :class:`Fault` (the pass-through ``none``)
``outputs``        output values: layout, float16 bytes, byte swap, NaN/inf, truncation, noise
``numeric``        every answer bent alike: scaled, or the same noise added to each
``envelope``       the JSON envelope (data[], index, fields, model, id) and swapped outputs
``error_answers``  rejections: 5xx for 4xx, bad input accepted, flat or blank error bodies, death,
                   every request refused (vLLM 0.33's out-of-vocabulary 400)
``endpoints``      /metrics, /version (garbage or another version), /v1/models, /openapi.json,
                   /health, the metadata header
``timing``         slow tail, stall, rate limit, 503s, connection resets
``client``         around client mistakes: completion bodies taken, closing after errors, raw and
                   fp8 answers spoiled
``gateway``        a validating gateway answering what a conforming server would (``repair-validate``),
                   and vLLM 0.32's death on the inputs that kill its engine, played by the proxy
``repairs``        the other positive controls: float answers, a 200 schema, serialized batches
``geotiff``        image-to-image answers: the GeoTIFF's georeferencing moved, its class map flipped
                   north-south, or its two classes swapped; the positive control refusing unreadable paths
``composed``       ``A+B``: faults stacked as layers
=================  ==========================================================================

The ``repair-*`` faults are positive controls: they make the proxy answer what a conforming server
would, so a requirement vLLM 0.32 fails can be seen passing (docs/fault-matrix.md).

Bad specs raise :class:`geopool.errors.FaultSpecError`.
"""

from __future__ import annotations

from collections.abc import Callable

from geopool.errors import FaultSpecError
from geopool.faults.base import Exchange, Fault
from geopool.faults.client import AcceptCompletion, CloseAfterError, LowBit
from geopool.faults.composed import Composed
from geopool.faults.endpoints import (
    BytesMetadata,
    BytesNoMetadata,
    HealthFlap,
    MetricsFrozen,
    MetricsGarbage,
    ModelsEmpty,
    OpenapiNarrow,
    OpenapiStrip,
    VersionAs,
    VersionGarbage,
)
from geopool.faults.envelope import (
    DropField,
    DropRequestId,
    ExtraData,
    IgnoreInput,
    MissingData,
    RetypeField,
    Stale,
    Swap,
    WrongIndex,
    WrongModel,
)
from geopool.faults.error_answers import (
    AcceptBad,
    BlankErrors,
    DieAfterBad,
    FlatErrors,
    OutOfVocabulary,
    ServerErrorForClientError,
)
from geopool.faults.gateway import DieOnKiller, RepairValidate
from geopool.faults.geotiff import GeotiffFlip, GeotiffShift, GeotiffSwapClasses, RepairIoPaths
from geopool.faults.numeric import FixedNoise, Scale
from geopool.faults.outputs import (
    ByteSwap,
    Float16Bytes,
    HalfPrecisionNoise,
    IgnoreEndianness,
    Infinite,
    Layout,
    Noise,
    NonFinite,
    Truncate,
)
from geopool.faults.repairs import RepairFloat, RepairOpenapi, RepairSerialize
from geopool.faults.timing import RateLimit, ResetMidBody, SlowEvery, SlowTail, Stall, Unavailable

__all__ = ["FAULTS", "Exchange", "Fault", "describe_faults", "parse_fault"]

FAULTS: dict[str, Callable[..., Fault]] = {cls.name: cls for cls in [
    Fault, Layout, Float16Bytes, ByteSwap, NonFinite, Infinite, Truncate, Noise, HalfPrecisionNoise,
    ExtraData, MissingData, WrongIndex, DropField, RetypeField, WrongModel, DropRequestId,
    IgnoreInput, Stale, Swap, ServerErrorForClientError, OutOfVocabulary, AcceptBad, FlatErrors, BlankErrors,
    DieAfterBad,
    MetricsFrozen, MetricsGarbage, VersionGarbage, VersionAs, ModelsEmpty, OpenapiStrip, OpenapiNarrow,
    BytesMetadata, BytesNoMetadata, HealthFlap, IgnoreEndianness,
    SlowTail, SlowEvery, Stall, RateLimit, Unavailable, ResetMidBody,
    AcceptCompletion, CloseAfterError, LowBit,
    Scale, FixedNoise,
    RepairValidate, DieOnKiller, RepairFloat, RepairOpenapi, RepairSerialize,
    GeotiffShift, GeotiffFlip, GeotiffSwapClasses, RepairIoPaths,
]}


def parse_fault(spec: str) -> Fault:
    """``NAME[:param...]`` → a Fault, ``A+B`` → the layers stacked (A in front); an unknown name raises
    FaultSpecError listing the known ones."""
    if "+" in spec:
        parts = spec.split("+")
        if any(not part.strip() for part in parts):
            raise FaultSpecError(f"fault spec {spec!r}: an empty layer; stack faults as NAME+NAME, "
                                 "e.g. die-on-killer+repair-validate")
        return Composed([_parse_one(part.strip()) for part in parts])
    return _parse_one(spec)


def _parse_one(spec: str) -> Fault:
    name, *params = spec.split(":")
    if name not in FAULTS:
        raise FaultSpecError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
    fault = FAULTS[name](*params)
    for index in range(len(params)):  # validate numeric params eagerly, with the fault's own message
        if not fault.text_params:
            fault._float(index, 0.0)
    return fault


def describe_faults() -> list[tuple[str, str]]:
    """``(name, summary)`` of every fault, by name."""
    return [(name, cls.summary) for name, cls in sorted(FAULTS.items())]
