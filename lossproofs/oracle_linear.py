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
the gradients; see :func:`lossproofs.linear_targets.linear_scales`).
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
            raise ValueError(f"oracle_linear takes finite {name} only (the reference handles "
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


def _round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    import torch

    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(getattr(torch, dtype)).double(
    ).numpy()


def floors(case) -> dict[str, np.ndarray]:
    """Elementwise floors of the ULP count: the first-order error terms of
    :func:`lossproofs.linear_targets.linear_scales` per element, without the ``≥ 1`` clamp
    (for the loss, ``Σ_n ‖G_n‖₁·A_n``; for the gradients ``E·|W2|``, ``Eᵀ·|x|``, ``Σ_n E_n``)."""
    from lossproofs.linear_targets import logit_bounds, logit_gradient_terms, reference_args

    (x, w, _t), params = reference_args(case)
    a = logit_bounds(case)
    out_shape = np.shape(reference.linear_cross_entropy(*reference_args(case)[0], **params))
    g1, m, h = logit_gradient_terms(case, np.ones(out_shape))
    e = m + 2.0 * a[:, None] * h
    x2 = np.abs(np.atleast_2d(x))
    w2 = np.abs(w.reshape(-1, w.shape[-1]))
    row = np.sum(g1, axis=1) * a
    loss = row.reshape(out_shape) if params.get("reduction") == "none" else np.sum(row)
    return {"forward": loss, "input": (e @ w2).reshape(x.shape),
            "linear_weight": (e.T @ x2).reshape(w.shape),
            "linear_bias": np.sum(e, axis=0)}


ALL_POLICIES = (("reference path", None), ("accurate", None), ("balanced", None),
                ("compact", None), ("auto", None), ("accurate", "float32"),
                ("balanced", "float32"), ("compact", "float32"))


def _offered_policies() -> tuple[tuple[str, str | None], ...]:
    """:data:`ALL_POLICIES` less the acc_policy values the installed torch does not have
    (:data:`lossproofs.linear_targets.UNAVAILABLE_ACC_POLICIES`: ``balanced`` from torch 2.14),
    and any it has that the list does not name, with and without a float32 ``acc_dtype``."""
    from lossproofs.linear_targets import ACC_POLICIES

    out = [(p, a) for p, a in ALL_POLICIES if p == "reference path" or p in ACC_POLICIES]
    named = {p for p, _ in ALL_POLICIES}
    out += [(p, a) for p in ACC_POLICIES if p not in named for a in (None, "float32")]
    return tuple(out)


POLICIES = _offered_policies()


def ulp_study(dtypes=("float64", "float32", "float16", "bfloat16"), policies=POLICIES,
              reductions=("mean",), seed: int = 0, strata_names=None) -> list[dict]:
    """Measure torch against the oracle; one record per stratum × dtype × (acc_policy,
    acc_dtype) × reduction × quantity with ``raw`` and ``floored`` ulps (the worst element).
    A float32 ``acc_dtype`` is tried with float16/bfloat16 only (torch rejects it otherwise);
    the chunked runs use ``batch_chunk_size = N // 3`` (a non-divisor for the strata's N)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from lossproofs.cases import Case

    records = []
    for sname, s in strata(seed).items():
        if strata_names and sname not in strata_names:
            continue
        for dtype in dtypes:
            x = _round_to(s["input"], dtype)
            w = _round_to(s["linear_weight"], dtype)
            kw = {k: _round_to(v, dtype) for k, v in s["kwargs"].items()}
            t = s["target"]
            for reduction in reductions:
                exact = linear_cross_entropy(x, w, t, reduction=reduction, **kw)
                g = np.ones(exact.shape)
                exact_grads = linear_cross_entropy_backward(g, x, w, t, reduction=reduction,
                                                            **kw)
                case = Case("linear_cross_entropy", (x, w, t), {**kw, "reduction": reduction},
                            "float64")
                floor = floors(case)
                for policy, acc_dtype in policies:
                    if acc_dtype and dtype not in ("float16", "bfloat16"):
                        continue
                    dt = getattr(torch, dtype)
                    tx = torch.from_numpy(x).to(dt).requires_grad_()
                    tw = torch.from_numpy(w).to(dt).requires_grad_()
                    tb = torch.from_numpy(kw["linear_bias"]).to(dt).requires_grad_()
                    tcw = torch.from_numpy(kw["weight"]).to(dt)
                    options = None if policy == "reference path" else (
                        nn.LinearCrossEntropyOptions(
                            batch_chunk_size=max(1, x.shape[0] // 3), chunking_method=None,
                            acc_policy=policy,
                            acc_dtype=getattr(torch, acc_dtype) if acc_dtype else None))
                    out = F.linear_cross_entropy(tx, tw, torch.from_numpy(t), linear_bias=tb,
                                                 weight=tcw, reduction=reduction,
                                                 options=options)
                    grads = torch.autograd.grad(out, (tx, tw, tb),
                                                torch.from_numpy(g).to(out.dtype))
                    got = {"forward": out.detach().double().numpy(),
                           **{k: v.double().numpy() for k, v in
                              zip(("input", "linear_weight", "linear_bias"), grads)}}
                    want = {"forward": exact, "input": exact_grads[0],
                            "linear_weight": exact_grads[1], "linear_bias": exact_grads[2]}
                    name = policy + (f", acc_dtype={acc_dtype}" if acc_dtype else "")
                    for q in got:
                        records.append(dict(
                            stratum=sname, dtype=dtype, policy=name, reduction=reduction,
                            quantity=q,
                            raw=float(np.max(ulp_distance(got[q], want[q], dtype), initial=0)),
                            floored=floored_ulps(got[q], want[q], floor[q], dtype)))
    return records


def _table(records: list[dict]) -> str:
    lines = ["| stratum | dtype | policy | quantity | raw ulps | floored ulps |",
             "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['stratum']} | {r['dtype']} | {r['policy']} | {r['quantity']} | "
                     f"{r['raw']:.3g} | {r['floored']:.3g} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m lossproofs.oracle_linear
    import sys

    names = sys.argv[1:] or None
    print(_table(ulp_study(strata_names=names)))
