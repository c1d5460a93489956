"""Identities the seed tutorial claims, and their relatives, checked on the implementation.

Each identity relates two computations by the implementation under test (both sides go through
the same target), in float64 and in float32 — the dtype models train in — so a gap beyond the
rounding of that dtype is a result. Bounds come from the tolerance table
(:func:`lossproofs.tolerances.tolerance` through :func:`lossproofs.checks.compare`) at the scales
of :mod:`lossproofs.checks` (``error_scale`` for values, ``gradient_scale`` for gradients); no
test states its own constant. Where an identity holds only in exact arithmetic (a shift, a
difference of logits), the inputs lie on a grid of 2⁻¹⁰ and shifts are integers, so that the
shifted or subtracted values are exact in both dtypes and the identity, not the rounding of its
inputs, is what is checked.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lossproofs import checks, reference, strategies
from lossproofs.cases import Case
from lossproofs.strategies import class_dim
from lossproofs.suite._support import (
    declared_out,
    draw_case,
    require,
    require_declared,
    require_families,
    set_aside_divergent_cases,
)
from lossproofs.targets import get_target

IDENTITY_DTYPES = ("float64", "float32")
GRID = 2.0**-10


def _np(a) -> np.ndarray:
    return checks.to_numpy(a) if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)


def _agree(a, b, what, dtype, scale=1.0, kind="forward"):
    a, b = _np(a), _np(b)
    c = checks.compare(a, b, dtype, kind, scale)
    assert c.ok, c.message(what, a, b)


def _forward_scale(case: Case) -> float:
    return checks.error_scale(case, checks.reference_forward(case))


def _value_and_grad(fn, x, g=None):
    out = fn(x)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out) if g is None else g)
    return out.detach(), grad


def _on_grid(case: Case) -> Case:
    """``case`` with its input rounded to multiples of 2⁻¹⁰ (exact in float32 and float64)."""
    x = np.round(case.arrays[0] / GRID) * GRID
    return Case(case.function, (x, *case.arrays[1:]), case.params, case.dtype, case.layout,
                case.tags)


dtypes = pytest.mark.parametrize("dtype", IDENTITY_DTYPES)


def _provided_reduction(impl, drawn: str, *functions: str) -> str:
    """``drawn``, or the first reduction every one of ``functions`` provides when ``impl``
    declares ``drawn`` out (skip when none is left): declared-out reductions are never run."""
    out = declared_out(impl, *functions)
    kept = [r for r in (drawn, *strategies.REDUCTIONS) if f"reduction:{r}" not in out]
    if not kept:
        pytest.skip(f"{impl.name}: every reduction is declared not provided for one of "
                    f"{functions}")
    return kept[0]


# -- CrossEntropyLoss == NLLLoss ∘ LogSoftmax ---------------------------------------------------
@dtypes
@given(data=st.data())
def test_cross_entropy_is_nll_of_log_softmax(impl, dtype, data):
    """The seed's claim, for every parameter of nll_loss: same value, same input gradient."""
    require(impl, "cross_entropy", "nll_loss", "log_softmax")
    case = data.draw(strategies.nll_loss_cases(
        dtype, exclude=declared_out(impl, "cross_entropy", "nll_loss", "log_softmax")),
        label="case")
    set_aside_divergent_cases(impl, case)
    (x, t), kw = case.torch_args((True,))
    cd = class_dim(tuple(x.shape))
    fused = _value_and_grad(lambda z: impl.cross_entropy(z, t, **kw), x)
    composed = _value_and_grad(lambda z: impl.nll_loss(impl.log_softmax(z, cd), t, **kw), x)
    _agree(fused[0], composed[0], "cross_entropy vs nll_loss(log_softmax)", dtype,
           _forward_scale(case))
    _agree(fused[1], composed[1], "their input gradients", dtype,
           checks.gradient_scale("cross_entropy", checks.to_numpy(composed[1])), "gradient")


