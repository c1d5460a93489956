"""The exact oracle for ``linear_cross_entropy``: value and the three gradients in arbitrary
precision (mpmath), correctly rounded to float64; and the ULP study per ``acc_policy``.

Same arguments as :func:`lossproofs.reference.linear_cross_entropy` (inputs taken as exact
binary numbers: pass low-precision inputs already rounded and cast to float64).

Exactness, step by step:

- the logits ``z = x·W2ᵀ + b`` are formed *exactly*: a product of two float64 is exact in 106
  bits and the sum is carried out with mpmath's exact addition, so no rounding happens before
  the softmax (a float64 matmul would already cost ``in·2⁻⁵³`` relative);
- the softmax row kernel is :mod:`lossproofs.oracle`'s, re-derived for exact (non-float64)
  logits: ``d_j = z_j − max`` exact, ``S = 1 + T`` with ``T`` the sum of the non-maximal
  ``exp(d_j)``, ``log S = log1p(T)``, ``lp_j = d_j − log S`` (a same-sign sum);
- losses are sums of non-negative terms for non-negative weights and targets; the gradient
  ``∂L/∂z = g_lp − p·Σ g_lp`` and the two matmuls that follow subtract, so every value is
  computed at :data:`lossproofs.oracle.START_PRECISION_BITS` and again at twice that, doubling
  until the float64 roundings agree (Ziv's strategy, as the oracle), up to
  :data:`lossproofs.oracle.MAX_PRECISION_BITS` (:class:`lossproofs.oracle.OracleError` beyond).

Class-index and probability targets, class weights, ``ignore_index`` (``None`` = −100), label
smoothing, the three reductions, ``(in,)``/``(N, in)`` input, K-dim weights and biases. Argument
checks are the reference's (this module calls it first, so bad input raises what torch raises).

:func:`ulp_study` runs torch's reference path and every chunked ``acc_policy`` on strata of
ordinary, extreme (large ‖x‖·‖W‖) and large-vocabulary inputs and reports, per policy, dtype and
quantity, the largest error in ulps of the dtype — raw, and *floored*: in ulps of
``max(|exact|, floor)`` with the floor the magnitude a backward-stable matmul-then-CE commits
to (``Σ_n ‖∂L/∂z_n‖₁·A_n`` for the loss, ``(|∂L/∂z|·(1 + A))·|W2|`` and its transposes for
the gradients; see :func:`lossproofs.targets.linear.linear_scales`).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
from mpmath import mp

from lossproofs import reference
from lossproofs.oracle import round_to_float64_array, ulp_distance, ulp_size, ziv

DEFAULT_IGNORE_INDEX = -100


# -- exact pieces ---------------------------------------------------------------------------------
def _exact_logits(x: np.ndarray, w2: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``z[n, j] = Σ_i x[n, i]·w2[j, i] + b[j]`` exactly, as an object array of mpf."""
    n, d = x.shape
    z = np.empty((n, w2.shape[0]), dtype=object)
    for r in range(n):
        xs = [mp.mpf(float(v)) for v in x[r]]
        for j in range(w2.shape[0]):
            acc = mp.zero if b is None else mp.mpf(float(b[j]))
            for i in range(d):
                # fmul/fadd with exact=True never round: the logit is the exact real number.
                acc = mpmath.fadd(acc, mpmath.fmul(xs[i], mp.mpf(float(w2[j, i])), exact=True),
                                  exact=True)
            z[r, j] = acc
    return z


class _ExactRow:
    """Softmax pieces of one row of exact logits at the current precision (finite logits)."""

    def __init__(self, z: list[Any]):
        self.k = max(range(len(z)), key=lambda j: z[j])
        m = z[self.k]
        self.d = [mpmath.fsub(v, m, exact=True) for v in z]  # ≤ 0, exact
        self.e = [mp.exp(v) for v in self.d]
        self.e[self.k] = mp.one
        self.T = mp.fsum(self.e[j] for j in range(len(z)) if j != self.k)
        self.S = mp.one + self.T
        self.logS = mp.log1p(self.T)

    def lp(self, j: int) -> Any:
        return self.d[j] - self.logS

    def p(self, j: int) -> Any:
        return self.e[j] / self.S


def _ziv(compute) -> list[np.ndarray | None]:
    """:func:`lossproofs.oracle.ziv` over the value, or the three gradients (None for an absent
    bias), every one of them agreeing."""
    return ziv(compute, _round, _all_agree, "linear_cross_entropy: ")


