"""``linear_cross_entropy``: torch's own paths and ``options`` (``F.linear_cross_entropy``,
torch ≥ 2.13, as the installed torch offers it: :func:`lossproofs.targets.linear.torch_offers`;
the target under test is ``test_linear_cross_entropy.py``'s).

For torch-family targets only (they are about torch's own paths and ``options``), over a
representative set of chunked configurations
(:func:`lossproofs.targets.linear.representative_configurations`: every ``acc_policy``, chunk
sizes 1 / a non-divisor of N / ≥ N, every ``chunking_method``, with and without a float32
accumulator): values and gradients per configuration and through ``nn``; the reference path
bitwise equal to the composition; invariance to ``batch_chunk_size`` and ``chunking_method``;
``nn`` module == functional; ``allow_retain_graph`` and its absence; no double backward, no
forward-mode AD and no ``torch.func.grad`` on the chunked path and all of them on the reference
path; the documented fallbacks warn and agree; the float16 trade-off of the accumulator; the
ledger's chunked divergences on the representative configuration (strict xfails, so CI pins
them whatever ``--target``); ULP bounds against the exact oracle per ``acc_policy``.

Shared pieces: :mod:`lossproofs.suite._linear`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from hypothesis import assume, event, given
from hypothesis import strategies as st

from lossproofs import checks, ledger, reference
from lossproofs.accuracy import linear as accuracy_linear
from lossproofs.cases import DTYPES, Case
from lossproofs.checks import compare, linear_error_scales
from lossproofs.families import TORCH_CHUNKED
from lossproofs.strategies.linear import (
    chunked_path_cases,
    fallback_cases,
    linear_cross_entropy_cases,
)
from lossproofs.suite import _linear as shared
from lossproofs.suite._linear import _one_thread, linear, torch_paths  # fixtures
from lossproofs.suite._support import require
from lossproofs.targets import get_target
from lossproofs.targets import linear as L
from lossproofs.tolerances import ULP_BOUNDS


# == torch's paths and options (torch-family targets) ==========================================
@pytest.mark.parametrize("dtype", DTYPES)
@shared._examples("per dtype")
@given(data=st.data())
def test_torch_paths_match_reference(torch_paths, dtype, data):
    """Each of torch's paths (the reference path, a chunked configuration, the nn module) on
    the cases the chunked path computes itself and on those it hands back."""
    name = data.draw(st.sampled_from(sorted(shared.PATHS)), label="path")
    case = data.draw(shared._cases(dtype), label="case")
    frozen = data.draw(st.sampled_from(list(shared.FROZEN)), label="frozen")
    event(name)
    shared.check_target(shared.PATHS[name], case, data.draw(st.integers(0, 2**16), label="seed"),
                 shared.FROZEN[frozen])


@shared._examples("identity")
@given(case=linear_cross_entropy_cases(), seed=st.integers(0, 2**16))
def test_reference_path_is_cross_entropy_of_linear_bitwise(torch_paths, case, seed):
    """options=None is documented as linear then cross_entropy: the same operations, so the
    value and every gradient are bitwise equal to the composition."""
    _, a = shared._values_and_grads(L.reference_path(), case, seed)
    _, b = shared._values_and_grads(shared._composed, case, seed)
    for name in a:
        assert torch.equal(a[name], b[name]) or (
            torch.isnan(a[name]).equal(torch.isnan(b[name]))
            and torch.equal(a[name].nan_to_num(), b[name].nan_to_num())), name


@shared._examples("identity")
@given(case=chunked_path_cases(), config=st.sampled_from(shared.CONFIGS),
       seed=st.integers(0, 2**16))
def test_chunked_path_is_cross_entropy_of_linear_within_rounding(torch_paths, case, config,
                                                                 seed):
    """Each configuration against torch's own composition: value and every gradient."""
    names = () if shared._set_aside_gradient(L.chunked_target(config), case) else shared.GRADS
    g, a = shared._values_and_grads(L.chunked(config), case, seed, names)
    _, b = shared._values_and_grads(shared._composed, case, seed, names)
    shared._within_rounding(a, b, case, g, f"{config.name} vs cross_entropy(linear(x))")


