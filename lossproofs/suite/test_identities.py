"""Identities the seed tutorial claims, and their relatives, checked on the implementation.

Each identity relates two computations by the implementation under test in float64 (both
sides go through the same target), so the tolerance is float64's: the claim is an identity of
the mathematics, and any gap beyond rounding is a result.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lossproofs import checks, strategies
from lossproofs.cases import Case
from lossproofs.strategies import class_dim
from lossproofs.suite._support import require
from lossproofs.targets import get_target

F64 = "float64"


def _agree(a, b, what, scale=1.0, kind="forward"):
    c = checks.compare(checks.to_numpy(a), checks.to_numpy(b), F64, kind, scale)
    assert c.ok, c.message(what, checks.to_numpy(a), checks.to_numpy(b))


def _leaf(case: Case):
    tensors, kwargs = case.torch_args((True,))
    return tensors, kwargs


def _value_and_grad(fn, x, g=None):
    out = fn(x)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out) if g is None else g)
    return out.detach(), grad


# -- CrossEntropyLoss == NLLLoss ∘ LogSoftmax ---------------------------------------------------
@given(case=strategies.nll_loss_cases(F64))
def test_cross_entropy_is_nll_of_log_softmax(impl, case):
    """The seed's claim, for every parameter of nll_loss: same value, same input gradient."""
    require(impl, "cross_entropy", "nll_loss", "log_softmax")
    (x, t), kw = _leaf(case)
    cd = class_dim(tuple(x.shape))
    fused = _value_and_grad(lambda z: impl.cross_entropy(z, t, **kw), x)
    composed = _value_and_grad(lambda z: impl.nll_loss(impl.log_softmax(z, cd), t, **kw), x)
    scale = checks.error_scale(case, checks.reference_forward(case))
    _agree(fused[0], composed[0], "cross_entropy vs nll_loss(log_softmax)", scale)
    _agree(fused[1], composed[1], "their input gradients", kind="gradient",
           scale=max(1.0, float(fused[1].abs().max()) if fused[1].numel() else 1.0))


@given(case=strategies.nll_loss_cases(F64).filter(lambda c: len(c.arrays[0].shape) >= 2))
def test_module_api_cross_entropy_is_nll_of_log_softmax(case):
    """Same identity through ``nn.CrossEntropyLoss`` and ``nn.NLLLoss()(nn.LogSoftmax(dim=1))``."""
    nn_target = get_target("nn")
    (x, t), kw = _leaf(case)
    fused = _value_and_grad(lambda z: nn_target.cross_entropy(z, t, **kw), x)
    composed = _value_and_grad(
        lambda z: nn_target.nll_loss(nn_target.log_softmax(z, 1), t, **kw), x)
    scale = checks.error_scale(case, checks.reference_forward(case))
    _agree(fused[0], composed[0], "CrossEntropyLoss vs NLLLoss(LogSoftmax)", scale)
    _agree(fused[1], composed[1], "their input gradients", kind="gradient",
           scale=max(1.0, float(fused[1].abs().max()) if fused[1].numel() else 1.0))


# -- softmax family -------------------------------------------------------------------------
@given(case=strategies.softmax_cases("softmax", F64), shift=st.floats(-50, 50))
def test_softmax_is_shift_invariant_and_normalised(impl, case, shift):
    require(impl, "softmax")
    (x,), kw = case.torch_args()
    p = impl.softmax(x, **kw)
    _agree(impl.softmax(x + shift, **kw), p, "softmax(x + c) vs softmax(x)")
    if x.dim() and x.numel():
        _agree(p.sum(kw["dim"]), torch.ones_like(p.sum(kw["dim"])), "softmax row sums")


@given(case=strategies.softmax_cases("log_softmax", F64))
def test_log_softmax_is_x_minus_logsumexp(impl, case):
    require(impl, "log_softmax", "logsumexp")
    (x,), kw = case.torch_args()
    dim = kw["dim"]
    lse = impl.logsumexp(x, dim, keepdim=True) if x.dim() else impl.logsumexp(x, dim)
    _agree(impl.log_softmax(x, dim), x - lse, "log_softmax vs x − logsumexp(x)",
           scale=max(1.0, float(x.abs().max()) if x.numel() else 1.0))


# -- probability targets ----------------------------------------------------------------------
def _one_hot(t: torch.Tensor, c: int, cd: int) -> torch.Tensor:
    return torch.movedim(torch.nn.functional.one_hot(t.long(), c).double(), -1, cd)


@given(case=strategies.nll_loss_cases(F64, function="cross_entropy", ignored=False,
                                      uint8=False))
def test_one_hot_probability_target_equals_index_target(impl, case):
    """Equal except for ``mean`` with weights, where torch divides by N·d (not Σ w[t]) for
    probability targets: documented behaviour, pytorch#61309; checked separately below."""
    require(impl, "cross_entropy")
    (x, t), kw = case.torch_args()
    c = x.shape[class_dim(tuple(x.shape))]
    onehot = _one_hot(t, c, class_dim(tuple(x.shape)))
    if kw.get("reduction") == "mean" and kw.get("weight") is not None:
        kw["reduction"] = "sum"
    scale = checks.error_scale(case, checks.reference_forward(case))
    _agree(impl.cross_entropy(x, onehot, **kw), impl.cross_entropy(x, t, **kw),
           "one-hot probability target vs index target", scale)


