"""The error model of the accuracy work: exact answers, ulp errors, and fair error floors.

- :func:`exact`: the oracle's forward value and input gradient for a problem (inputs as rounded
  to its dtype); :func:`errors`: plain ulp distances to it where it is representable.
- :func:`error_floors` and :func:`floored_ulps`: the "fair" count, in ulps of
  ``max(|exact|, floor)`` where the floor is what a backward-stable evaluation of torch's
  documented formula guarantees (below).
- :func:`intermediate_overflow`: the problems where torch's formula forms a term beyond the
  dtype's max although the result is representable.

The accuracy properties (``lossproofs/suite/test_accuracy.py``) and the report
(:mod:`lossproofs.accuracy`) both count with these functions, so the report users cite comes
from the code CI checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from lossproofs import oracle
from lossproofs.cases import Case
from lossproofs.dtypes import BCE_EPSILON, eps, max_finite, smallest_subnormal, tiny
from lossproofs.strategies import extreme


def rounded_inputs(case: Case) -> tuple[tuple[np.ndarray, ...], dict[str, Any], np.ndarray]:
    """``(arrays, params, grad_output)`` as the implementation sees them: floating values rounded
    to the case's dtype, back in float64 (exact). The exact answer is that of these inputs."""
    arrays, params = case.reference_args()
    return arrays, params, case.rounded(np.asarray(case.grad_output, dtype=np.float64))