@shared._examples("identity")
@given(case=chunked_path_cases(), policy=st.sampled_from(L.ACC_POLICIES),
       seed=st.integers(0, 2**16))
def test_chunked_path_is_invariant_to_chunk_size_and_method(torch_paths, case, policy, seed):
    """Every chunk size (1, a non-divisor of N, ≥ N) and chunking method of one acc_policy
    gives the same value and gradients within rounding: chunking is a memory knob."""
    configs = [L.ChunkedConfig(policy, kind) for kind in L.CHUNK_SIZES] + [
        L.ChunkedConfig(policy, None, m) for m in L.CHUNKING_METHODS]
    names = () if shared._set_aside_gradient(L.chunked_target(configs[0]), case) else shared.GRADS
    runs = [shared._values_and_grads(L.chunked(c), case, seed, names) for c in configs]
    g, first = runs[0]
    for config, (_, other) in zip(configs[1:], runs[1:]):
        shared._within_rounding(other, first, case, g, f"{config.name} vs {configs[0].name}")


@shared._examples("identity")
@given(case=linear_cross_entropy_cases(), config=st.sampled_from([None, *shared.CONFIGS]),
       seed=st.integers(0, 2**16))
def test_nn_module_equals_functional(torch_paths, case, config, seed):
    """``nn.LinearCrossEntropyLoss`` (weight stored flat, reshaped in forward) == the
    functional with the same options: bitwise for a contiguous weight (the reshape is a
    view), within rounding otherwise."""
    names = () if config is not None and shared._set_aside_gradient(
        L.chunked_target(config), case) else shared.GRADS
    fn = L.reference_path() if config is None else L.chunked(config)
    g, a = shared._values_and_grads(L.nn_module(config), case, seed, names)
    _, b = shared._values_and_grads(fn, case, seed, names)
    for name in a:
        if case.layout == "contiguous":
            assert torch.equal(a[name].nan_to_num(), b[name].nan_to_num()), name
    shared._within_rounding(a, b, case, g, "nn vs functional")


# -- the autograd contract per path -----------------------------------------------------------
RETAIN_CONFIGS = [L.available(c) for c in (
    L.ChunkedConfig("accurate", "non-divisor", allow_retain_graph=True),
    L.ChunkedConfig("compact", "1", acc_dtype="float32", allow_retain_graph=True),
    L.ChunkedConfig("balanced", None, "aspect_ratio", allow_retain_graph=True))]


@shared._examples("contract")
@given(case=chunked_path_cases(), config=st.sampled_from(RETAIN_CONFIGS),
       seed=st.integers(0, 2**16))
def test_repeated_backward_with_allow_retain_graph(torch_paths, case, config, seed):
    assume(not shared._set_aside_gradient(L.chunked_target(config), case))
    shared.check_retain_graph(L.chunked(config), case, seed)


@shared._examples("contract")
@given(case=chunked_path_cases().filter(lambda c: c.params["reduction"] == "none"),
       seed=st.integers(0, 2**16))
def test_repeated_backward_of_reduction_none_needs_no_option(torch_paths, case, seed):
    """Documented: reduction='none' recomputes its gradients in backward, so retain_graph
    works without allow_retain_graph."""
    shared.check_retain_graph(L.chunked(L.ChunkedConfig("accurate", "non-divisor")), case, seed)


