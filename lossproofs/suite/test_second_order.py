"""Second order: torch's gradcheck/gradgradcheck on the implementation, and Hessian-vector
products of every function with a closed form (``reference.<name>_hvp``) and of
nll_loss∘log_softmax against closed forms.

gradcheck and gradgradcheck run in float64 (finite differences need it: torch refuses anything
narrower). The Hessian-vector products and the explicit Hessian run in float64 and float32,
compared with the tolerance table's gradient row at ``checks.gradient_scale``. BCE inputs keep
away from the clamp at 0 and 1, where the loss is not differentiable, and from the flat tails,
where a finite difference of step 1e-6 is all rounding.
"""

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossproofs import checks, reference, strategies
from lossproofs.cases import Case
from lossproofs.registry import GENERIC_FUNCTIONS, LOSSES
from lossproofs.strategies import class_dim
from lossproofs.suite._support import require, set_aside_divergent_cases, skip_if_excluded
from lossproofs.tolerances import tolerance

F64 = "float64"
SECOND_ORDER_DTYPES = ("float64", "float32")
HVP_FUNCTIONS = tuple(name for name, loss in LOSSES.items() if loss.has_hvp)


def _differentiable(case: Case) -> Case:
    """Move BCE probabilities and targets inside [0.05, 0.95], where the clamp and the log
    are smooth and a finite-difference step stays inside the domain."""
    if case.function == "binary_cross_entropy":
        p, y = (0.05 + 0.9 * a for a in case.arrays)
        return Case(case.function, (p, y), case.params, case.dtype, "contiguous", case.tags)
    return Case(case.function, case.arrays, case.params, case.dtype, "contiguous", case.tags)


def _functional(impl, case: Case, wrt_target: bool):
    tensors, kwargs = case.torch_args()
    fn = impl.get(case.function)
    if wrt_target:
        return (lambda x, t: fn(x, t, **kwargs)), tuple(
            t.detach().requires_grad_(True) for t in tensors)
    rest = tensors[1:]
    return (lambda x: fn(x, *rest, **kwargs)), (tensors[0].detach().requires_grad_(True),)


@pytest.mark.parametrize("function", GENERIC_FUNCTIONS)  # see Loss.generic_checks
@given(data=st.data())
def test_gradcheck_and_gradgradcheck(impl, function, data):
    """torch.autograd's finite-difference checks of first and second derivatives."""
    require(impl, function)
    spec = LOSSES[function]
    case = _differentiable(data.draw(spec.cases(F64, exclude=impl.declared_out(function)),
                                     label="case"))
    set_aside_divergent_cases(impl, case)
    assume(case.arrays[0].size > 0)  # gradcheck rejects empty inputs; nothing to check there
    # A NaN loss (mean over zero total weight) has no derivative to check.
    assume(np.isfinite(checks.reference_forward(case)).all())
    wrt_target = spec.differentiable_target and case.arrays[1].dtype.kind == "f"
    fn, inputs = _functional(impl, case, wrt_target)
    # fast_mode checks random projections vᵀJu instead of every Jacobian entry: the same
    # verdict for a wrong derivative with probability 1, at a fraction of the cost.
    # Bitwise-reproducible backward is not part of the mathematics (CUDA's K-dim log_softmax
    # backward is not): allow repeated backward passes to differ within the float64 bound.
    nondet = tolerance(F64, "gradient").rtol
    assert torch.autograd.gradcheck(fn, inputs, raise_exception=True, fast_mode=True,
                                    nondet_tol=nondet)
    assert torch.autograd.gradgradcheck(fn, inputs, raise_exception=True, fast_mode=True,
                                        nondet_tol=nondet)