def exact(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's forward and input-gradient for a problem (inputs as rounded to dtype)."""
    arrays, params, g = rounded_inputs(case)
    fwd = np.asarray(getattr(oracle, case.function)(*arrays, **params), dtype=np.float64)
    grad = getattr(oracle, case.function + "_backward")(np.broadcast_to(g, fwd.shape), *arrays,
                                                        **params)
    return fwd, np.asarray(grad, dtype=np.float64)


def errors(actual: np.ndarray, expected: np.ndarray, dtype: str) -> np.ndarray:
    """ulp distances where the exact answer is finite and representable in ``dtype``."""
    actual = np.broadcast_to(np.asarray(actual, dtype=np.float64), np.shape(expected))
    keep = oracle.representable(expected, dtype)
    return oracle.ulp_distance(actual[keep], expected[keep], dtype)


def measure(case: Case, impl: Callable[[Case], Any],
            exact_values: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(forward ulps, gradient ulps)`` of ``impl`` on ``case`` (None: not applicable)."""
    result = impl(case)
    if result is None:
        return None
    fwd_exact, grad_exact = exact_values or exact(case)
    fwd, grad = result
    dtype = case.dtype
    fwd_err = errors(fwd, fwd_exact, dtype)
    grad_err = errors(grad, grad_exact, dtype) if grad is not None else np.array([])
    return fwd_err, grad_err


# ---------------------------------------------------------------------------- fair bounds
# A backward-stable formula that combines terms t₁…tₙ has absolute error ≲ n·u·Σ|tₖ|, however
# small the exact result is after cancellation. The accuracy properties therefore count ulps of
# max(|exact|, floor), where ``floor`` is that sum of term magnitudes for the formula torch is
# documented to use (TORCH_SEMANTICS.md), computed here in float64 from the rounded inputs.
# Where the floor exceeds |exact| the result is ill-conditioned *for that formula*; what torch
# loses there against a cancellation-free formula is pinned by named strict xfails instead.


def _accumulation_factor(n: int) -> float:
    """``⌈log₂ n⌉ + 1``: the error growth of a pairwise (or blocked float32) sum of n terms."""
    return float(np.ceil(np.log2(max(n, 1)))) + 1.0


def _softmax_pieces(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(x, axis=1, keepdims=True)
        d = np.where(np.isneginf(x), 0.0, x - m)  # masked entries contribute exactly 0
        e = np.where(np.isneginf(x), 0.0, np.exp(d))
        y = e / e.sum(axis=1, keepdims=True)
    return m, d, y


def error_floors(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """``(forward floor, gradient floor)``: magnitudes of the terms each formula combines."""
    f = case.function
    arrays, params, g = rounded_inputs(case)
    x = arrays[0]
    with np.errstate(all="ignore"):
        if f in extreme.SOFTMAX_FAMILY:
            m, d, y = _softmax_pieces(x)
            c = x.shape[1]
            # S = Σ exp(d_j) is a sum of C terms: relative error up to A(C)·u (pairwise bound).
            acc = _accumulation_factor(c)
            if f == "softmax":
                # y_i = exp(d_i)/S: exp of a rounded difference has relative error ≈ u·|d_i|.
                fwd = y * (1 + np.abs(d) + acc)
                grad = fwd * (np.abs(g) + acc * np.max(np.abs(g), axis=1, keepdims=True))
            elif f == "log_softmax":
                # (x − m) − log S: terms |d| and log S ≤ log C, plus the error of S itself.
                fwd = 1 + np.abs(d) + np.log(c) + acc
                # g − exp(lp)·Σg: exp of lp carries u·|lp| ≤ u·(|d| + log C) relative error.
                grad = np.abs(g) + y * (1 + np.abs(d) + np.log(c) + acc) * acc * np.sum(
                    np.abs(g), 1, keepdims=True)
            else:
                fwd = (np.abs(m) + np.log(c) + acc)[:, 0]  # m + log S
                # torch's backward is g·exp(x − lse): the difference carries u·(|x| + |lse|).
                scale = 1 + np.where(np.isfinite(x), np.abs(x), 0) + np.abs(m) + np.log(c) + acc
                grad = np.abs(g)[:, None] * y * scale
            return fwd, grad
        if f in extreme.INDEX_LOSSES:
            return _index_loss_floors(f, arrays, params, g)
        return _binary_floors(f, arrays, params, g, case.dtype)


def _reduce_floor(per_element: np.ndarray, reduction: str, den: float) -> np.ndarray:
    if reduction == "none":
        return per_element
    total = np.sum(per_element) * _accumulation_factor(per_element.size)
    return np.asarray(total / den if reduction == "mean" and den else total)


def _index_loss_floors(f, arrays, k, g):
    x, t = arrays
    rows, c = x.shape
    w = k.get("weight", np.ones(c))
    eps = k.get("label_smoothing", 0.0)
    red = k.get("reduction", "mean")
    wt = w[t]
    den = float(wt.sum()) if red == "mean" else 1.0
    with np.errstate(all="ignore"):
        if f == "nll_loss":
            per = np.abs(wt * x[np.arange(rows), t])
            grad = np.zeros_like(x)
            grad[np.arange(rows), t] = np.abs(wt * np.broadcast_to(g, (rows,))) / den
            return _reduce_floor(per, red, den), grad
        _, d, y = _softmax_pieces(x)
        acc = _accumulation_factor(c)
        lp_terms = 1 + np.abs(d) + np.log(c) + acc  # as for log_softmax
        per = (1 - eps) * wt * lp_terms[np.arange(rows), t]
        if eps > 0:
            per = per + eps / c * np.sum(w * lp_terms, axis=1)
        onehot = np.zeros_like(x)
        onehot[np.arange(rows), t] = 1
        scale = np.abs(np.broadcast_to(g, (rows,)))[:, None] / den
        py = y * (1 + np.abs(d) + acc)  # |p| with its conditioning, as for softmax
        grad = scale * ((1 - eps) * wt[:, None] * (py + onehot)
                        + eps / c * acc * (py * w.sum() + w))
        return _reduce_floor(per, red, den), grad


def _binary_floors(f, arrays, k, g, dtype):
    x, y = arrays
    red = k.get("reduction", "mean")
    w = k.get("weight", np.ones_like(x))
    n = x.size
    den = float(n) if red == "mean" else 1.0
    gs = np.abs(np.broadcast_to(g, x.shape)) / den
    with np.errstate(all="ignore"):
        if f == "binary_cross_entropy":
            log_q = np.maximum(np.log1p(-x), -100)
            log_p = np.maximum(np.log(x), -100)
            per = np.abs(w) * (np.abs(y - 1) * np.abs(log_q) + np.abs(y) * np.abs(log_p))
            # torch forms g·(p − y) before dividing by max(p(1 − p), ε): when that product is
            # subnormal it carries an absolute error of half the subnormal spacing.
            subnormal = smallest_subnormal(dtype)
            grad = gs * np.abs(w) * (np.abs(x - y) + subnormal / eps(dtype)) / (
                np.maximum((1 - x) * x, BCE_EPSILON))
            return _reduce_floor(per, red, den), grad
        pw = k.get("pos_weight", np.ones_like(x))
        lw = (pw - 1) * y + 1
        logsig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
        per = np.abs(w) * (np.abs(1 - y) * np.abs(x) + np.abs(lw) * np.abs(logsig))
        sig = 1 / (1 + np.exp(-x))
        grad = gs * np.abs(w) * (np.abs(pw * y + 1 - y) * sig + np.abs(pw * y))
        return _reduce_floor(per, red, den), grad


def floored_ulps(actual: np.ndarray, expected: np.ndarray, floor: np.ndarray,
                 dtype: str) -> np.ndarray:
    """Distance in ulps of ``max(|exact|, floor)``, where the exact answer is representable.

    Where the exact answer is subnormal in ``dtype`` the distance is counted in units of the
    smallest normal number instead (gradual underflow is not required: torch's kernels flush
    some subnormal results to zero, which the strict xfail
    ``test_sigmoid_gradient_keeps_subnormal_results`` records). Non-finite actual values where
    the exact answer is finite count as ``inf``.
    """
    actual = np.broadcast_to(np.asarray(actual, dtype=np.float64), np.shape(expected))
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), np.shape(expected))
    keep = oracle.representable(expected, dtype)
    a, e, fl = actual[keep], expected[keep], floor[keep]
    raw = oracle.ulp_distance(a, e, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.where(np.isfinite(fl), np.maximum(np.abs(e), fl), np.abs(e))
        relaxed = np.abs(a - e) / oracle.ulp_size(scale, dtype)
        normal = tiny(dtype)
        relaxed = np.where(np.abs(e) < normal, np.minimum(relaxed, np.abs(a - e) / normal),
                           relaxed)
    return np.where(np.isfinite(a), np.minimum(raw, relaxed), np.inf)


def intermediate_overflow(case: Case) -> bool:
    """True when a term torch forms before reducing or scaling exceeds the dtype's max
    (a weighted loss term, the unreduced sum, or an unscaled gradient term), although the
    final result may be representable. Those problems are measured by the report and pinned by
    the strict xfails ``test_low_precision_*_overflows_intermediate``; the ulp property skips
    them."""
    top = max_finite(case.dtype)
    unreduced = replace(case, params={**case.params, "reduction": "none"})
    fwd, grad = error_floors(unreduced)
    with np.errstate(all="ignore"):
        # An infinite floor means the float64 sum of term magnitudes itself overflowed.
        fwd_total = float(np.nansum(fwd))
        grad_term = float(np.nanmax(grad, initial=0.0))
        smoothing_sum = 0.0
        if case.params.get("label_smoothing", 0.0) > 0:
            # The smoothing term's Σ_c w_c·(−lp_c) is formed before the ε/C factor.
            (x, _), params, _ = rounded_inputs(case)
            _, d, _ = _softmax_pieces(x)
            c = x.shape[1]
            w = params.get("weight", np.ones(c))
            smoothing_sum = float(np.max(np.sum(w * (np.abs(d) + np.log(c)), axis=1)))
    return fwd_total > top or grad_term > top or smoothing_sum > top


# ---------------------------------------------------------------------------- one check
def check_accuracy(target, case: Case, direction: str, floored: bool = True):
    """``target``'s ``direction`` result on ``case`` (which carries its ``grad_output``) within
    the function's ULP bound of the exact answer: counted above the fair floor (``floored``), or
    in plain ulps where the exact answer is representable. With ``floored`` the exact answer
    must be representable in the dtype (an overflowing result is the dtype's limit, not an
    error). Returns a :class:`lossproofs.checks.Outcome` (the ledger's accuracy entries run
    through this)."""
    from lossproofs.accuracy_implementations import run_callable
    from lossproofs.checks import Outcome
    from lossproofs.tolerances import ulp_bound

    k = ("forward", "gradient").index(direction)
    result = run_callable(target.get(case.function), case)[k]
    arrays, params, g = rounded_inputs(case)
    fwd = np.asarray(getattr(oracle, case.function)(*arrays, **params), dtype=np.float64)
    if direction == "forward":
        want = fwd
    else:  # the gradient's oracle only when asked for: it costs more than the forward
        want = np.asarray(getattr(oracle, case.function + "_backward")(
            np.broadcast_to(g, fwd.shape), *arrays, **params), dtype=np.float64)
    bound = ulp_bound(case.function, case.dtype, direction)
    if floored:
        if not oracle.representable(want, case.dtype).all():
            return Outcome("fail", [], "", f"the exact {direction} is not representable in "
                                           f"{case.dtype}: the case cannot test accuracy")
        err = floored_ulps(result, want, error_floors(case)[k], case.dtype)
    else:
        err = errors(result, want, case.dtype)
    worst = float(np.max(err, initial=0.0))
    ok = worst <= bound
    how = "ulps above the fair floor" if floored else "ulps"
    return Outcome("pass" if ok else "fail", [], "",
                   "" if ok else f"{case.function} {direction} in {case.dtype} is {worst:.3g} "
                                 f"{how} from the exact answer (bound {bound})")