def _small(reduction="mean", dtype=torch.float64, bias=True, n=5):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 3, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 3, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=dtype, requires_grad=True) if bias else None
    t = torch.tensor([0, 3, -100, 1, 2][:n])
    return x, w, b, t, reduction


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_second_backward_without_allow_retain_graph_raises(torch_paths, reduction):
    x, w, b, t, _ = _small()
    out = L.chunked(L.ChunkedConfig("accurate", "non-divisor"))(
        x, w, t, linear_bias=b, reduction=reduction)
    torch.autograd.grad(out, (x, w, b), retain_graph=True)
    with pytest.raises(RuntimeError, match="backward called twice"):
        torch.autograd.grad(out, (x, w, b))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_double_backward_is_unsupported_on_the_chunked_path(torch_paths, reduction):
    """Documented "higher-order AD is unsupported": create_graph=True returns gradients that
    are not differentiable (no grad_fn), so a Hessian-vector product raises."""
    x, w, b, t, _ = _small()
    out = L.chunked(L.ChunkedConfig("accurate", "non-divisor"))(
        x, w, t, linear_bias=b, reduction=reduction)
    (gx,) = torch.autograd.grad(out.sum(), (x,), create_graph=True)
    assert not gx.requires_grad and gx.grad_fn is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        torch.autograd.grad(gx.sum(), (x,))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_double_backward_works_on_the_reference_path(torch_paths, reduction, smoothing):
    x, w, b, t, _ = _small()
    cw = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64)

    def fn(x, w, b):
        return F.linear_cross_entropy(x, w, t, linear_bias=b, weight=cw, reduction=reduction,
                                      label_smoothing=smoothing)

    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def _tangents(x, w, b):
    g = torch.Generator().manual_seed(11)
    return [torch.randn(v.shape, generator=g, dtype=v.dtype) for v in (x, w, b)]


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_forward_mode_ad_on_the_reference_path(torch_paths, reduction):
    """jvp = ⟨∇x, v_x⟩ + ⟨∇W, v_W⟩ + ⟨∇b, v_b⟩ with the reference's closed-form gradients."""
    x, w, b, t, _ = _small()
    vx, vw, vb = _tangents(x, w, b)
    with fwAD.dual_level():
        out = F.linear_cross_entropy(fwAD.make_dual(x.detach(), vx),
                                     fwAD.make_dual(w.detach(), vw), t,
                                     linear_bias=fwAD.make_dual(b.detach(), vb),
                                     reduction=reduction)
        tangent = fwAD.unpack_dual(out).tangent
    grads = reference.linear_cross_entropy_backward(
        np.array(1.0), x.detach().numpy(), w.detach().numpy(), t.numpy(),
        linear_bias=b.detach().numpy(), reduction=reduction)
    expected = sum(float(np.sum(gr * v.numpy())) for gr, v in zip(grads, (vx, vw, vb)))
    c = compare(tangent.numpy(), np.array(expected), "float64", "gradient",
                max(1.0, sum(float(np.sum(np.abs(gr * v.numpy())))
                             for gr, v in zip(grads, (vx, vw, vb)))))
    assert c.ok, c.bound


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_mode_ad_is_unsupported_on_the_chunked_path(torch_paths, reduction):
    """Documented "forward-mode AD (jvp, jacfwd) is unsupported": the output carries no
    tangent at all (silently: no error, no wrong number)."""
    x, w, b, t, _ = _small()
    vx, vw, vb = _tangents(x, w, b)
    fn = L.chunked(L.ChunkedConfig("accurate", "non-divisor"))
    with fwAD.dual_level():
        out = fn(fwAD.make_dual(x.detach(), vx), fwAD.make_dual(w.detach(), vw), t,
                 linear_bias=fwAD.make_dual(b.detach(), vb), reduction=reduction)
        assert fwAD.unpack_dual(out).tangent is None


def test_func_grad_raises_on_the_chunked_path_and_works_on_the_reference_path(torch_paths):
    x, w, b, t, _ = _small()
    xd, wd, bd = x.detach(), w.detach(), b.detach()
    chunked = L.chunked(L.ChunkedConfig("accurate", "non-divisor"))
    with pytest.raises(RuntimeError, match="functorch transforms"):
        torch.func.grad(lambda q: chunked(q, wd, t, linear_bias=bd))(xd)
    got = torch.func.grad(lambda q: F.linear_cross_entropy(q, wd, t, linear_bias=bd))(xd)
    expected = reference.linear_cross_entropy_backward(
        np.array(1.0), xd.numpy(), wd.numpy(), t.numpy(), linear_bias=bd.numpy())[0]
    assert compare(got.numpy(), expected, "float64", "gradient").ok


# -- fallbacks --------------------------------------------------------------------------------
@shared._examples("identity")
@given(case=fallback_cases(), config=st.sampled_from(shared.CONFIGS),
       target_grad=st.booleans())