def _hvp(fn, x: torch.Tensor, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """H·v of ⟨g, fn(x)⟩ by double backward."""
    out = fn(x)
    (grad,) = torch.autograd.grad(out, x, g, create_graph=True)
    (hv,) = torch.autograd.grad(grad, x, v, allow_unused=True)
    return torch.zeros_like(x) if hv is None else hv


def _check_hvp(impl, case: Case, seed: int, compose: bool = False):
    set_aside_divergent_cases(impl, case)
    tensors, kwargs = case.torch_args()
    x = tensors[0].detach().requires_grad_(True)
    rest = tensors[1:]
    if compose:  # nll_loss(log_softmax(x)): the seed's composed form
        cd = class_dim(tuple(x.shape))
        kw = {k: v for k, v in kwargs.items() if k != "label_smoothing"}
        fn = lambda z: impl.nll_loss(impl.log_softmax(z, cd), *rest, **kw)  # noqa: E731
    else:
        fn = lambda z: impl.get(case.function)(z, *rest, **kwargs)  # noqa: E731
    out_shape = tuple(fn(x).shape)
    rng = np.random.default_rng(seed)
    # g and v in the case's dtype; the reference sees exactly those values.
    g = case.rounded(rng.uniform(-2, 2, out_shape))
    v = case.rounded(rng.uniform(-1, 1, tuple(x.shape)))
    actual = _hvp(fn, x, torch.from_numpy(g).to(x.dtype), torch.from_numpy(v).to(x.dtype))
    arrays, params = case.reference_args()
    if compose:
        params = {k: p for k, p in params.items() if k != "label_smoothing"}
    expected = getattr(reference, f"{case.function}_hvp")(v, g, *arrays, **params)
    checks.assert_agrees(checks.to_numpy(actual), np.asarray(expected), case, "gradient",
                         f"{case.function} Hessian-vector product",
                         checks.gradient_scale(case.function, np.asarray(expected)))


dtypes = pytest.mark.parametrize("dtype", SECOND_ORDER_DTYPES)


@dtypes
@pytest.mark.parametrize("function", HVP_FUNCTIONS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_hvp_matches_closed_form(impl, function, dtype, data, seed):
    """H·v by double backward against ``reference.<function>_hvp``: for cross_entropy
    H = diag(p) − ppᵀ per row, scaled by weights, smoothing and the reduction; for
    BCE-with-logits diag(σ(x)(1 − σ(x))·(pw·y + 1 − y)·w), scaled by the reduction."""
    require(impl, function)
    case = data.draw(LOSSES[function].cases(dtype, exclude=impl.declared_out(function)),
                     label="case")
    _check_hvp(impl, _differentiable(case), seed)


@dtypes
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_nll_of_log_softmax_hvp_matches_closed_form(impl, dtype, data, seed):
    """The composed form has the same Hessian as the fused one (no smoothing)."""
    require(impl, "nll_loss", "log_softmax")
    out = impl.declared_out("nll_loss") | impl.declared_out("log_softmax")
    case = data.draw(strategies.nll_loss_cases(dtype, function="cross_entropy", exclude=out),
                     label="case")
    _check_hvp(impl, _differentiable(case), seed, compose=True)


@dtypes
@given(x=hnp.arrays(np.float64, (3, 4), elements=st.floats(-5, 5)), seed=st.integers(0, 99))
def test_cross_entropy_hessian_is_diag_p_minus_ppt(impl, dtype, x, seed):
    """The textbook form on one explicit Hessian: sum-reduced CE, H_i = diag(p_i) − p_i p_iᵀ."""
    require(impl, "cross_entropy")
    t = np.random.default_rng(seed).integers(0, 4, 3)
    case = Case("cross_entropy", (x, t), {"reduction": "sum"}, dtype)
    skip_if_excluded(impl, case)
    (xt, tt), kw = case.torch_args()
    h = torch.autograd.functional.hessian(lambda z: impl.cross_entropy(z, tt, **kw), xt,
                                          vectorize=True)
    (xr, _), _ = case.reference_args()
    p = reference.softmax(xr, 1)
    expected = np.zeros((3, 4, 3, 4))
    for i in range(3):
        expected[i, :, i, :] = np.diag(p[i]) - np.outer(p[i], p[i])
    checks.assert_agrees(checks.to_numpy(h), expected, case, "gradient",
                         "CE Hessian vs diag(p) − ppᵀ",
                         checks.gradient_scale("cross_entropy", expected))
