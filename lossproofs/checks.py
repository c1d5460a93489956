"""Run a :class:`~lossproofs.cases.Case` through an implementation and through the reference,
and compare them with the bounds of :mod:`lossproofs.tolerances`.

The tests and the conformance report share these functions, so what the report says is what the
tests check. Elements that a known divergence of the target affects (:mod:`lossproofs.ledger`)
are set aside element by element: the rest of the result is still compared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from lossproofs.cases import Case
from lossproofs.declarations import DECLARABLE, case_families
from lossproofs.dtypes import max_finite, tiny
from lossproofs.registry import loss
from lossproofs.targets import Target
from lossproofs.tolerances import tolerance


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor (any dtype, any device) as a float64 NumPy array, exactly."""
    return t.detach().to("cpu", torch.float64).numpy()


def reference_forward(case: Case) -> np.ndarray:
    """The float64 reference on the values the implementation sees."""
    arrays, params = case.reference_args()
    return np.asarray(loss(case.function).reference(*arrays, **params), dtype=np.float64)


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


def forward_scale(case: Case, expected: np.ndarray) -> float | np.ndarray:
    """The scale the forward value of ``case`` is compared at: :func:`error_scale` (a scalar)
    for ``sum``/``mean``, and per element for unreduced outputs (see :func:`_per_element`)."""
    if case.params.get("reduction") in ("sum", "mean"):
        return error_scale(case, expected)
    from lossproofs.error_model import floors  # late: error_model imports the oracle

    expected = np.asarray(expected, dtype=np.float64)
    return _per_element(_row_scale(expected), floors(case)["forward"], expected.shape)


def gradient_scale(case: Case | str, expected: np.ndarray,
                   grad_output: np.ndarray | None = None,
                   which: str = "input gradient") -> float | np.ndarray:
    """The scale a gradient of ``case`` is compared at, per element: the error model's floor
    for ``which`` (``"input gradient"`` or ``"target gradient"``) with ``grad_output`` (see
    :func:`_per_element`), capped at the whole-result scale: ``max|expected|`` (at least 1)
    for coupled gradients (softmax's Σ, a mean's denominator), 1 for elementwise ones (see
    :class:`lossproofs.registry.Loss`).

    Given a function name instead of a case (a result the error model does not cover, such as
    a Hessian-vector product), the whole-result scale alone."""
    function = case if isinstance(case, str) else case.function
    expected = np.asarray(expected, dtype=np.float64)
    row = _row_scale(expected) if loss(function).coupled_gradient else 1.0
    if isinstance(case, str):
        return row
    from lossproofs.error_model import floors  # late: error_model imports the oracle

    return _per_element(row, floors(case, grad_output).get(which), expected.shape)


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


# -- running an implementation ----------------------------------------------------------------
def call(impl: Target, case: Case, requires_grad: tuple[bool, ...] = ()):
    """Call ``impl``'s function on the case's tensors; returns ``(output, positional tensors)``.
    An exception the implementation raises keeps its type (the ledger's strict xfails expect
    it) and gains a note for the module's author (:func:`for_the_author`)."""
    tensors, kwargs = case.torch_args(requires_grad)
    try:
        return impl.get(case.function)(*tensors, **kwargs), tensors
    except Exception as e:
        note = (f"{impl.name}: {case.function} raised {type(e).__name__} on this case.\n"
                + for_the_author(impl, case))
        if hasattr(e, "add_note"):
            e.add_note(note)
        else:  # Python 3.10: pytest shows __notes__ all the same
            e.__notes__ = [*getattr(e, "__notes__", []), note]
        raise


