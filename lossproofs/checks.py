"""Run a :class:`~lossproofs.cases.Case` through an implementation and through the reference,
and compare them with the bounds of :mod:`lossproofs.tolerances`.

The tests and the conformance report share these functions, so what the report says is what the
tests check. Elements that a known divergence of the target affects (:mod:`lossproofs.ledger`)
are set aside element by element: the rest of the result is still compared.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from lossproofs import error_model, ledger, oracle
from lossproofs.accuracy_implementations import run_callable
from lossproofs.cases import Case
from lossproofs.comparison import (  # noqa: F401  (re-exported: checks is the suite's entry)
    Comparison,
    Outcome,
    _per_element,
    _row_scale,
    assert_agrees,
    compare,
    error_scale,
    linear_error_scales,
    nontrivial,
    reference_forward,
    to_numpy,
)
from lossproofs.declarations import DECLARABLE, case_families
from lossproofs.error_model import floors
from lossproofs.ledger import Divergence
from lossproofs.registry import loss
from lossproofs.targets import Target
from lossproofs.targets import linear as L
from lossproofs.tolerances import ulp_bound


def forward_scale(case: Case, expected: np.ndarray) -> float | np.ndarray:
    """The scale the forward value of ``case`` is compared at: :func:`error_scale` (a scalar)
    for ``sum``/``mean``, and per element for unreduced outputs (see :func:`_per_element`)."""
    if case.params.get("reduction") in ("sum", "mean"):
        return error_scale(case, expected)
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
    return _per_element(row, floors(case, grad_output).get(which), expected.shape)


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
def _set_aside(impl: Target, case: Case, direction: str, shape: tuple[int, ...]):
    return ledger.set_aside(impl, case, direction, shape)


def _nothing_set_aside():
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
# -- linear_cross_entropy: three gradients at the matmul's error scales --------------------------
def check_linear_forward(impl, case: Case, known: bool = True) -> Outcome:
    """The forward value of a linear_cross_entropy ``case`` under ``impl`` (a
    :class:`~lossproofs.targets.Target`) against the reference at
    :func:`lossproofs.linear_error_scales`; with ``known``, a case a known divergence of
    the target covers is set aside (:mod:`lossproofs.ledger`). A
    :class:`lossproofs.Outcome`, as :func:`check_forward`."""
    aside = ledger.set_aside(impl, case, "forward", ()) if known else ledger.SetAside()
    if aside.whole:
        return Outcome("set aside", [], aside.names)
    actual, expected = L._quiet(L.forward, impl.get(L.FUNCTION), case)
    c = compare(actual, expected, case.dtype, "forward",
                       linear_error_scales(case)["forward"])
    message = "" if c.ok else c.message(f"{L.FUNCTION} forward", actual, expected)
    return Outcome("pass" if c.ok else "fail", [("forward", c)], aside.names, message)


def check_linear_gradients(impl, case: Case, seed: int, known: bool = True,
                           names: tuple[str, ...] = L.GRADIENTS,
                           frozen_target: bool = False) -> Outcome:
    """The gradients ``names`` (``"target"`` added for probability targets unless
    ``frozen_target``) of ``case`` under ``impl``, with a random ``grad_output`` drawn from
    ``seed``, against the reference's closed forms at :func:`lossproofs.comparison.
    linear_error_scales`; ``known`` as for :func:`check_linear_forward` (a divergence sets the case
    aside as a whole)."""
    aside = (ledger.set_aside(impl, case, "gradient", ()) if known else ledger.SetAside())
    if aside.whole:
        return Outcome("set aside", [], aside.names)
    g, results = L._quiet(L.gradients, impl.get(L.FUNCTION), case, seed,
                          L.wrt(case, names, frozen_target))
    scales = linear_error_scales(case, g)
    comparisons, messages = [], []
    for name, actual, expected in results:
        c = compare(actual, expected, case.dtype, "gradient", scales[name])
        comparisons.append((f"{name} gradient", c))
        if not c.ok:
            messages.append(c.message(f"{L.FUNCTION} {name} gradient", actual, expected))
    return Outcome("fail" if messages else "pass", comparisons, aside.names,
                          "\n".join(messages))


# -- accuracy against the exact oracle, and the ledger's checks ---------------------------------
def check_accuracy(target, case: Case, direction: str, floored: bool = True):
    """``target``'s ``direction`` result on ``case`` (which carries its ``grad_output``) within
    the function's ULP bound of the exact answer: counted above the fair floor (``floored``), or
    in plain ulps where the exact answer is representable. With ``floored`` the exact answer
    must be representable in the dtype (an overflowing result is the dtype's limit, not an
    error). Returns an :class:`Outcome` (the ledger's accuracy entries run through this)."""
    k = ("forward", "gradient").index(direction)
    result = run_callable(target.get(case.function), case)[k]
    arrays, params, g = error_model.rounded_inputs(case)
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
        err = error_model.floored_ulps(result, want, error_model.error_floors(case)[k], case.dtype)
    else:
        err = error_model.errors(result, want, case.dtype)
    worst = float(np.max(err, initial=0.0))
    ok = worst <= bound
    how = "ulps above the fair floor" if floored else "ulps"
    return Outcome("pass" if ok else "fail", [], "",
                   "" if ok else f"{case.function} {direction} in {case.dtype} is {worst:.3g} "
                                 f"{how} from the exact answer (bound {bound})")


def run_check(target, entry: Divergence, case: Case | None = None) -> Outcome:
    """Run ``entry``'s check on ``case`` (default: its example) under ``target``, with nothing
    set aside; returns an :class:`Outcome`. An implementation that raises on
    the input raises here (``entry.raises`` names what affected targets raise)."""
    case = entry.example if case is None else case
    if entry.check == "error type":
        # ``expected`` is the ErrorCase (its tensors keep their dtypes): the implementation
        # must raise the reference's (and torch's reference path's) exception type.
        # A target that does not claim torch's exception types must reject it at all.
        bad = entry.expected
        accepted = bad.exception if target.torch_exceptions else Exception
        args, kwargs = bad.torch_args()
        try:
            target.get(bad.function)(*args, **kwargs)
        except accepted:
            return Outcome("pass", [])
        except Exception as e:  # the type is what the check compares
            return Outcome("fail", [], "", f"{bad.function} with {bad.name}: raised "
                                  f"{type(e).__name__} ({e}) instead of "
                                  f"{bad.exception.__name__}")
        return Outcome("fail", [], "", f"{bad.function} with {bad.name}: accepted "
                              f"without an error (expected {bad.exception.__name__})")
    if entry.check in ("forward", "gradient") and loss(case.function).kind == "linear":
        if entry.check == "forward":
            return check_linear_forward(target, case, known=False)
        return check_linear_gradients(target, case, entry.seed, known=False)
    if entry.check == "forward":
        return check_forward(target, case, known=False)
    if entry.check == "gradient":
        return check_gradients(target, case, entry.seed, entry.wrt_target, known=False)
    if entry.check == "special value":
        return check_special_value(target, case, entry.expected)
    if entry.check == "rejects":
        # torch's types for torch's family; any other target must reject it at all
        return check_rejects(target, case, (ValueError, RuntimeError)
                                    if target.torch_exceptions else (Exception,))
    return check_accuracy(target, case, entry.direction, entry.floored)