def test_documented_fallback_warns_and_equals_the_reference_path(torch_paths, case, config,
                                                                 target_grad):
    """Label smoothing, probability or uint8 targets and K-dim weights, under the installed
    torch's rule (:data:`lossproofs.targets.linear.FALLBACK_RULE`): a call the rule hands back
    warns and runs the reference path, so the value is bitwise the reference path's; a call it
    keeps (from torch 2.14, a probability target with reduction mean or sum that does not
    require grad) does not warn (its values are test_torch_paths_match_reference's)."""
    fallback = L.documented_fallback(case, target_requires_grad=target_grad)
    args, kwargs, _ = L.tensors(case, frozenset({"target"} if target_grad else ()))
    out, warned = L.call_recording_warnings(L.chunked(config), *args, **kwargs)
    if not fallback:
        event("chunked by this torch (not a fallback)")
        assert not warned, (f"torch {torch.__version__} warned on a call its rule runs on the "
                            f"chunked path ({L.FALLBACK_RULE.source}): {warned}")
        return
    assert warned, f"no fallback warning for {case!r} (target requires grad: {target_grad})"
    expected = L.reference_path()(*args, **kwargs)
    assert torch.equal(out.detach().nan_to_num(), expected.detach().nan_to_num())


@shared._examples("identity")
@given(case=chunked_path_cases(), config=st.sampled_from(shared.CONFIGS))
def test_supported_configurations_do_not_warn(torch_paths, case, config):
    assert not L.documented_fallback(case)
    args, kwargs, _ = L.tensors(case)
    _, warned = L.call_recording_warnings(L.chunked(config), *args, **kwargs)
    assert not warned, warned