def for_the_author(impl: Target, case: Case) -> str:
    """What a failing case exercises, and how a module declares what it does not provide."""
    families = sorted(case_families(case) - {"reduction:mean"})
    if not families:
        return "The case uses no optional parameter family: this is a bug of the target."
    declarable = [f for f in families if f in DECLARABLE.get(case.function, ())]
    first = declarable[0] if declarable else families[0]
    return (f"The case exercises {', '.join(families)}. If {case.function} does not provide "
            f"one of them, declare it in the module, e.g. NOT_PROVIDED = "
            f"{{{case.function!r}: {{{first!r}: '<why>'}}}}, and it is not drawn "
            "(`lossproofs test --help` lists the families); otherwise this is a bug.")


def forward(impl: Target, case: Case) -> tuple[np.ndarray, np.ndarray, float | np.ndarray]:
    """``(actual, expected, scale)`` for the forward value of ``case``."""
    out, _ = call(impl, case)
    actual = to_numpy(out)
    expected = reference_forward(case)
    return actual, expected, forward_scale(case, expected)


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
    wanted = reference_forward(case).shape
    if tuple(out.shape) != wanted:
        raise AssertionError(f"{case.function} forward has the wrong shape: "
                             f"{tuple(out.shape)}, expected {wanted}")
    g = grad_output_for(case, tuple(out.shape), seed)
    g_t = torch.from_numpy(g).to(out.dtype)
    leaves = [t for t, r in zip(tensors, rg) if r]
    grads = torch.autograd.grad(out, leaves, g_t, allow_unused=True)
    arrays, params = case.reference_args()
    results = []
    declared = loss(case.function)
    results.append(("input gradient", grads[0], declared.backward(g, *arrays, **params)))
    if wrt_target:
        results.append(("target gradient", grads[1],
                        declared.target_backward(g, *arrays, **params)))
    out_list = []
    for name, actual, expected in results:
        expected = np.asarray(expected, dtype=np.float64)
        a = np.zeros_like(expected) if actual is None else to_numpy(actual)
        out_list.append((name, a, expected))
    return out_list


# -- the checks, with the target's known divergences set aside ----------------------------------
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


def _set_aside(impl: Target, case: Case, direction: str, shape: tuple[int, ...]):
    from lossproofs import ledger

    return ledger.set_aside(impl, case, direction, shape)


def _nothing_set_aside():
    from lossproofs import ledger

    return ledger.SetAside()


def check_forward(impl: Target, case: Case, known: bool = True) -> Outcome:
    """The forward value of ``case`` under ``impl`` against the reference; with ``known``, the
    elements the target's known divergences affect are set aside."""
    expected = reference_forward(case)
    aside = (_set_aside(impl, case, "forward", expected.shape) if known
             else _nothing_set_aside())
    if aside.whole:
        return Outcome("set aside", [], aside.names)
    out, _ = call(impl, case)
    actual = to_numpy(out)
    c = compare(actual, expected, case.dtype, "forward", forward_scale(case, expected),
                aside.mask)
    message = "" if c.ok else (c.message(f"{case.function} forward", actual, expected)
                               + _hint(impl, case))
    return Outcome("pass" if c.ok else "fail", [("forward", c)], aside.names, message)


def _hint(impl: Target, case: Case) -> str:
    """For a user module's failure, what the case exercises and how to declare it out."""
    return "\n" + for_the_author(impl, case) if impl.name.startswith("module:") else ""


def check_gradients(impl: Target, case: Case, seed: int, wrt_target: bool = False,
                    known: bool = True) -> Outcome:
    """The input (and target) gradients of ``case`` under ``impl`` against the closed forms,
    with a random ``grad_output`` drawn from ``seed``; ``known`` as for :func:`check_forward`."""
    # the grad_output gradients() draws from seed: for the error model's floors, and for the
    # ledger's predicates whose mechanism depends on it (a product with it turning subnormal)
    g = grad_output_for(case, reference_forward(case).shape, seed)
    aside = (_set_aside(impl, replace(case, grad_output=g), "gradient", case.arrays[0].shape)
             if known else _nothing_set_aside())
    if aside.whole:
        return Outcome("set aside", [], aside.names)
    comparisons, messages = [], []
    for name, actual, expected in gradients(impl, case, seed, wrt_target):
        mask = aside.mask if aside.mask is not None and aside.mask.shape == expected.shape \
            else None
        c = compare(actual, expected, case.dtype, "gradient",
                    gradient_scale(case, expected, g, name), mask)
        comparisons.append((name, c))
        if not c.ok:
            messages.append(c.message(f"{case.function} {name}", actual, expected))
    return Outcome("fail" if messages else "pass", comparisons, aside.names,
                   "\n".join(messages) + (_hint(impl, case) if messages else ""))


