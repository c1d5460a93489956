"""How many digits, and the one rounding to float64: Ziv's strategy and exact sums.

:func:`ziv` runs a computation at :data:`START_PRECISION_BITS` and again at twice that, doubling
until two evaluations round to the same float64 (see the package docstring for the error
argument); :func:`_evaluate` applies it to one array (:mod:`lossproofs.oracle.linear` to its
value and gradients); :func:`round_to_float64` is the correctly rounded conversion mpmath lacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import mpmath
import numpy as np
from mpmath import mp

START_PRECISION_BITS = 160
MAX_PRECISION_BITS = 5120
LARGE_ROW = 4096
LARGE_ROW_PRECISION_BITS = 128

T = TypeVar("T")  # what a rounding returns: one float64 array, or a list of them


class OracleError(ArithmeticError):
    """The precision cap was reached before two evaluations agreed."""


def round_to_float64(v: Any) -> float:
    """Round an mpf to the nearest float64 (ties to even), with gradual underflow and overflow.

    ``float(mpf)`` truncates in mpmath, so the rounding is done here on the exact
    mantissa/exponent pair.
    """
    if not isinstance(v, mpmath.mpf):
        return float(v)
    if mpmath.isnan(v):
        return math.nan
    if mpmath.isinf(v):
        return math.inf if v > 0 else -math.inf
    sign, man, exp, bc = v._mpf_
    if man == 0:
        return 0.0
    top = exp + bc - 1  # floor(log2 |v|)
    if top < -1076:  # below half the smallest subnormal (2⁻¹⁰⁷⁵): rounds to zero
        return -0.0 if sign else 0.0
    if top > 1024:
        return -math.inf if sign else math.inf
    quantum = max(top - 52, -1074)  # exponent of the last kept bit (subnormals: 2⁻¹⁰⁷⁴)
    if exp < quantum:
        shift = quantum - exp
        kept, rest = man >> shift, man & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rest > half or (rest == half and kept & 1):
            kept += 1
        man, exp = kept, quantum
    try:
        out = math.ldexp(man, exp)
    except OverflowError:
        out = math.inf
    return -out if sign else out


def round_to_float64_array(values: Any) -> np.ndarray:
    """:func:`round_to_float64` of every element of an array of mpf (any shape, kept)."""
    values = np.asarray(values, dtype=object)
    flat = [round_to_float64(v) for v in values.ravel()]
    return np.array(flat, dtype=np.float64).reshape(values.shape)


def ziv(compute: Callable[[], Any], rounded: Callable[[Any], T],
        agree: Callable[[T, T], bool], what: str = "") -> T:
    """Ziv's strategy: ``rounded(compute())`` at :data:`START_PRECISION_BITS`, then at twice
    the precision, doubling until two successive roundings ``agree`` (the later is returned);
    :class:`OracleError` (prefixed by ``what``) once :data:`MAX_PRECISION_BITS` is passed.

    ``compute`` evaluates at the current working precision; ``rounded`` turns its mpf result
    into float64 values (the one rounding); ``agree`` compares two such roundings.
    """
    prec = START_PRECISION_BITS
    with mp.workprec(prec):
        previous = rounded(compute())
    while prec < MAX_PRECISION_BITS:
        prec *= 2
        with mp.workprec(prec):
            current = rounded(compute())
        if agree(previous, current):
            return current
        previous = current
    raise OracleError(f"{what}no agreement up to {MAX_PRECISION_BITS} bits")


def _same_float64(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a, b, equal_nan=True)


def _evaluate(compute: Callable[[], np.ndarray], size: int) -> np.ndarray:
    """Run ``compute`` (which returns an object array of mpf) under Ziv's strategy."""
    if size > LARGE_ROW:
        with mp.workprec(LARGE_ROW_PRECISION_BITS):
            return round_to_float64_array(compute())
    return ziv(compute, round_to_float64_array, _same_float64)


def _mpf(x: float) -> Any:
    return mp.mpf(float(x))  # exact: a float64 has 53 bits, the working precision ≥ 128


def _exact_sum(values: np.ndarray) -> Any:
    """The exact sum of float64 values as an mpf (integer arithmetic on the 2⁻¹⁰⁷⁴ grid)."""
    total = 0
    special = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        if not math.isfinite(v):
            special.append(float(v))
            continue
        num, den = float(v).as_integer_ratio()  # den is a power of two ≤ 2¹⁰⁷⁴
        total += num * ((1 << 1074) // den)  # exact: every finite float64 is k·2⁻¹⁰⁷⁴
    if special:
        return mp.mpf(math.fsum(special)) if len(set(special)) == 1 else mp.nan
    return mp.make_mpf(mpmath.libmp.from_man_exp(total, -1074))  # no rounding: prec=0


def _as_array(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)