@dtypes
@given(data=st.data())
def test_module_api_cross_entropy_is_nll_of_log_softmax(dtype, data):
    """Same identity through ``nn.CrossEntropyLoss`` and ``nn.NLLLoss()(nn.LogSoftmax(dim=1))``."""
    case = data.draw(strategies.nll_loss_cases(dtype).filter(
        lambda c: len(c.arrays[0].shape) >= 2), label="case")
    nn_target = get_target("nn")
    set_aside_divergent_cases(nn_target, case)
    (x, t), kw = case.torch_args((True,))
    fused = _value_and_grad(lambda z: nn_target.cross_entropy(z, t, **kw), x)
    composed = _value_and_grad(
        lambda z: nn_target.nll_loss(nn_target.log_softmax(z, 1), t, **kw), x)
    _agree(fused[0], composed[0], "CrossEntropyLoss vs NLLLoss(LogSoftmax)", dtype,
           _forward_scale(case))
    _agree(fused[1], composed[1], "their input gradients", dtype,
           checks.gradient_scale("cross_entropy", checks.to_numpy(composed[1])), "gradient")


# -- softmax family -------------------------------------------------------------------------
@dtypes
@given(data=st.data(), shift=st.integers(-50, 50))
def test_softmax_is_shift_invariant_and_normalised(impl, dtype, data, shift):
    require(impl, "softmax")
    case = _on_grid(data.draw(strategies.softmax_cases(
        "softmax", dtype, declared_out(impl, "softmax")), label="case"))
    (x,), kw = case.torch_args()
    p = impl.softmax(x, **kw)
    scale = _forward_scale(case)
    _agree(impl.softmax(x + shift, **kw), p, "softmax(x + c) vs softmax(x)", dtype, scale)
    sums = p.sum(kw["dim"])
    _agree(sums, torch.ones_like(sums), "softmax row sums", dtype, scale)


@dtypes
@given(data=st.data())
def test_log_softmax_is_x_minus_logsumexp(impl, dtype, data):
    require(impl, "log_softmax", "logsumexp")
    case = data.draw(strategies.softmax_cases(
        "log_softmax", dtype, declared_out(impl, "log_softmax", "logsumexp")), label="case")
    (x,), kw = case.torch_args()
    dim = kw["dim"]
    lse = impl.logsumexp(x, dim, keepdim=True)
    _agree(impl.log_softmax(x, dim), x - lse, "log_softmax vs x − logsumexp(x)", dtype,
           _forward_scale(case))


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
@pytest.mark.parametrize(("dtype", "compute"), [
    ("float16", "float32"), ("bfloat16", "float32"), ("float32", "float64"),
    ("float16", "float64"), ("float32", "float32")])
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_softmax_dtype_argument_computes_in_that_dtype(impl, function, dtype, compute, data,
                                                       seed):
    """``softmax(x, dim, dtype=d)`` (the mixed-precision idiom: half logits, float32 softmax)
    casts x to d first, then computes and returns in d: its value matches the reference with
    ``dtype=d`` at d's bound, it equals the same function of ``x.to(d)``, and its gradient
    (flowing back through the cast, then rounded to x's dtype) matches the closed form."""
    require(impl, function)
    case = data.draw(strategies.softmax_cases(function, dtype, declared_out(impl, function)),
                     label="case")
    (x,), kw = case.torch_args((True,))
    torch_compute = getattr(torch, compute)
    out = impl.get(function)(x, kw["dim"], dtype=torch_compute)
    assert out.dtype == torch_compute
    (xr,), params = case.reference_args()
    expected = getattr(reference, function)(xr, params["dim"], dtype=compute)
    wide = Case(function, (xr,), params, compute)
    _agree(out, expected, f"{function}(dtype={compute}) vs reference", compute,
           checks.error_scale(wide, np.asarray(expected)))
    _agree(out, impl.get(function)(x.detach().to(torch_compute), kw["dim"]),
           f"{function}(dtype={compute}) vs {function}(x.to({compute}))", compute,
           checks.error_scale(wide, np.asarray(expected)))
    g = checks.grad_output_for(wide, tuple(out.shape), seed)
    (grad,) = torch.autograd.grad(out, x, torch.from_numpy(g).to(torch_compute))
    assert grad.dtype == x.dtype
    # The input is exact in the wider dtype, so the closed form of the float64 reference on it
    # is the gradient; torch rounds it once to x's dtype.
    expected_grad = getattr(reference, f"{function}_backward")(g, xr, params["dim"])
    _agree(grad, expected_grad, f"{function}(dtype={compute}) input gradient", dtype,
           checks.gradient_scale(function, np.asarray(expected_grad)), "gradient")