def _all_agree(previous: list[np.ndarray | None], current: list[np.ndarray | None]) -> bool:
    return all(a is None or np.array_equal(a, b, equal_nan=True)
               for a, b in zip(previous, current))


def _round(values: list[Any]) -> list[np.ndarray | None]:
    return [None if v is None else round_to_float64_array(v) for v in values]


def _layout(input, linear_weight, target, linear_bias, weight, ignore_index):
    """Checked float64 arrays: rows ``(M, C)`` of (n, position) pairs and their targets."""
    reference.linear_cross_entropy(input, linear_weight, target, linear_bias, weight,
                                   "sum", ignore_index)  # torch's checks, torch's errors
    x = np.asarray(input, dtype=np.float64)
    w = np.asarray(linear_weight, dtype=np.float64)
    t = np.asarray(target)
    x2 = np.atleast_2d(x)
    c, out = w.shape[0], tuple(w.shape[1:-1])
    p = int(np.prod(out)) if out else 1
    w2 = w.reshape(c * p, w.shape[-1])
    b = None if linear_bias is None else np.asarray(linear_bias, dtype=np.float64).reshape(-1)
    logits_shape = (*x.shape[:-1], c, *out)
    probabilities = tuple(t.shape) == logits_shape
    cw = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    ii = DEFAULT_IGNORE_INDEX if ignore_index is None else int(ignore_index)
    return dict(x=x, x2=x2, w=w, w2=w2, b=b, t=t, c=c, p=p, cw=cw, ii=ii,
                probabilities=probabilities, loss_shape=(*x.shape[:-1], *out))


def _row_terms(L: dict, z, reduction: str, eps: float):
    """Per (n, position) row: the loss term and ∂loss/∂lp (per unit upstream), exact."""
    n = L["x2"].shape[0]
    c, p = L["c"], L["p"]
    cw = [mp.mpf(float(v)) for v in L["cw"]]
    eps_m = mp.mpf(float(eps))
    rows = []
    denominator = mp.zero
    if L["probabilities"]:
        t = L["t"].reshape(n, c, p)
    else:
        t = L["t"].reshape(n, p)
    for r in range(n):
        for k in range(p):
            zr = [z[r, j * p + k] for j in range(c)]
            row = _ExactRow(zr)
            if L["probabilities"]:
                tt = [mp.mpf(float(v)) for v in t[r, :, k]]
                if eps > 0:
                    tt = [v * (1 - eps_m) + eps_m / c for v in tt]
                g_lp = [-(tt[j] * cw[j]) for j in range(c)]
                denominator += 1
            else:
                target = int(t[r, k])
                if target == L["ii"]:
                    rows.append((row, mp.zero, [mp.zero] * c, r, k))
                    continue
                g_lp = [-(eps_m / c) * cw[j] if eps > 0 else mp.zero for j in range(c)]
                g_lp[target] += -(1 - eps_m) * cw[target]
                denominator += cw[target]
            loss = mp.fsum(-g_lp[j] * -row.lp(j) for j in range(c))
            rows.append((row, loss, g_lp, r, k))
    return rows, denominator


def _check_finite(L: dict) -> None:
    for name in ("x", "w", "b"):
        a = L[name]
        if a is not None and not np.all(np.isfinite(a)):
            raise ValueError(f"the linear oracle takes finite {name} only (the reference handles "
                             "special values)")


def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0) -> np.ndarray:
    """The exact loss, correctly rounded to float64 (0-d for sum/mean)."""
    L = _layout(input, linear_weight, target, linear_bias, weight, ignore_index)
    _check_finite(L)
    eps = float(label_smoothing)

    def compute():
        z = _exact_logits(L["x2"], L["w2"], L["b"])
        rows, denominator = _row_terms(L, z, reduction, eps)
        losses = [loss for _, loss, _, _, _ in rows]
        if reduction == "none":
            return [np.array(losses, dtype=object).reshape(L["loss_shape"])]
        total = mp.fsum(losses) if losses else mp.zero
        if reduction == "sum":
            return [np.array(total, dtype=object)]
        return [np.array(total / denominator if denominator != 0 else mp.nan, dtype=object)]

    return _ziv(compute)[0]