def test_weighted_mean_differs_between_index_and_one_hot_targets(impl):
    """pytorch#61309: with class weights, ``mean`` divides by Σ w[t_i] for index targets but by
    the number of samples for probability targets. The documented formulas are checked on a case
    where they give different answers, so the test fails if torch changes either one."""
    require(impl, "cross_entropy")
    x = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5]], dtype=torch.float64)
    t = torch.tensor([0, 2])
    w = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    lp = torch.log_softmax(x, 1)
    per_sample = -w[t] * lp[torch.arange(2), t]
    index_mean = impl.cross_entropy(x, t, weight=w)
    prob_mean = impl.cross_entropy(x, _one_hot(t, 3, 1), weight=w)
    _agree(index_mean, per_sample.sum() / w[t].sum(), "index-target weighted mean")
    _agree(prob_mean, per_sample.sum() / 2, "probability-target mean")
    assert not torch.isclose(index_mean, prob_mean)


@given(case=strategies.nll_loss_cases(F64, function="cross_entropy", ignored=False,
                                      uint8=False),
       eps=st.floats(0.0, 1.0))
def test_label_smoothing_is_cross_entropy_on_smoothed_targets(impl, case, eps):
    """``cross_entropy(x, t, label_smoothing=ε) == cross_entropy(x, (1−ε)·onehot(t) + ε/C)``
    for ``none`` and ``sum``, and for ``mean`` without weights (see pytorch#61309 above)."""
    require(impl, "cross_entropy")
    (x, t), kw = case.torch_args()
    kw["label_smoothing"] = eps
    if kw.get("reduction") == "mean" and kw.get("weight") is not None:
        kw["reduction"] = "sum"
    cd = class_dim(tuple(x.shape))
    c = x.shape[cd]
    smoothed = (1 - eps) * _one_hot(t, c, cd) + eps / c
    kw_prob = {**kw, "label_smoothing": 0.0}
    scale = max(1.0, checks.error_scale(case, checks.reference_forward(case)))
    _agree(impl.cross_entropy(x, t, **kw), impl.cross_entropy(x, smoothed, **kw_prob),
           "label smoothing vs smoothed probability targets", scale)


# -- binary forms --------------------------------------------------------------------------
@given(x=strategies.logits((strategies.MAX_BATCH, 2)),
       t=st.lists(st.integers(0, 1), min_size=strategies.MAX_BATCH,
                  max_size=strategies.MAX_BATCH),
       reduction=strategies.reductions())
def test_two_class_cross_entropy_is_bce_with_logits_of_the_difference(impl, x, t, reduction):
    """CE over logits (a, b) with target 1 is −log σ(b − a): BCE-with-logits on b − a."""
    require(impl, "cross_entropy", "binary_cross_entropy_with_logits")
    xt = torch.from_numpy(x)
    tt = torch.tensor(t)
    ce = impl.cross_entropy(xt, tt, reduction=reduction)
    bce = impl.binary_cross_entropy_with_logits(xt[:, 1] - xt[:, 0], tt.double(),
                                                reduction=reduction)
    _agree(ce, bce, "2-class cross_entropy vs BCE-with-logits", scale=float(2 * len(t) * 20))


@given(x=strategies.float_arrays((3, 4), -15.0, 15.0), y=strategies.bce_targets((3, 4)),
       reduction=strategies.reductions())
def test_bce_with_logits_is_bce_of_sigmoid_away_from_saturation(impl, x, y, reduction):
    """Where σ(x) is not rounded to 0 or 1 (|x| ≤ 15 in float64), the two agree.

    BCE(σ(x)) takes log(1 − σ(x)) of a rounded σ: its error is about ε·(1 + e^|x|) per element
    (the condition number of log(1 − s) at s = σ(x)), which is the scale used here.
    """
    require(impl, "binary_cross_entropy", "binary_cross_entropy_with_logits")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    condition = float(np.max(1 + np.exp(np.abs(x))))
    scale = condition * (x.size if reduction == "sum" else 1)
    _agree(impl.binary_cross_entropy_with_logits(xt, yt, reduction=reduction),
           impl.binary_cross_entropy(torch.sigmoid(xt), yt, reduction=reduction),
           "BCE-with-logits vs BCE(sigmoid)", scale=scale)


@given(case=strategies.nll_loss_cases(F64, function="cross_entropy", ignored=False,
                                      weighted=False, smoothed=False, allow_empty=False))
def test_cross_entropy_gradient_is_softmax_minus_one_hot(impl, case):
    """∂CE/∂x = softmax(x) − onehot(t), divided by the number of targets for ``mean``."""
    require(impl, "cross_entropy", "softmax")
    (x, t), kw = case.torch_args((True,))
    out = impl.cross_entropy(x, t, **kw)
    g = torch.ones_like(out)
    (grad,) = torch.autograd.grad(out, x, g)
    cd = class_dim(tuple(x.shape))
    expected = impl.softmax(x.detach(), cd) - _one_hot(t, x.shape[cd], cd)
    if kw["reduction"] == "mean":
        expected = expected / t.numel()
    _agree(grad, expected, "CE gradient vs softmax − one-hot", kind="gradient")


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