@dtypes
@given(data=st.data())
def test_logsumexp_over_a_tuple_of_dims_is_nested_logsumexp(impl, dtype, data):
    """logsumexp over (a, b) equals logsumexp over b of logsumexp over a (keepdim), and the
    reference; the tuple form is drawn by the ordinary logsumexp strategy too."""
    require(impl, "logsumexp")
    require_families(impl, "logsumexp", "tuple dim")
    case = data.draw(strategies.softmax_cases(
        "logsumexp", dtype, declared_out(impl, "logsumexp")).filter(
        lambda c: isinstance(c.params["dim"], tuple)), label="case")
    (x,), kw = case.torch_args()
    dims = kw["dim"]
    nested = x
    for d in dims:
        nested = impl.logsumexp(nested, d, keepdim=True)
    if not kw["keepdim"]:
        nested = nested.squeeze(tuple(d % x.dim() for d in dims))
    direct = impl.logsumexp(x, dims, keepdim=kw["keepdim"])
    _agree(direct, nested, "logsumexp over a tuple vs nested", dtype, _forward_scale(case))
    _agree(direct, checks.reference_forward(case), "logsumexp over a tuple vs reference", dtype,
           _forward_scale(case))


# -- probability targets ----------------------------------------------------------------------
def _one_hot(t: torch.Tensor, c: int, cd: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.movedim(torch.nn.functional.one_hot(t.long(), c).to(dtype), -1, cd)


@dtypes
@given(data=st.data())
def test_one_hot_probability_target_equals_index_target(impl, dtype, data):
    """Equal except for ``mean`` with weights, where torch divides by N·d (not Σ w[t]) for
    probability targets: documented behaviour, pytorch#61309; checked separately below."""
    require(impl, "cross_entropy")
    require_declared(impl, "cross_entropy", probability_target=True)
    case = draw_case(data, impl, "cross_entropy", dtype, strategies.nll_loss_cases(
        dtype, function="cross_entropy", ignored=False, uint8=False,
        exclude=declared_out(impl, "cross_entropy")))
    set_aside_divergent_cases(impl, case, "forward")
    (x, t), kw = case.torch_args()
    c = x.shape[class_dim(tuple(x.shape))]
    onehot = _one_hot(t, c, class_dim(tuple(x.shape)), x.dtype)
    if kw.get("reduction") == "mean" and kw.get("weight") is not None:
        kw["reduction"] = "sum"
    _agree(impl.cross_entropy(x, onehot, **kw), impl.cross_entropy(x, t, **kw),
           "one-hot probability target vs index target", dtype, _forward_scale(case))


def test_weighted_mean_differs_between_index_and_one_hot_targets(impl):
    """pytorch#61309: with class weights, ``mean`` divides by Σ w[t_i] for index targets but by
    the number of samples for probability targets. The documented formulas are checked on a case
    where they give different answers, so the test fails if torch changes either one."""
    require(impl, "cross_entropy")
    require_declared(impl, "cross_entropy", weight=True, probability_target=True)
    x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], dtype=torch.float64)
    t = torch.tensor([0, 2])
    w = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    lp = torch.log_softmax(x, 1)
    per_sample = -w[t] * lp[torch.arange(2), t]
    index_mean = impl.cross_entropy(x, t, weight=w)
    prob_mean = impl.cross_entropy(x, _one_hot(t, 3, 1, torch.float64), weight=w)
    _agree(index_mean, per_sample.sum() / w[t].sum(), "index-target weighted mean", "float64")
    _agree(prob_mean, per_sample.sum() / 2, "probability-target mean", "float64")
    assert not torch.isclose(index_mean, prob_mean)


@dtypes
@given(data=st.data(), eps=st.floats(0.0, 1.0))
def test_label_smoothing_is_cross_entropy_on_smoothed_targets(impl, dtype, data, eps):
    """``cross_entropy(x, t, label_smoothing=ε) == cross_entropy(x, (1−ε)·onehot(t) + ε/C)``
    for ``none`` and ``sum``, and for ``mean`` without weights (see pytorch#61309 above)."""
    require(impl, "cross_entropy")
    require_declared(impl, "cross_entropy", label_smoothing=True, probability_target=True)
    case = draw_case(data, impl, "cross_entropy", dtype, strategies.nll_loss_cases(
        dtype, function="cross_entropy", ignored=False, uint8=False,
        exclude=declared_out(impl, "cross_entropy")))
    case = Case(case.function, case.arrays, {**case.params, "label_smoothing": eps}, dtype,
                case.layout, case.tags)
    if case.params.get("reduction") == "mean" and case.params.get("weight") is not None:
        case.params["reduction"] = "sum"
    set_aside_divergent_cases(impl, case, "forward")
    (x, t), kw = case.torch_args()
    cd = class_dim(tuple(x.shape))
    c = x.shape[cd]
    # The smoothed target in float64, then in the dtype: both sides see the same numbers up to
    # the rounding of (1 − ε)·1 + ε/C and ε/C, which the bound covers (≤ ½ ulp per term).
    smoothed = ((1 - eps) * _one_hot(t, c, cd, torch.float64) + eps / c).to(x.dtype)
    kw_prob = {**kw, "label_smoothing": 0.0}
    _agree(impl.cross_entropy(x, t, **kw), impl.cross_entropy(x, smoothed, **kw_prob),
           "label smoothing vs smoothed probability targets", dtype, _forward_scale(case))