def linear_cross_entropy_backward(grad_output, input, linear_weight, target, linear_bias=None,
                                  weight=None, reduction="mean", ignore_index=None,
                                  label_smoothing=0.0):
    """The exact ``(grad_input, grad_linear_weight, grad_linear_bias)``, rounded to float64."""
    L = _layout(input, linear_weight, target, linear_bias, weight, ignore_index)
    _check_finite(L)
    eps = float(label_smoothing)
    g = np.asarray(grad_output, dtype=np.float64)
    n, d = L["x2"].shape
    cp = L["w2"].shape[0]

    def compute():
        z = _exact_logits(L["x2"], L["w2"], L["b"])
        rows, denominator = _row_terms(L, z, reduction, eps)
        gz = np.empty((n, cp), dtype=object)
        g_flat = g.reshape(-1)
        for row, _, g_lp, r, k in rows:
            if reduction == "none":
                s = mp.mpf(float(g_flat[r * L["p"] + k]))
            else:
                s = mp.mpf(float(g))
                if reduction == "mean":
                    s = s / denominator if denominator != 0 else mp.nan
            total = mp.fsum(g_lp)
            for j in range(L["c"]):
                # ∂L/∂z_j = s·(g_lp_j − p_j·Σ g_lp)
                gz[r, j * L["p"] + k] = s * (g_lp[j] - row.p(j) * total)
        xs = [[mp.mpf(float(v)) for v in L["x2"][r]] for r in range(n)]
        ws = [[mp.mpf(float(v)) for v in L["w2"][j]] for j in range(cp)]
        gi = np.empty((n, d), dtype=object)
        for r in range(n):
            for i in range(d):
                gi[r, i] = mp.fsum(gz[r, j] * ws[j][i] for j in range(cp))
        gw = np.empty((cp, d), dtype=object)
        for j in range(cp):
            for i in range(d):
                gw[j, i] = mp.fsum(gz[r, j] * xs[r][i] for r in range(n))
        gb = None
        if L["b"] is not None:
            gb = np.array([mp.fsum(gz[r, j] for r in range(n)) for j in range(cp)], dtype=object)
        return [gi.reshape(L["x"].shape), gw.reshape(L["w"].shape),
                None if gb is None else gb.reshape(np.shape(linear_bias))]

    gi, gw, gb = _ziv(compute)
    return gi, gw, gb


# -- the ULP study --------------------------------------------------------------------------------
def floored_ulps(actual, exact, floor, dtype: str) -> float:
    """Largest ``|actual − exact|`` in ulps of ``dtype`` at ``max(|exact|, floor)``; NaN/inf
    mismatches are ``inf``."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(exact, dtype=np.float64)
    raw = ulp_distance(a, e, dtype)
    with np.errstate(all="ignore"):
        unit = ulp_size(np.maximum(np.abs(e), np.asarray(floor, dtype=np.float64)), dtype)
        floored = np.where(np.isfinite(raw), np.abs(a - e) / unit, raw)
    return float(np.max(floored, initial=0.0))


def strata(seed: int = 0) -> dict[str, dict]:
    """Inputs of the ULP study: ``{name: dict(input, linear_weight, target, kwargs)}``.

    - ``ordinary``: N = 16, in = 8, C = 32, entries ~ N(0, 1): logits of a few units;
    - ``extreme logits``: the same shapes with x and W scaled by 12: ‖x‖·‖W‖ ≈ 10³, so
      logits of hundreds and one class dominating each row (p = 1 − tiny);
    - ``large vocabulary``: N = 8, in = 4, C = 4096, entries ~ N(0, 1) (a vocabulary head at a
      small hidden size: the softmax sum has 4096 terms).

    Every stratum has a bias, class weights and ~1/4 ignored targets.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, (n, d, c, scale) in {"ordinary": (16, 8, 32, 1.0),
                                   "extreme logits": (16, 8, 32, 12.0),
                                   "large vocabulary": (8, 4, 4096, 1.0)}.items():
        x = rng.normal(size=(n, d)) * scale
        w = rng.normal(size=(c, d)) * scale
        t = rng.integers(0, c, size=n)
        t[rng.uniform(size=n) < 0.25] = DEFAULT_IGNORE_INDEX
        t[0] = int(rng.integers(0, c))
        out[name] = dict(input=x, linear_weight=w, target=t,
                         kwargs=dict(linear_bias=rng.normal(size=c),
                                     weight=rng.uniform(0.5, 2.0, size=c)))
    return out