def test_fallback_probe_matches_the_rule(torch_paths):
    """One small call per argument family and configuration warns exactly where the installed
    torch's rule (:data:`lossproofs.targets.linear.FALLBACK_RULE`, cited from its source) says
    it falls back: a torch newer than the table whose rule changed fails here."""
    expected_fallback = L.expected_fallbacks()
    for record in L.probe_fallbacks():
        assert record["warned"] == (record["family"] in expected_fallback), (
            record, L.FALLBACK_RULE.source)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_probability_targets_on_the_chunked_path_follow_the_rule(torch_paths, reduction):
    """torch 2.13 falls back on every probability target; torch 2.14 runs a probability target
    of the input's dtype with reduction mean or sum on the chunked path when it does not
    require grad (:data:`lossproofs.targets.linear.PROBABILITY_TARGETS_CHUNK`). Either way the
    value and the gradients of input, weight and bias are the reference path's."""
    x, w, b, _, _ = _small()
    p = torch.softmax(torch.randn(5, 4, generator=torch.Generator().manual_seed(3),
                                  dtype=torch.float64), 1)
    fn = L.chunked(L.ChunkedConfig("accurate", "non-divisor"))
    out, warned = L.call_recording_warnings(fn, x, w, p, linear_bias=b, reduction=reduction)
    assert bool(warned) == (not L.PROBABILITY_TARGETS_CHUNK), (warned, L.FALLBACK_RULE.source)
    expected = F.linear_cross_entropy(x, w, p, linear_bias=b, reduction=reduction)
    gx, gw, gb = torch.autograd.grad(out, (x, w, b))
    ex, ew, eb = torch.autograd.grad(expected, (x, w, b))
    for got, want in ((out, expected), (gx, ex), (gw, ew), (gb, eb)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@shared._examples("identity")
@given(data=st.data())
def test_chunked_probability_targets_match_reference(torch_paths, dtype, data):
    """From torch 2.14 the chunked path computes probability targets itself (reduction mean or
    sum, a target of the input's dtype that does not require grad): each representative
    configuration's value and input, linear_weight and linear_bias gradients against the
    reference, the target frozen (the chunked op has no gradient for it). Skipped where the
    installed torch hands every probability target back (torch 2.13: the fallback tests)."""
    if not L.PROBABILITY_TARGETS_CHUNK:
        pytest.skip(f"torch {torch.__version__} runs probability targets on the reference path "
                    f"({L.FALLBACK_RULE.source})")
    case = data.draw(linear_cross_entropy_cases(dtype, probabilities=True, smoothed=False,
                                                allow_kdim=False).filter(
        lambda c: c.params["reduction"] in ("mean", "sum")), label="case")
    assert not L.documented_fallback(case)
    config = data.draw(st.sampled_from(shared.CONFIGS), label="config")
    target = L.chunked_target(config)
    event(config.name)
    seed = data.draw(st.integers(0, 2**16), label="seed")
    args, kwargs, _ = L.tensors(case, frozenset(shared.GRADS))
    _, warned = L.call_recording_warnings(L.chunked(config), *args, **kwargs)
    assert not warned, warned  # the chunked path itself, not the fallback
    shared._settle(checks.check_linear_forward(target, case))
    shared._settle(checks.check_linear_gradients(target, case, seed, frozen_target=True))


# -- special values per path ------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", [shared.CONFIGS[0].name, shared.CONFIGS[4].name])
def test_empty_batch_on_the_chunked_path(torch_paths, name, reduction):
    """N = 0: mean NaN, sum 0, none empty, and zero gradients — as the reference."""
    x = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    w = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(0, dtype=torch.int64)
    out = shared.CHUNKED[name](x, w, t, reduction=reduction)
    expected = reference.linear_cross_entropy(x.detach().numpy(), w.detach().numpy(), t.numpy(),
                                              reduction=reduction)
    assert compare(out.detach().numpy(), expected, "float64", "forward").ok
    gx, gw = torch.autograd.grad(out.sum(), (x, w), allow_unused=True)
    expected_grads = reference.linear_cross_entropy_backward(
        np.ones(expected.shape), x.detach().numpy(), w.detach().numpy(), t.numpy(),
        reduction=reduction)
    for got, e in zip((gx, gw), expected_grads):
        a = np.zeros_like(e) if got is None else got.numpy()
        assert compare(a, e, "float64", "gradient").ok


def test_all_ignored_mean_is_nan_on_the_chunked_path(torch_paths):
    x, w, b, _, _ = _small()
    t = torch.full((5,), -100)
    assert torch.isnan(shared.CHUNKED[shared.CONFIGS[0].name](x, w, t, linear_bias=b))


def test_float16_per_row_losses_beyond_the_range_with_a_float32_accumulator(torch_paths):
    """Each row's loss exceeds 65504 but their mean does not: the accurate policy with a
    float32 accumulator returns the mean within the float16 bound (the reference path and the
    memory-saving policies, which hold the shifted logits or the sum in float16, overflow to
    inf there — a precision trade-off their documentation states)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 3, generator=g, dtype=torch.float64) * 150).half()
    w = (torch.randn(4, 3, generator=g, dtype=torch.float64) * 150).half()
    t = torch.tensor([0, 1, 2, 3, 0])
    expected = reference.linear_cross_entropy(x.double().numpy(), w.double().numpy(), t.numpy())
    assert 1000 < expected < 65504
    out = L.chunked(L.ChunkedConfig("accurate", "non-divisor", acc_dtype="float32"))(x, w, t)
    case = Case(shared.FUNCTION, (x.double().numpy(), w.double().numpy(), t.numpy()),
                {"reduction": "mean"}, "float16")
    shared._check(out.double().numpy(), expected, case, "forward", "float16 mean of huge losses",
           linear_error_scales(case)["forward"])


# -- the ledger's chunked divergences, on the representative configuration --------------------
CHUNKED_ENTRIES = [e for e in ledger.LEDGER if e.function == shared.FUNCTION
                   and TORCH_CHUNKED in e.families]


@pytest.mark.parametrize("entry", [
    pytest.param(e, id=e.name, marks=pytest.mark.xfail(strict=True, raises=e.raises,
                                                       reason=e.xfail_reason))
    for e in CHUNKED_ENTRIES])
def test_chunked_path_divergence(torch_paths, entry):
    """Each chunked-path entry of the ledger (lossproofs/ledger/linear.py) on the ``chunked``
    target's configuration, whatever ``--target`` (test_divergences.py runs them for the
    target under test): a strict xfail expecting the entry's exception, so a fixed torch
    XPASSes here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=L.FALLBACK_WARNING)
        checks.run_check(L.chunked_target(L.ChunkedConfig()), entry).raise_for_failure()


