"""Comparing a result with the reference: the elementwise bound, its scales, and what one check
found (:class:`Outcome`).

The measure layer's base: it needs the registry's float64 references and the tolerance table,
nothing that runs an implementation, so the ledger's predicates can use it.
:mod:`lossproofs.checks` runs implementations and re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lossproofs import reference
from lossproofs.cases import Case
from lossproofs.dtypes import max_finite, tiny
from lossproofs.reference._kernels import (
    _cross_entropy_grad_log_probs,
    _cross_entropy_plan,
    _from_rows,
)
from lossproofs.registry import loss
from lossproofs.tolerances import tolerance


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor (any dtype, any device) as a float64 NumPy array, exactly."""
    return t.detach().to("cpu", torch.float64).numpy()


def reference_forward(case: Case) -> np.ndarray:
    """The float64 reference on the values the implementation sees."""
    arrays, params = case.reference_args()
    return np.asarray(loss(case.function).reference(*arrays, **params),
                      dtype=np.float64)


def nontrivial(case: Case, expected: np.ndarray) -> bool:
    """A case that can show a wrong kernel: at least two input elements, non-constant logits
    (or probabilities) and a non-zero expected value."""
    x = case.rounded(case.arrays[0])
    finite = np.asarray(expected)[np.isfinite(expected)]
    return bool(x.size >= 2 and np.ptp(x) > 0 and np.any(finite != 0))


def error_scale(case: Case, expected: np.ndarray) -> float:
    """The whole-result magnitude against which absolute error is measured for this case (the
    checks compare unreduced outputs per element, :func:`forward_scale`).

    Summation error grows with ``Σ|ℓ_i|``, not with ``|Σℓ_i|``: for ``sum`` the scale is
    ``Σ|ℓ_i|`` over the unreduced terms; for ``mean`` the same divided by the reference's own
    denominator (recovered as ``sum/mean``). Unreduced outputs use ``max|expected|``. Never
    below 1, so that results near zero are compared absolutely.
    """
    reduction = case.params.get("reduction")
    if reduction in ("sum", "mean"):
        arrays, params = case.reference_args()
        fn = loss(case.function).reference
        terms = np.abs(np.asarray(fn(*arrays, **{**params, "reduction": "none"})))
        total = float(np.sum(terms[np.isfinite(terms)]))
        if reduction == "mean":
            s = float(fn(*arrays, **{**params, "reduction": "sum"}))
            m = float(fn(*arrays, **{**params, "reduction": "mean"}))
            total = total * abs(m / s) if (s != 0 and np.isfinite(m / s)) else float(
                np.max(terms, initial=0.0))
        return max(1.0, total)
    return _row_scale(expected)


def _row_scale(expected: np.ndarray) -> float:
    """``max|expected|`` over the finite elements, never below 1: the whole-result scale."""
    finite = np.abs(expected[np.isfinite(expected)])
    return max(1.0, float(np.max(finite, initial=0.0)))


def _per_element(row_scale: float, floor, shape: tuple[int, ...]) -> np.ndarray:
    """The per-element scale: the error model's floor (the magnitudes of the terms that element
    combines, :func:`lossproofs.error_model.floors`), never above the whole-result scale it
    replaces, so an element is compared no more loosely than before and a small element can
    no longer hide behind a large one. An undefined floor (NaN: a NaN input, or 0/0 where
    every target is ignored) compares the element absolutely, at the representability floor
    of :func:`compare`. No floor (None): the whole-result scale."""
    if floor is None:  # a function the error model does not cover
        return row_scale
    floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), shape)
    return np.minimum(row_scale, np.where(np.isnan(floor), 0.0, floor))