# -- binary forms --------------------------------------------------------------------------
@dtypes
@given(x=strategies.logits((strategies.MAX_BATCH, 2)),
       t=st.lists(st.integers(0, 1), min_size=strategies.MAX_BATCH,
                  max_size=strategies.MAX_BATCH),
       reduction=strategies.reductions())
def test_two_class_cross_entropy_is_bce_with_logits_of_the_difference(impl, dtype, x, t,
                                                                       reduction):
    """CE over logits (a, b) with target 1 is −log σ(b − a): BCE-with-logits on b − a (the
    logits on the 2⁻¹⁰ grid, so b − a is exact)."""
    require(impl, "cross_entropy", "binary_cross_entropy_with_logits")
    reduction = _provided_reduction(impl, reduction, "cross_entropy",
                                    "binary_cross_entropy_with_logits")
    case = _on_grid(Case("cross_entropy", (x, np.array(t)), {"reduction": reduction}, dtype))
    (xt, tt), kw = case.torch_args()
    ce = impl.cross_entropy(xt, tt, **kw)
    bce = impl.binary_cross_entropy_with_logits(xt[:, 1] - xt[:, 0], tt.to(xt.dtype), **kw)
    _agree(ce, bce, "2-class cross_entropy vs BCE-with-logits", dtype, _forward_scale(case))


# Where σ(x) is computed and rounded, log(1 − σ(x)) has condition number σ/(1 − σ) = eˣ: at
# |x| ≤ 4 that is ≤ 55 ulps of σ, below the table's 16 ulps of (scale + |ℓ|) with ℓ ≈ x there.
SIGMOID_RANGE = 4.0


@dtypes
@given(x=strategies.float_arrays((3, 4), -SIGMOID_RANGE, SIGMOID_RANGE),
       y=strategies.bce_targets((3, 4)), reduction=strategies.reductions())
def test_bce_with_logits_is_bce_of_sigmoid_away_from_saturation(impl, dtype, x, y, reduction):
    """Away from saturation (|x| ≤ SIGMOID_RANGE) the two agree at the dtype's bound."""
    require(impl, "binary_cross_entropy", "binary_cross_entropy_with_logits")
    reduction = _provided_reduction(impl, reduction, "binary_cross_entropy",
                                    "binary_cross_entropy_with_logits")
    case = Case("binary_cross_entropy_with_logits", (x, y), {"reduction": reduction}, dtype)
    (xt, yt), kw = case.torch_args()
    _agree(impl.binary_cross_entropy_with_logits(xt, yt, **kw),
           impl.binary_cross_entropy(torch.sigmoid(xt), yt, **kw),
           "BCE-with-logits vs BCE(sigmoid)", dtype, _forward_scale(case))


@dtypes
@given(data=st.data())
def test_cross_entropy_gradient_is_softmax_minus_one_hot(impl, dtype, data):
    """∂CE/∂x = softmax(x) − onehot(t), divided by the number of targets for ``mean``."""
    require(impl, "cross_entropy", "softmax")
    case = data.draw(strategies.nll_loss_cases(
        dtype, function="cross_entropy", ignored=False, weighted=False, smoothed=False,
        exclude=declared_out(impl, "cross_entropy", "softmax")), label="case")
    (x, t), kw = case.torch_args((True,))
    out = impl.cross_entropy(x, t, **kw)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    cd = class_dim(tuple(x.shape))
    expected = impl.softmax(x.detach(), cd) - _one_hot(t, x.shape[cd], cd, x.dtype)
    if kw["reduction"] == "mean":
        expected = expected / t.numel()
    _agree(grad, expected, "CE gradient vs softmax − one-hot", dtype,
           checks.gradient_scale("cross_entropy", checks.to_numpy(expected)), "gradient")


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