def test_reference_path_has_none_of_the_chunked_divergences(torch_paths):
    """The same entries pass on the reference path (``options=None``)."""
    for entry in CHUNKED_ENTRIES:
        checks.run_check(shared.PATHS["reference path"], entry).raise_for_failure()


# -- the built-in target "chunked" -------------------------------------------------------------
def _unless_offered(config: L.ChunkedConfig):
    """An xfail mark (strict, the target's ValueError) naming why, when the installed torch
    does not have ``config``'s acc_policy (``balanced``: removed in torch 2.14)."""
    why = L.UNAVAILABLE_ACC_POLICIES.get(config.acc_policy)
    return [] if why is None else [pytest.mark.xfail(
        strict=True, raises=ValueError, reason=f"acc_policy {config.acc_policy!r}: {why}")]


@pytest.mark.parametrize("spec,config", [
    pytest.param(spec, config, marks=_unless_offered(config)) for spec, config in (
        (None, L.ChunkedConfig()),
        ("compact,none,1", L.ChunkedConfig("compact", "1")),
        ("balanced,none,at-least-N", L.ChunkedConfig("balanced", "at least N")),
        ("auto,aspect_ratio:2,none,float32", L.ChunkedConfig("auto", None, "aspect_ratio:2",
                                                             "float32")))])
def test_chunked_target_runs_the_configuration_it_names(torch_paths, spec, config):
    """``--target chunked[:<acc_policy>,<chunking_method>,<batch_chunk_size>[,<acc_dtype>]]``
    is that configuration: its value is bitwise the functional's with the same options. A
    policy the installed torch does not have is rejected by name (strict xfail, with why)."""
    target = get_target("chunked" if spec is None else f"chunked:{spec}")
    assert target.get("cross_entropy") is None and TORCH_CHUNKED in target.families
    x, w, b, t, _ = _small()
    got = target.linear_cross_entropy(x, w, t, linear_bias=b)
    assert torch.equal(got, L.chunked(config)(x, w, t, linear_bias=b))


@pytest.mark.parametrize("spec", ["fast,none,1", "accurate,auto,2", "accurate,none,none",
                                  "accurate,none,0", "accurate,none,1,float16", "accurate"])
def test_chunked_target_rejects_a_configuration_torch_does_not_have(torch_paths, spec):
    with pytest.raises(ValueError, match=f"chunked:{spec}"):
        get_target(f"chunked:{spec}")


# -- accuracy against the exact oracle --------------------------------------------------------
def ulp_key(policy: str, dtype: str) -> str:
    """The ULP_BOUNDS function key of an ulp_study policy name in ``dtype`` (acc_policy auto on
    CPU picks a float32 accumulator for float16/bfloat16 input, the input's dtype otherwise)."""
    if policy == "reference path":
        return shared.FUNCTION
    half = dtype in ("float16", "bfloat16")
    if "acc_dtype=float32" in policy or (policy == "auto" and half):
        return f"{shared.FUNCTION}[chunked, float32 accumulator]"
    return f"{shared.FUNCTION}[chunked]"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_within_the_ulp_bounds_on_extreme_logits(torch_paths, dtype):
    """Each path and acc_policy against the exact oracle (lossproofs.oracle.linear) on logits of
    hundreds (‖x‖·‖W‖ ≈ 10³), in floored ulps; the bounds are ULP_BOUNDS rows
    ``(ulp_key(policy, dtype), dtype, "forward" | "gradient")``."""
    records = accuracy_linear.ulp_study(dtypes=(dtype,), strata_names=["extreme logits"])
    checked = 0
    for r in records:
        direction = "forward" if r["quantity"] == "forward" else "gradient"
        bound = ULP_BOUNDS[(ulp_key(r["policy"], dtype), dtype, direction)]
        checked += 1
        assert r["floored"] <= bound, r
    assert checked, "the ULP study returned no records"


