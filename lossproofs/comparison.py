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

from lossproofs.cases import Case
from lossproofs.dtypes import max_finite, tiny
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
