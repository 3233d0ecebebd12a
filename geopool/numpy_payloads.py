"""Payloads and answers with numpy alone: tensors from recipes, .npy inputs, output values ↔ bytes.

geopool builds its tensors and reads its answers with these functions, and every reproducer
(geopool.conformance.reproducers) embeds this file's source verbatim, so the two never drift. Hence
no geopool import here (numpy, base64, io only) and no argument checks: callers check.

A tensor spec is JSON: ``{"shape", "fill"}``, ``{"shape", "values"}`` (flat) or ``{"shape", "seed",
"distribution", "low", "high", "specials"}`` (geopool.strategies.TensorRecipe).
"""

import base64
import io

import numpy as np


def special_values(dtype):
    """NaN, ±inf, extremes, smallest normal and subnormal of ``dtype``."""
    if dtype == "bfloat16":
        big, tiny, sub = 3.3895313892515355e38, 1.1754943508222875e-38, 9.183549615799121e-41
    else:
        info = np.finfo(dtype)
        big, tiny, sub = float(info.max), float(info.tiny), float(info.smallest_subnormal)
    return {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf"), "max": big, "min": -big,
            "tiny": tiny, "subnormal": sub, "-zero": -0.0}


def _order(endianness):
    return ">" if endianness == "big" else "<"


def values_to_bytes(values, embed_dtype="float32", endianness="little"):
    """float32 ``values`` as vLLM's raw output bytes (round to nearest even, overflow to ±inf)."""
    order, flat = _order(endianness), np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if embed_dtype == "bfloat16":  # the top half of a float32, rounded
        bits = flat.view(np.uint32).astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return np.where(np.isnan(flat), 0x7FC0, rounded).astype(f"{order}u2").tobytes()
    with np.errstate(over="ignore"):
        return flat.astype(f"{order}{'f4' if embed_dtype == 'float32' else 'f2'}").tobytes()


def fp8_format(embed_dtype):
    """``(exponent bits, mantissa bits, exponent bias)`` of a 1-byte embed dtype vLLM answers in (OCP FP8)."""
    return {"fp8_e4m3": (4, 3, 7), "fp8_e5m2": (5, 2, 15)}[embed_dtype]


def fp8_values(raw, embed_dtype):
    """1-byte fp8 output values → flat float32 values, exactly (every fp8 value is a float32). e4m3 has no
    infinity and one NaN per sign, ``0x7F``; e5m2 is IEEE-like, with infinities and NaNs at the top exponent."""
    exponent_bits, mantissa_bits, bias = fp8_format(embed_dtype)
    codes = np.arange(256, dtype=np.int64)
    sign = np.where(codes >> 7, -1.0, 1.0)
    exponent = (codes >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = (codes & ((1 << mantissa_bits) - 1)) / float(1 << mantissa_bits)
    table = sign * np.where(exponent == 0, mantissa * np.exp2(1 - bias), (1.0 + mantissa) * np.exp2(exponent - bias))
    top = exponent == (1 << exponent_bits) - 1
    if embed_dtype == "fp8_e4m3":
        table[top & (mantissa == 1 - 1 / (1 << mantissa_bits))] = np.nan
    else:
        table[top] = np.where(mantissa[top] == 0, sign[top] * np.inf, np.nan)
    return table.astype(np.float32)[np.frombuffer(raw, np.uint8)]


def values_from_bytes(raw, embed_dtype="float32", endianness="little"):
    """Raw output bytes → flat float32 values (numpy.frombuffer; nothing is unpickled)."""
    order = _order(endianness)
    if embed_dtype.startswith("fp8"):
        return fp8_values(raw, embed_dtype)
    if embed_dtype == "bfloat16":
        return (np.frombuffer(raw, f"{order}u2").astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, f"{order}{'f4' if embed_dtype == 'float32' else 'f2'}").astype(np.float32)


def round_to(values, dtype):
    """float32 ``values`` rounded to half-precision ``dtype`` (as the server's cast), widened to float32."""
    return values_from_bytes(values_to_bytes(values, dtype), dtype)


def build_tensor(spec, dtype="float32"):
    """The float32 tensor of ``spec``, its values exactly representable in ``dtype``."""
    shape = tuple(spec["shape"])
    size = int(np.prod(shape))
    if "values" in spec:
        flat = np.asarray(spec["values"], np.float64).reshape(-1)
    elif "fill" in spec:
        flat = np.full(size, spec["fill"])
    else:
        rng, low, high, kind = np.random.default_rng(spec["seed"]), spec["low"], spec["high"], spec["distribution"]
        if kind == "uniform":
            flat = rng.uniform(low, high, size)
        elif kind == "normal":
            flat = rng.normal((low + high) / 2, max(high - low, 0.0) / 4 or 1e-3, size)
        elif kind == "constant":
            flat = np.full(size, low)
        else:
            flat = np.linspace(low, high, size)
    flat = flat.astype(np.float32)
    if dtype in ("float16", "bfloat16"):
        flat = round_to(flat, dtype)
    for position, name in spec.get("specials", ()):
        flat[position % size] = special_values(dtype)[name]
    return flat.reshape(shape)


def npy_bytes(array, dtype):
    """``array`` cast to ``dtype`` as .npy bytes, which vLLM reads as an input (no pickles)."""
    buffer = io.BytesIO()
    with np.errstate(over="ignore"):  # out-of-range values become ±inf, as torch's cast does
        np.save(buffer, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)
    return buffer.getvalue()


def fill(template):
    """A JSON template → the JSON value: ``{"$tensor": spec, "dtype": d}`` becomes base64 .npy text,
    ``{"$repeat": text or [item], "count": n}`` the text, or the list of the item, n times."""
    if isinstance(template, dict):
        if "$tensor" in template:
            array = build_tensor(template["$tensor"], template["dtype"])
            return base64.b64encode(npy_bytes(array, template["dtype"])).decode("ascii")
        if "$repeat" in template:
            return template["$repeat"] * template["count"]
        return {key: fill(value) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value) for value in template]
    return template
