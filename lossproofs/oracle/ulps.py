"""Distances in units in the last place of float64, float32, float16 and bfloat16.

Every dtype's finite values are numbered by an integer key (consecutive values differ by 1,
``±0`` is 0); a float64 number lies a fraction of the way between two keys, so a distance is an
exact integer difference plus a fractional part."""

from __future__ import annotations

from typing import Any

import numpy as np

from lossproofs.dtypes import max_finite
from lossproofs.oracle._precision import _as_array

_GRIDS = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
_INT_OF = {np.float64: np.int64, np.float32: np.int32, np.float16: np.int16}
_UINT_OF = {np.float64: np.uint64, np.float32: np.uint32, np.float16: np.uint16}


def _ordered_key(v: np.ndarray, ftype: type) -> np.ndarray:
    """Integer ``k`` with ``k(next representable) = k + 1``; ``k(±0) = 0``; monotone."""
    itype = _INT_OF[ftype]
    bits = v.astype(ftype).view(itype).astype(np.int64)
    mag = bits & np.int64(np.iinfo(itype).max)  # drop the sign bit
    return np.where(bits < 0, -mag, mag)


def _from_key(k: np.ndarray, ftype: type) -> np.ndarray:
    itype = _INT_OF[ftype]
    utype = _UINT_OF[ftype]
    width = np.iinfo(itype).bits
    mag = np.abs(k).astype(np.uint64)
    bits = np.where(k < 0, mag | (np.uint64(1) << np.uint64(width - 1)), mag)
    return bits.astype(utype).view(ftype).astype(np.float64)


def _floor_key(x: np.ndarray, dtype: str) -> np.ndarray:
    """Key of the largest ``dtype`` value ≤ x (x finite float64)."""
    if dtype == "bfloat16":
        # bfloat16 values are the float32 values whose low 16 bits are zero, and its binades are
        # float32's, so the floor key is the float32 floor key // 2¹⁶ (arithmetic shift floors).
        return _floor_key(x, "float32") >> 16
    ftype = _GRIDS[dtype]
    with np.errstate(over="ignore"):
        r = x.astype(ftype)  # nearest; may be above x
    k = _ordered_key(r, ftype)
    above = r.astype(np.float64) > x
    return np.where(above, k - 1, k)


def _key_value(k: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return _from_key(k << 16, np.float32)
    return _from_key(k, _GRIDS[dtype])


def _grid_position(x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``(key, fraction)``: x lies ``fraction`` of the way from the ``dtype`` value with integer
    key ``key`` to the next one (keys of consecutive representable values differ by 1, ``±0``
    has key 0). Finite inputs; beyond the largest finite value the top spacing continues."""
    k = _floor_key(x, dtype)
    top = max_finite(dtype)
    top_key = _floor_key(np.array(float(top)), dtype)
    k = np.clip(k, -top_key, top_key)
    a = _key_value(k, dtype)
    step_key = np.where(k == top_key, k - 1, k)
    gap = np.abs(_key_value(step_key + 1, dtype) - _key_value(step_key, dtype))
    # x − a is exact in float64 for the narrower grids and 0 for float64 itself.
    return k, (x - a) / gap


def ulp_size(x: Any, dtype: str) -> np.ndarray:
    """The spacing of ``dtype``'s grid at ``|x|`` (the gap from the largest value ≤ |x| to the
    next one; the top gap beyond the largest finite value; the subnormal spacing at 0)."""
    dtype = _dtype_name(dtype)
    mag = np.abs(_as_array(x))
    k, _ = _grid_position(np.where(np.isfinite(mag), mag, 0.0), dtype)
    top = max_finite(dtype)
    top_key = _floor_key(np.array(float(top)), dtype)
    k = np.where(k == top_key, k - 1, k)
    return _key_value(k + 1, dtype) - _key_value(k, dtype)


def ulp_position(x: Any, dtype: str) -> np.ndarray:
    """A continuous coordinate in units of ``dtype``'s spacing (see :func:`_grid_position`);
    float64 keys beyond 2⁵³ lose integer resolution here, use :func:`ulp_distance` to compare."""
    k, frac = _grid_position(_as_array(x), _dtype_name(dtype))
    return k.astype(np.float64) + frac


def _dtype_name(dtype: Any) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in (*_GRIDS, "bfloat16"):
        raise ValueError(f"dtype={dtype!r} is not one of float64, float32, float16, bfloat16")
    return name


def ulp_distance(actual: Any, exact: Any, dtype: str) -> np.ndarray:
    """Distance from ``actual`` to ``exact``, in ulps of ``dtype`` (elementwise, float64).

    Convention: positions on the ``dtype`` grid as in :func:`ulp_position`, so a correctly
    rounded result is at most 0.5 away, ``±0`` are equal, subnormals are counted at their
    (uniform) spacing and a value crossing a power of two counts each binade's own spacing.
    Non-finite values: NaN vs NaN and an infinity vs the same infinity are 0; any other pairing
    with a NaN or infinity is ``inf``. ``exact`` is the float64 oracle value (its own rounding
    error is at most 2⁻²⁹ ulp of float32 and below for the smaller dtypes).
    """
    a = np.asarray(_as_array(actual), dtype=np.float64)
    e = np.asarray(_as_array(exact), dtype=np.float64)
    a, e = np.broadcast_arrays(a, e)
    finite = np.isfinite(a) & np.isfinite(e)
    out = np.full(a.shape, np.inf)
    same_special = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e))
    out[same_special] = 0.0
    if finite.any():
        dtype = _dtype_name(dtype)
        ka, fa = _grid_position(a[finite], dtype)
        ke, fe = _grid_position(e[finite], dtype)
        # Integer key difference first (exact in int64), then the fractional parts.
        out[finite] = np.abs((ka - ke).astype(np.float64) + (fa - fe))
    return out


def representable(exact: Any, dtype: str) -> np.ndarray:
    """True where ``exact`` is finite and rounds to a finite value of ``dtype``."""
    e = _as_array(exact)
    return np.isfinite(e) & (np.abs(e) <= max_finite(dtype))
