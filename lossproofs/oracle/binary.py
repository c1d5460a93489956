"""``binary_cross_entropy`` and ``binary_cross_entropy_with_logits``, exactly, elementwise,
with torch's clamps (the −100 log clamp, the float32(1e-12) gradient floor)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
from mpmath import mp

from lossproofs.dtypes import BCE_EPSILON, BCE_LOG_CLAMP
from lossproofs.oracle._precision import _as_array, _evaluate, _mpf
from lossproofs.oracle._rows import _check_reduction, _reduce

# The float32 value of 1e-12 that torch's BCE gradient uses as the floor of (1−p)·p.
BCE_GRAD_EPS = BCE_EPSILON

def _bce_layout(input, target, weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, y = _as_array(input), _as_array(target)
    if p.shape != y.shape:
        raise ValueError(f"target size {y.shape} must be the same as input size {p.shape}")
    w = np.ones_like(p) if weight is None else np.broadcast_to(_as_array(weight), p.shape)
    return p, y, w


def _elementwise(shape, reduction: str, term: Callable[[int], Any],
                 grad_output: Any = None) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))

    def compute() -> np.ndarray:
        vals = np.empty(n, dtype=object)
        for i in range(n):
            vals[i] = term(i)
        if grad_output is None:
            return _reduce(vals, reduction, mp.mpf(n), shape)
        g = _as_array(grad_output)
        g_flat = (np.broadcast_to(g, shape).reshape(-1) if reduction == "none"
                  else np.full(n, float(g)))
        den = mp.mpf(n) if reduction == "mean" else mp.one
        return np.array([vals[i] * _mpf(g_flat[i]) / den for i in range(n)],
                        dtype=object).reshape(shape)

    return _evaluate(compute, 0)


def binary_cross_entropy(input: Any, target: Any, weight: Any = None,
                         reduction: str = "mean") -> np.ndarray:
    """Exact ``ℓ = w·[(y−1)·max(log1p(−p), −100) − y·max(log p, −100)]``.

    The −100 clamps are part of torch's definition, so the oracle keeps them.
    """
    _check_reduction(reduction)
    p, y, w = _bce_layout(input, target, weight)
    pf, yf, wf = p.ravel(), y.ravel(), w.ravel()
    clamp = BCE_LOG_CLAMP

    def term(i: int) -> Any:
        pi, yi = _mpf(pf[i]), _mpf(yf[i])
        log_q = max(mp.log1p(-pi), clamp)  # log(1 − p) with p exact: log1p, no cancellation
        log_p = max(mp.log(pi), clamp)
        return _mpf(wf[i]) * ((yi - 1) * log_q - yi * log_p)

    return _elementwise(p.shape, reduction, term)


def binary_cross_entropy_backward(grad_output: Any, input: Any, target: Any,
                                  weight: Any = None, reduction: str = "mean") -> np.ndarray:
    """Exact ``g·w·(p − y) / max((1 − p)·p, ε)`` with ε = float32(1e-12), as torch defines it."""
    _check_reduction(reduction)
    p, y, w = _bce_layout(input, target, weight)
    pf, yf, wf = p.ravel(), y.ravel(), w.ravel()

    def term(i: int) -> Any:
        pi = _mpf(pf[i])
        diff = mpmath.fsub(pi, _mpf(yf[i]), exact=True)  # p − y exactly
        den = max(mpmath.fsub(1, pi, exact=True) * pi, _mpf(BCE_GRAD_EPS))
        return _mpf(wf[i]) * diff / den

    return _elementwise(p.shape, reduction, term, grad_output)


def _bcel_layout(input, target, weight, pos_weight):
    x, y, w = _bce_layout(input, target, weight)
    pw = (np.ones_like(x) if pos_weight is None
          else np.broadcast_to(_as_array(pos_weight), x.shape))
    return x, y, w, pw


def _softplus(v: Any) -> Any:
    return mp.log1p(mp.exp(v))  # log(1 + eˣ) with an exact argument: no cancellation


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean",
                                     pos_weight: Any = None) -> np.ndarray:
    """Exact ``ℓ = w·[(1−y)·x − lw·logsigmoid(x)]``, ``lw = (pw − 1)·y + 1``.

    Evaluated as ``w·[(1−y)·softplus(x) + pw·y·softplus(−x)]`` (equal, since
    ``x = softplus(x) − softplus(−x)``): two non-negative terms for ``y ∈ [0,1]``, ``pw ≥ 0``.
    For infinite ``x`` torch's formula is used literally, so ``0·∞`` gives NaN as in torch
    (pytorch#102894).
    """
    _check_reduction(reduction)
    x, y, w, pw = _bcel_layout(input, target, weight, pos_weight)
    xf, yf, wf, pf = x.ravel(), y.ravel(), w.ravel(), pw.ravel()

    def term(i: int) -> Any:
        xi, yi, pwi = _mpf(xf[i]), _mpf(yf[i]), _mpf(pf[i])
        if mpmath.isinf(xi):
            lw = (pwi - 1) * yi + 1
            logsig = min(xi, 0) - mp.log1p(mp.exp(-abs(xi)))
            return _mpf(wf[i]) * ((1 - yi) * xi - lw * logsig)
        return _mpf(wf[i]) * ((1 - yi) * _softplus(xi) + pwi * yi * _softplus(-xi))

    return _elementwise(x.shape, reduction, term)


def binary_cross_entropy_with_logits_backward(grad_output: Any, input: Any, target: Any,
                                              weight: Any = None, reduction: str = "mean",
                                              pos_weight: Any = None) -> np.ndarray:
    """Exact ``g·w·((pw·y + 1 − y)·σ(x) − pw·y)``, evaluated as
    ``g·w·((1 − y)·σ(x) − pw·y·σ(−x))`` (using ``1 − σ(x) = σ(−x)``)."""
    _check_reduction(reduction)
    x, y, w, pw = _bcel_layout(input, target, weight, pos_weight)
    xf, yf, wf, pf = x.ravel(), y.ravel(), w.ravel(), pw.ravel()

    def term(i: int) -> Any:
        xi, yi, pwi = _mpf(xf[i]), _mpf(yf[i]), _mpf(pf[i])
        sig_pos = 1 / (1 + mp.exp(-xi))  # σ(x)
        sig_neg = 1 / (1 + mp.exp(xi))  # σ(−x) = 1 − σ(x), formed without cancellation
        return _mpf(wf[i]) * (mpmath.fsub(1, yi, exact=True) * sig_pos - pwi * yi * sig_neg)

    return _elementwise(x.shape, reduction, term, grad_output)