@dataclass
class Comparison:
    """Outcome of one elementwise comparison; ``ok`` when every element is within bound."""

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...] | None
    bound: str
    set_aside: int = 0  # elements not compared (a known divergence affects them)
    compared: int = 0  # elements compared
    shape_error: bool = False  # the result has another shape than the reference's

    def message(self, what: str, actual: np.ndarray, expected: np.ndarray) -> str:
        if self.shape_error:
            return (f"{what} has the wrong shape: {np.shape(actual)}, expected "
                    f"{np.shape(expected)}")
        i = self.worst_index
        detail = "" if i is None else (
            f" worst at index {i}: actual {actual[i]!r} expected {expected[i]!r}")
        aside = f"; {self.set_aside} element(s) set aside" if self.set_aside else ""
        return (f"{what} disagrees: max abs error {self.max_abs_error:.3g}, max rel error "
                f"{self.max_rel_error:.3g} (bound {self.bound}){detail}{aside}")


def compare(actual: np.ndarray, expected: np.ndarray, dtype: str, kind: str,
            scale: float | np.ndarray = 1.0,
            set_aside: np.ndarray | None = None) -> Comparison:
    """Elementwise ``|a − e| ≤ atol·max(scale, tiny) + rtol·|e|``; NaN must match NaN, ±inf
    match exactly.

    ``scale`` is a scalar or an array broadcastable to the result (one scale per element).
    It is never taken below the dtype's smallest normal ``tiny``: below it the dtype's spacing
    is the fixed subnormal step ``tiny·ε``, so a correctly rounded result near 0 may be off by
    half of it (the representability floor, see :mod:`lossproofs.tolerances`).
    ``set_aside`` marks elements not compared (a known divergence affects them)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    tol = tolerance(dtype, kind)
    scale = np.maximum(np.asarray(scale, dtype=np.float64), tiny(dtype))
    shown = (f"{float(scale):.3g}" if scale.ndim == 0 else
             f"per element, {float(np.min(scale, initial=np.inf)):.3g}…"
             f"{float(np.max(scale, initial=0.0)):.3g}")
    bound = f"atol {tol.atol:.3g}×scale {shown} + rtol {tol.rtol:.3g}, {dtype} {kind}"
    if actual.shape != expected.shape:
        return Comparison(False, np.inf, np.inf, None,
                          f"shape {actual.shape} vs expected {expected.shape}",
                          shape_error=True)
    both_nan = np.isnan(actual) & np.isnan(expected)
    same_inf = np.isinf(expected) & (actual == expected)
    # An exact value beyond the dtype's range rounds to ±inf (IEEE overflow): that is the
    # correctly rounded answer, not an error.
    with np.errstate(invalid="ignore"):
        overflow = np.isinf(actual) & (np.sign(actual) == np.sign(expected)) & (
            np.abs(expected) * (1 + tol.rtol) >= max_finite(dtype))
    same_inf = same_inf | overflow
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(actual - expected)
        allowed = tol.atol * np.broadcast_to(scale, expected.shape) + tol.rtol * np.abs(expected)
        ok_el = (err <= allowed) | both_nan | same_inf
    aside = (np.zeros(err.shape, dtype=bool) if set_aside is None
             else np.broadcast_to(np.asarray(set_aside, dtype=bool), err.shape))
    ok_el = ok_el | aside
    err = np.where(both_nan | same_inf | aside, 0.0, np.where(np.isnan(err), np.inf, err))
    n_aside = int(aside.sum())
    if err.size == 0:
        return Comparison(True, 0.0, 0.0, None, bound)
    with np.errstate(invalid="ignore"):
        rel = err / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    rel = np.where(np.isnan(rel), 0.0, rel)
    worst = np.unravel_index(int(np.argmax(np.where(ok_el, -1.0, err + 1.0))), err.shape)
    return Comparison(bool(ok_el.all()), float(err.max()), float(np.nanmax(rel)),
                      tuple(int(k) for k in worst), bound, n_aside, err.size - n_aside)


def assert_agrees(actual, expected, case: Case, kind: str, what: str,
                  scale: float | np.ndarray = 1.0,
                  set_aside: np.ndarray | None = None):
    """Raise ``AssertionError`` with the worst element and the bound when out of tolerance."""
    c = compare(actual, expected, case.dtype, kind, scale, set_aside)
    if not c.ok:
        raise AssertionError(c.message(what, np.asarray(actual), np.asarray(expected)))
    return c


@dataclass
class Outcome:
    """What one check of one case found: ``status`` is ``"pass"``, ``"fail"`` or ``"set aside"``
    (a known divergence of the target affects the whole result, which was not compared);
    ``comparisons`` holds ``(what, Comparison)`` pairs; ``divergences`` names the ledger entries
    whose elements were set aside."""

    status: str
    comparisons: list[tuple[str, Comparison]]
    divergences: str = ""
    message: str = ""

    @property
    def set_aside(self) -> int:
        return sum(c.set_aside for _, c in self.comparisons)

    def raise_for_failure(self) -> None:
        if self.status == "fail":
            raise AssertionError(self.message)


# -- linear_cross_entropy: the error model of its matmul ----------------------------------------
def logit_bounds(case: Case) -> np.ndarray:
    """``A_n = max_c (Σ_i |x_ni|·|W_ci| + |b_c|)`` per batch row (shape ``(N,)``, ``(1,)``
    unbatched): the magnitude the matmul sums to form row n's logits, so the absolute error of
    a logit computed in a dtype with unit roundoff u is at most about ``u·A_n`` (one rounding
    of the result plus the accumulation, whatever its order)."""
    (x, w, _t), params = case.reference_args()
    b = params.get("linear_bias")
    x2 = np.abs(np.atleast_2d(x))
    w2 = np.abs(w.reshape(-1, w.shape[-1]))
    mags = x2 @ w2.T
    if b is not None:
        mags = mags + np.abs(np.asarray(b, dtype=np.float64)).reshape(-1)
    return np.max(mags, axis=1, initial=0.0)


def logit_gradient_terms(case: Case, grad_output: np.ndarray):
    """``(|G|, M, H)`` as ``(N, C·P)`` rows (one batch element a row), where
    ``G = ∂L/∂z = g_lp − p·Σ_c g_lp`` (the reference's), ``M = |g_lp| + p·Σ_c |g_lp|`` (its two
    terms without their cancellation: what a relative rounding of p or g_lp perturbs) and
    ``H = p·(1 − p)·Σ_c |g_lp|`` (what a perturbation of the logits perturbs: a logit error
    |δz| ≤ δ moves p_c by at most ``2δ·p_c·(1 − p_c)``)."""
    arrays, params = case.reference_args()
    x, _w, t = arrays
    z = _logits(case)
    ignore_index = params.get("ignore_index")
    plan = _cross_entropy_plan(z, t, params.get("weight"),
                               -100 if ignore_index is None else ignore_index,
                               params.get("reduction", "mean"), params.get("label_smoothing", 0.0))
    with np.errstate(all="ignore"):
        g_lp = _cross_entropy_grad_log_probs(plan, np.asarray(grad_output))
        p = np.exp(plan["log_probs"])
        total = np.sum(np.abs(g_lp), axis=1, keepdims=True)
        g = np.abs(g_lp - p * np.sum(g_lp, axis=1, keepdims=True))
        m = np.abs(g_lp) + p * total
        h = p * (1.0 - p) * total
    n = 1 if x.ndim == 1 else x.shape[0]
    return tuple(np.nan_to_num(_from_rows(v, z.shape).reshape(n, -1), nan=0.0, posinf=0.0)
                 for v in (g, m, h))


def _logits(case: Case) -> np.ndarray:
    (x, w, _t), params = case.reference_args()
    z = np.atleast_2d(x) @ w.reshape(-1, w.shape[-1]).T
    if params.get("linear_bias") is not None:
        z = z + np.asarray(params["linear_bias"]).reshape(-1)
    logits_shape = (*x.shape[:-1], w.shape[0], *w.shape[1:-1])
    return z.reshape(logits_shape)


def linear_error_terms(case: Case, grad_output: np.ndarray | None = None
                       ) -> dict[str, np.ndarray]:
    """The error model of ``linear_cross_entropy`` (kind ``"linear"``), per element: the
    first-order error terms, in units of the dtype's unit roundoff, of the forward value
    (``Σ_n ‖G_n‖₁·A_n``; per row for ``reduction="none"``) and of the three gradients
    (``E·|W2|``, ``Eᵀ·|x|``, ``Σ_n E_n`` with ``E = M + 2·A_n·H``), from
    :func:`logit_bounds` and :func:`logit_gradient_terms` (``grad_output`` ones when None).
    :func:`linear_error_scales` takes their largest; the accuracy study
    (:mod:`lossproofs.accuracy.linear`) uses them as its floors. A row whose ``A_n`` is not
    finite (a NaN or inf activation) adds nothing."""
    arrays, params = case.reference_args()
    x, w, t = arrays
    a = logit_bounds(case)
    a = np.where(np.isfinite(a), a, 0.0)
    expected = np.asarray(reference.linear_cross_entropy(x, w, t, **params))
    g1, _, _ = logit_gradient_terms(case, np.ones(expected.shape))
    row = np.sum(g1, axis=1) * a
    _, m, h = logit_gradient_terms(
        case, np.ones(expected.shape) if grad_output is None else grad_output)
    e = m + 2.0 * a[:, None] * h
    x2 = np.abs(np.atleast_2d(x))
    x2 = np.where(np.isfinite(x2), x2, 0.0)
    w2 = np.abs(w.reshape(-1, w.shape[-1]))
    unreduced = params.get("reduction", "mean") == "none"
    # unreduced: one term per batch row (per element where each row is one element)
    forward = (row.reshape(expected.shape) if row.size == expected.size else row) if unreduced \
        else np.sum(row)
    return {"forward": forward,
            "input": (e @ w2).reshape(x.shape),
            "linear_weight": (e.T @ x2).reshape(w.shape),
            "linear_bias": np.sum(e, axis=0)}


def linear_error_scales(case: Case, grad_output: np.ndarray | None = None) -> dict[str, float]:
    """Error scales (``atol`` multipliers) for the forward value and the three gradients of a
    ``linear_cross_entropy`` case (kind ``"linear"``), from first-order error propagation
    through ``z = x·Wᵀ + b`` with the logit bounds ``A_n = max_c(Σ_i |x_ni||W_ci| + |b_c|)``
    (:func:`logit_bounds`: a logit is off by ``u·A_n``, u the dtype's
    unit roundoff) and the terms ``(|G|, M, H)`` of
    :func:`logit_gradient_terms`:

    - forward: ``Σ_n ‖G_n‖₁·A_n`` (the loss moves by ``Σ_c G_nc·δz_nc``), and never below
      cross_entropy's own scale at the logits (:func:`error_scale`: the summation error of the
      loss terms);
    - gradients: ``E = M + 2·A_n·H`` bounds the error of ``∂L/∂z`` in units of u (rounding of
      its terms, plus p's change under the logits' error), and the two matmuls propagate it
      together with their own rounding of the products: input ``max (E·|W2|)``, weight
      ``max (Eᵀ·|x|)``, bias ``max Σ_n E_n``.

    Each is at least 1. For ``reduction="none"`` the forward scale is the largest row's. A row
    whose ``A_n`` is not finite (a NaN or inf activation) adds nothing: its logits are not
    finite and compare as NaN/inf, and an ignored row (``G_n = 0``) is no term of the loss.
    """
    arrays, params = case.reference_args()
    x, w, t = arrays
    fwd_expected = np.asarray(reference.linear_cross_entropy(x, w, t, **params))
    plan_case = Case("cross_entropy",
                     (np.asarray(_logits(case)), t),
                     {k: v for k, v in params.items() if k not in ("linear_bias",)
                      and not (k == "ignore_index" and v is None)},
                     "float64")
    ce_scale = error_scale(plan_case, fwd_expected)
    terms = linear_error_terms(case, grad_output)
    worst = {name: float(np.max(v, initial=0.0)) for name, v in terms.items()}
    return {"forward": max(1.0, ce_scale, worst["forward"]),
            "input": max(1.0, worst["input"]),
            "linear_weight": max(1.0, worst["linear_weight"]),
            "linear_bias": max(1.0, worst["linear_bias"]),
            "target": 1.0}