def check_special_value(impl: Target, case: Case, expected) -> Outcome:
    """``case`` in float64 must give exactly ``expected`` (NaN equal to NaN, ±inf exact)."""
    out, _ = call(impl, case)
    actual = to_numpy(out)
    expected = np.asarray(expected, dtype=np.float64)
    c = compare(actual, expected, "float64", "forward")
    message = "" if c.ok else c.message(f"{case.function} special value", actual, expected)
    return Outcome("pass" if c.ok else "fail", [("special value", c)], "", message)


def check_rejects(impl: Target, case: Case,
                  exceptions: tuple[type[BaseException], ...] = (ValueError, RuntimeError)):
    """``case`` is invalid input: ``impl`` must raise one of ``exceptions``."""
    try:
        call(impl, case)
    except exceptions:
        return Outcome("pass", [])
    return Outcome("fail", [], "", f"{impl.name} accepted {case.function} input that has no "
                                   f"loss without an error ({case.params})")


# -- the linear kind (linear_cross_entropy): its own error scales ----------------------------------
def linear_error_scales(case: Case, grad_output: np.ndarray | None = None) -> dict[str, float]:
    """Error scales (``atol`` multipliers) for the forward value and the three gradients of a
    ``linear_cross_entropy`` case (kind ``"linear"``), from first-order error propagation
    through ``z = x·Wᵀ + b`` with the logit bounds ``A_n = max_c(Σ_i |x_ni||W_ci| + |b_c|)``
    (:func:`lossproofs.linear_targets.logit_bounds`: a logit is off by ``u·A_n``, u the dtype's
    unit roundoff) and the terms ``(|G|, M, H)`` of
    :func:`lossproofs.linear_targets.logit_gradient_terms`:

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
    from lossproofs import reference
    from lossproofs.linear_targets import _logits, logit_bounds, logit_gradient_terms

    arrays, params = case.reference_args()
    x, w, t = arrays
    a = logit_bounds(case)
    a = np.where(np.isfinite(a), a, 0.0)
    fwd_expected = np.asarray(reference.linear_cross_entropy(x, w, t, **params))
    if grad_output is None:
        grad_output = np.ones(fwd_expected.shape)
    plan_case = Case("cross_entropy",
                     (np.asarray(_logits(case)), t),
                     {k: v for k, v in params.items() if k not in ("linear_bias",)
                      and not (k == "ignore_index" and v is None)},
                     "float64")
    ce_scale = error_scale(plan_case, fwd_expected)
    g1, _, _ = logit_gradient_terms(case, np.ones(fwd_expected.shape))
    row = np.sum(g1, axis=1) * a
    fwd = float(np.max(row, initial=0.0)) if params.get("reduction", "mean") == "none" else (
        float(np.sum(row)))
    _, m, h = logit_gradient_terms(case, grad_output)
    e = m + 2.0 * a[:, None] * h
    x2 = np.abs(np.atleast_2d(x))
    x2 = np.where(np.isfinite(x2), x2, 0.0)
    w2 = np.abs(w.reshape(-1, w.shape[-1]))
    return {
        "forward": max(1.0, ce_scale, fwd),
        "input": max(1.0, float(np.max(e @ w2, initial=0.0))),
        "linear_weight": max(1.0, float(np.max(e.T @ x2, initial=0.0))),
        "linear_bias": max(1.0, float(np.max(np.sum(e, axis=0), initial=0.0))),
        "target": 1.0,
    }
