"""Run a :class:`~lossproofs.cases.Case` through an implementation and through the reference,
and compare them with the bounds of :mod:`lossproofs.tolerances`.

The tests and the conformance report share these functions, so what the report says is what the
tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lossproofs import reference
from lossproofs.cases import Case
from lossproofs.dtypes import max_finite
from lossproofs.specs import SPECS
from lossproofs.targets import Target
from lossproofs.tolerances import tolerance


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor (any dtype, any device) as a float64 NumPy array, exactly."""
    return t.detach().to("cpu", torch.float64).numpy()


def reference_forward(case: Case) -> np.ndarray:
    """The float64 reference on the values the implementation sees."""
    arrays, params = case.reference_args()
    return np.asarray(getattr(reference, case.function)(*arrays, **params), dtype=np.float64)


def error_scale(case: Case, expected: np.ndarray) -> float:
    """The magnitude against which absolute error is measured for this case.

    Summation error grows with ``Σ|ℓ_i|``, not with ``|Σℓ_i|``: for ``sum`` the scale is
    ``Σ|ℓ_i|`` over the unreduced terms; for ``mean`` the same divided by the reference's own
    denominator (recovered as ``sum/mean``). Unreduced outputs use ``max|expected|``. Never
    below 1, so that results near zero are compared absolutely.
    """
    reduction = case.params.get("reduction")
    if reduction in ("sum", "mean"):
        arrays, params = case.reference_args()
        fn = getattr(reference, case.function)
        terms = np.abs(np.asarray(fn(*arrays, **{**params, "reduction": "none"})))
        total = float(np.sum(terms[np.isfinite(terms)]))
        if reduction == "mean":
            s = float(fn(*arrays, **{**params, "reduction": "sum"}))
            m = float(fn(*arrays, **{**params, "reduction": "mean"}))
            total = total * abs(m / s) if (s != 0 and np.isfinite(m / s)) else float(
                np.max(terms, initial=0.0))
        return max(1.0, total)
    finite = np.abs(expected[np.isfinite(expected)])
    return max(1.0, float(np.max(finite, initial=0.0)))


def gradient_scale(function: str, expected: np.ndarray) -> float:
    """The scale gradients are compared at: ``max|expected|`` (at least 1) for coupled
    gradients (softmax's Σ, a mean's denominator), 1 for elementwise ones; see FunctionSpec."""
    if not SPECS[function].coupled_gradient:
        return 1.0
    finite = np.abs(expected[np.isfinite(expected)])
    return max(1.0, float(np.max(finite, initial=0.0)))


@dataclass
class Comparison:
    """Outcome of one elementwise comparison; ``ok`` when every element is within bound."""

    ok: bool
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...] | None
    bound: str

    def message(self, what: str, actual: np.ndarray, expected: np.ndarray) -> str:
        i = self.worst_index
        detail = "" if i is None else (
            f" worst at index {i}: actual {actual[i]!r} expected {expected[i]!r}")
        return (f"{what} disagrees: max abs error {self.max_abs_error:.3g}, max rel error "
                f"{self.max_rel_error:.3g} (bound {self.bound}){detail}")


def compare(actual: np.ndarray, expected: np.ndarray, dtype: str, kind: str,
            scale: float = 1.0) -> Comparison:
    """Elementwise ``|a − e| ≤ atol·scale + rtol·|e|``; NaN must match NaN, ±inf match exactly."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    tol = tolerance(dtype, kind)
    bound = f"atol {tol.atol:.3g}×scale {scale:.3g} + rtol {tol.rtol:.3g}, {dtype} {kind}"
    if actual.shape != expected.shape:
        return Comparison(False, np.inf, np.inf, None,
                          f"shape {actual.shape} vs expected {expected.shape}")
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
        allowed = tol.atol * scale + tol.rtol * np.abs(expected)
        ok_el = (err <= allowed) | both_nan | same_inf
    err = np.where(both_nan | same_inf, 0.0, np.where(np.isnan(err), np.inf, err))
    if err.size == 0:
        return Comparison(True, 0.0, 0.0, None, bound)
    rel = err / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    worst = np.unravel_index(int(np.argmax(np.where(ok_el, -1.0, err + 1.0))), err.shape)
    return Comparison(bool(ok_el.all()), float(err.max()), float(np.nanmax(rel)),
                      tuple(int(k) for k in worst), bound)


def assert_agrees(actual, expected, case: Case, kind: str, what: str, scale: float = 1.0):
    """Raise ``AssertionError`` with the worst element and the bound when out of tolerance."""
    c = compare(actual, expected, case.dtype, kind, scale)
    if not c.ok:
        raise AssertionError(c.message(what, np.asarray(actual), np.asarray(expected)))
    return c


# -- running an implementation ----------------------------------------------------------------
def call(impl: Target, case: Case, requires_grad: tuple[bool, ...] = ()):
    """Call ``impl``'s function on the case's tensors; returns ``(output, positional tensors)``."""
    tensors, kwargs = case.torch_args(requires_grad)
    return impl.get(case.function)(*tensors, **kwargs), tensors


def forward(impl: Target, case: Case) -> tuple[np.ndarray, np.ndarray, float]:
    """``(actual, expected, scale)`` for the forward value of ``case``."""
    out, _ = call(impl, case)
    actual = to_numpy(out)
    expected = reference_forward(case)
    return actual, expected, error_scale(case, expected)


def grad_output_for(case: Case, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A random upstream gradient (not all ones) rounded to the case's dtype, as float64."""
    g = np.random.default_rng(seed).uniform(-2.0, 2.0, size=shape)
    return case.rounded(g)


def gradients(impl: Target, case: Case, seed: int, wrt_target: bool = False):
    """Autograd gradients of ``impl`` and the reference's closed forms, for the input (and the
    target when ``wrt_target``), with a random ``grad_output``.

    Returns a list of ``(name, actual, expected)``.
    """
    rg = (True, wrt_target) if len(case.arrays) > 1 else (True,)
    out, tensors = call(impl, case, rg)
    g = grad_output_for(case, tuple(out.shape), seed)
    g_t = torch.from_numpy(g).to(out.dtype)
    leaves = [t for t, r in zip(tensors, rg) if r]
    grads = torch.autograd.grad(out, leaves, g_t, allow_unused=True)
    arrays, params = case.reference_args()
    results = []
    expected_in = getattr(reference, f"{case.function}_backward")(g, *arrays, **params)
    results.append(("input gradient", grads[0], expected_in))
    if wrt_target:
        expected_t = getattr(reference, f"{case.function}_target_backward")(g, *arrays, **params)
        results.append(("target gradient", grads[1], expected_t))
    out_list = []
    for name, actual, expected in results:
        expected = np.asarray(expected, dtype=np.float64)
        a = np.zeros_like(expected) if actual is None else to_numpy(actual)
        out_list.append((name, a, expected))
    return out_list
