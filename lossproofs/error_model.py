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
from typing import Any

import numpy as np

from lossproofs import oracle
from lossproofs.dtypes import BCE_EPSILON, eps, max_finite, smallest_subnormal, tiny
from lossproofs.strategies import extreme


def exact(problem: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's forward and input-gradient for a problem (inputs as rounded to dtype)."""
    name = problem["function"]
    args = [problem["input"]] + ([problem["target"]] if problem["target"] is not None else [])
    kwargs = dict(problem["kwargs"])
    fwd = np.asarray(getattr(oracle, name)(*args, **kwargs), dtype=np.float64)
    grad = getattr(oracle, name + "_backward")(np.broadcast_to(problem["grad"], fwd.shape),
                                               *args, **kwargs)
    return fwd, np.asarray(grad, dtype=np.float64)


def errors(actual: np.ndarray, expected: np.ndarray, dtype: str) -> np.ndarray:
    """ulp distances where the exact answer is finite and representable in ``dtype``."""
    actual = np.broadcast_to(np.asarray(actual, dtype=np.float64), np.shape(expected))
    keep = oracle.representable(expected, dtype)
    return oracle.ulp_distance(actual[keep], expected[keep], dtype)


def measure(problem: dict[str, Any], impl: Callable[[dict[str, Any]], Any],
            exact_values: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(forward ulps, gradient ulps)`` of ``impl`` on ``problem`` (None: not applicable)."""
    result = impl(problem)
    if result is None:
        return None
    fwd_exact, grad_exact = exact_values or exact(problem)
    fwd, grad = result
    dtype = problem["dtype"]
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


def error_floors(problem: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(forward floor, gradient floor)``: magnitudes of the terms each formula combines."""
    f, x = problem["function"], problem["input"]
    g = np.asarray(problem["grad"], dtype=np.float64)
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
            return _index_loss_floors(problem)
        return _binary_floors(problem)


def _reduce_floor(per_element: np.ndarray, reduction: str, den: float) -> np.ndarray:
    if reduction == "none":
        return per_element
    total = np.sum(per_element) * _accumulation_factor(per_element.size)
    return np.asarray(total / den if reduction == "mean" and den else total)


def _index_loss_floors(problem):
    f, x, t, k = problem["function"], problem["input"], problem["target"], problem["kwargs"]
    g = np.asarray(problem["grad"], dtype=np.float64)
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


def _binary_floors(problem):
    f, x, y, k = problem["function"], problem["input"], problem["target"], problem["kwargs"]
    g = np.asarray(problem["grad"], dtype=np.float64)
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
            subnormal = smallest_subnormal(problem["dtype"])
            grad = gs * np.abs(w) * (np.abs(x - y) + subnormal / eps(problem["dtype"])) / (
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


def intermediate_overflow(problem: dict[str, Any]) -> bool:
    """True when a term torch forms before reducing or scaling exceeds the dtype's max
    (a weighted loss term, the unreduced sum, or an unscaled gradient term), although the
    final result may be representable. Those problems are measured by the report and pinned by
    the strict xfails ``test_low_precision_*_overflows_intermediate``; the ulp property skips
    them."""
    top = max_finite(problem["dtype"])
    unreduced = dict(problem, kwargs=dict(problem["kwargs"], reduction="none"))
    fwd, grad = error_floors(unreduced)
    with np.errstate(all="ignore"):
        # An infinite floor means the float64 sum of term magnitudes itself overflowed.
        fwd_total = float(np.nansum(fwd))
        grad_term = float(np.nanmax(grad, initial=0.0))
        smoothing_sum = 0.0
        if problem["kwargs"].get("label_smoothing", 0.0) > 0:
            # The smoothing term's Σ_c w_c·(−lp_c) is formed before the ε/C factor.
            _, d, _ = _softmax_pieces(problem["input"])
            c = problem["input"].shape[1]
            w = problem["kwargs"].get("weight", np.ones(c))
            smoothing_sum = float(np.max(np.sum(w * (np.abs(d) + np.log(c)), axis=1)))
    return fwd_total > top or grad_term > top or smoothing_sum > top
