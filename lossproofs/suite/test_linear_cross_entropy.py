"""``linear_cross_entropy`` (torch 2.13's ``F.linear_cross_entropy``): the implementation under
test against the reference, and torch's chunked path under each of its options.

For the target under test (``impl``: torch's reference path for ``--target torch``, the
``nn.LinearCrossEntropyLoss`` module for ``nn``, a chunked configuration for ``chunked``, a
kernel author's fused linear cross-entropy for ``module:...``):

- **Values and gradients**: forward and the three gradients (input, linear_weight, linear_bias;
  and the target for probability targets) with a random ``grad_output``, against
  :func:`lossproofs.reference.linear_cross_entropy` and its closed-form backward, in every dtype,
  with the input or the weight frozen in turn; half the draws are the cases torch's chunked path
  computes itself (int64 class indices, no smoothing, a 2-D weight).
- **Identity**: ``linear_cross_entropy == cross_entropy(linear(x))`` (torch's composition),
  value and every gradient, within rounding.
- **Autograd contract**: two backward passes through one graph with different ``grad_output``s
  each give their own gradients and leave the first pass's results untouched (a target that
  cannot may declare ``UNSUPPORTED_CHECKS = {"retain_graph": "why"}``).
- **Empty batches**: zero gradients (the values are ``lossproofs.special_cases``').

Bad input is ``lossproofs.error_cases`` (test_errors.py) and special values
``lossproofs.special_cases`` (test_special_values.py); the chunked path's divergences are the
ledger's (``lossproofs/ledger/linear.py``, test_divergences.py).

For torch-family targets only (they are about torch's own paths and ``options``), over a
representative set of chunked configurations
(:func:`lossproofs.linear_targets.representative_configurations`: every ``acc_policy``, chunk
sizes 1 / a non-divisor of N / ≥ N, every ``chunking_method``, with and without a float32
accumulator): values and gradients per configuration and through ``nn``; the reference path
bitwise equal to the composition; invariance to ``batch_chunk_size`` and ``chunking_method``;
``nn`` module == functional; ``allow_retain_graph`` and its absence; no double backward, no
forward-mode AD and no ``torch.func.grad`` on the chunked path and all of them on the reference
path; the documented fallbacks warn and agree; the float16 trade-off of the accumulator; the
ledger's chunked divergences on the representative configuration (strict xfails, so CI pins
them whatever ``--target``); ULP bounds against the exact oracle per ``acc_policy``.

**Teeth**: the broken chunked implementations ``lossproofs/broken/linear_*.py`` are each caught
by the check that should catch them (and the correct chunked implementation is not).

Tolerances come from :func:`lossproofs.tolerances.tolerance` through
:func:`lossproofs.checks.compare`, at :func:`lossproofs.checks.linear_error_scales`
(first-order error propagation through the matmul: ``|x|·|W|`` terms). Example counts: the
properties set ``max_examples`` below the profile's (see :data:`EXAMPLES`) so that the file
stays within about 20 s at ``CI=true``; each example runs a whole forward and backward plus the
reference's, and the per-dtype properties multiply by four.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st

from lossproofs import ledger, reference
from lossproofs import linear_targets as L
from lossproofs.broken import (
    linear_chunk_tail_dropped,
    linear_grad_output_first_element,
    linear_grad_output_twice,
    linear_retain_mutates_saved,
    linear_sum_of_chunk_means,
)
from lossproofs.broken._common import control
from lossproofs.broken._linear_chunked import chunked_linear_cross_entropy
from lossproofs.cases import DTYPES, Case
from lossproofs.checks import compare, linear_error_scales
from lossproofs.families import TORCH, TORCH_CHUNKED
from lossproofs.strategies.linear import (
    chunked_path_cases,
    fallback_cases,
    linear_cross_entropy_cases,
)
from lossproofs.suite._support import draw_case, require

FUNCTION = L.FUNCTION
# Examples per property (the profile's count caps these: dev 25, ci 100).
EXAMPLES = {"per dtype": 30, "identity": 25, "contract": 20, "teeth": 60}
GRADS = L.GRADIENTS
FROZEN = {"nothing frozen": GRADS, "input frozen": ("linear_weight", "linear_bias"),
          "weight frozen": ("input", "linear_bias")}
CONFIGS = L.representative_configurations()
CHUNKED = {c.name: L.chunked(c) for c in CONFIGS}
# torch's paths as Targets (the chunked ones of the torch-chunked family: the ledger's chunked
# divergences are set aside for them as for --target chunked)
PATHS = {"reference path": L.target(L.reference_path(), "reference path"),
         **{c.name: L.chunked_target(c) for c in CONFIGS},
         "nn": L.target(L.nn_module(), "nn"),
         "nn " + CONFIGS[1].name: L.chunked_target(CONFIGS[1], module=True)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are tiny: with intra-op threads on a loaded machine each kernel waits
    milliseconds for the thread pool (measured 2.9 ms against 2 µs per cross_entropy call with
    2 threads on 2 busy cores), which would dominate the file's time. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def linear(impl):
    """The target's linear_cross_entropy (skips with its reason when it has none)."""
    require(impl, FUNCTION)
    return impl.get(FUNCTION)


@pytest.fixture(scope="module")
def torch_paths(impl):
    """For tests about torch's own paths and options: torch-family targets only."""
    if TORCH not in impl.families:
        pytest.skip(f"{impl.name}: about torch's linear_cross_entropy paths and options "
                    "(torch-family targets only)")


def _examples(kind: str):
    return settings(max_examples=min(EXAMPLES[kind], settings().max_examples))


# -- checks (plain functions: the properties and the teeth run them) -----------------------------
def _check(actual, expected, case: Case, kind: str, what: str, scale: float) -> None:
    c = compare(actual, expected, case.dtype, kind, scale)
    if not c.ok:
        raise AssertionError(c.message(what, np.asarray(actual), np.asarray(expected)))


_quiet = L._quiet


def _settle(outcome) -> None:
    """As the generic properties: record and set aside what a known divergence covers as a
    whole, fail with the check's message."""
    if outcome.divergences:
        event(f"set aside: {outcome.divergences}")
    assume(outcome.status != "set aside")
    outcome.raise_for_failure()


def check_target(target, case: Case, seed: int, wrt: tuple[str, ...] = GRADS) -> None:
    """Forward and the gradients in ``wrt`` (plus the target's for probability targets) of a
    Target against the reference, the target's known divergences set aside."""
    _settle(L.check_forward(target, case))
    _settle(L.check_gradients(target, case, seed, names=wrt))


def check_values_and_gradients(fn, case: Case, seed: int, wrt: tuple[str, ...] = GRADS) -> None:
    """The same for a bare callable, nothing set aside (the teeth's check)."""
    target = L.target(fn)
    L.check_forward(target, case, known=False).raise_for_failure()
    L.check_gradients(target, case, seed, known=False, names=wrt).raise_for_failure()


def _expected_gradients(case: Case, g: np.ndarray) -> dict[str, np.ndarray]:
    arrays, params = case.reference_args()
    gi, gw, gb = reference.linear_cross_entropy_backward(g, *arrays, **params)
    return {"input": gi, "linear_weight": gw, "linear_bias": gb}


def check_retain_graph(fn, case: Case, seed: int) -> None:
    """Two backward passes through one graph with different ``grad_output``s: each gives the
    gradients of its own ``grad_output``, and the first pass's results are left untouched."""
    args, kwargs, leaves = L.tensors(case, frozenset(GRADS))
    out = _quiet(fn, *args, **kwargs)
    names = [n for n in GRADS if n in leaves]
    rng = np.random.default_rng(seed)
    gs = [case.rounded(rng.uniform(-2.0, 2.0, size=tuple(out.shape))) for _ in range(2)]
    results, snapshots = [], []
    for g in gs:
        got = torch.autograd.grad(out, [leaves[n] for n in names],
                                  torch.from_numpy(g).to(out.dtype), retain_graph=True)
        results.append(got)
        snapshots.append([t.clone() for t in got])
    for got, snap in zip(results[:1], snapshots[:1]):
        for name, t, s in zip(names, got, snap):
            if not (torch.equal(t.isnan(), s.isnan()) and torch.equal(t.nan_to_num(),
                                                                     s.nan_to_num())):
                raise AssertionError(f"the first backward's {name} gradient changed when the "
                                     "graph was differentiated again")
    for g, got in zip(gs, results):
        expected = _expected_gradients(case, g)
        scales = linear_error_scales(case, g)
        for name, t in zip(names, got):
            _check(t.detach().double().numpy(), expected[name], case, "gradient",
                   f"{name} gradient of a repeated backward", scales[name])


def _set_aside_gradient(target, case: Case) -> bool:
    found = ledger.set_aside(target, case, "gradient", ())
    if found:
        event(f"set aside: {found.names}")
    return bool(found)


def _cases(dtype: str | None = None):
    """Every parameter family, and as often the cases the chunked path runs itself."""
    return st.one_of(linear_cross_entropy_cases(dtype), chunked_path_cases(dtype))


# == the target under test ======================================================================
@pytest.mark.parametrize("dtype", DTYPES)
@_examples("per dtype")
@given(data=st.data())
def test_values_and_gradients_match_reference(impl, linear, dtype, data):
    """Any case (both target kinds, every parameter), with the input or the weight frozen."""
    case = draw_case(data, impl, FUNCTION, dtype, _cases(dtype))
    frozen = data.draw(st.sampled_from(list(FROZEN)), label="frozen")
    event(frozen)
    check_target(impl, case, data.draw(st.integers(0, 2**16), label="seed"), FROZEN[frozen])


def _composed(input, linear_weight, target, linear_bias=None, weight=None, reduction="mean",
              ignore_index=None, label_smoothing=0.0):
    """``cross_entropy(linear(x))`` with the K-dim weight as a ``(C·P, in)`` matrix."""
    c, *out, d = linear_weight.shape
    z = F.linear(input, linear_weight.reshape(-1, d),
                 None if linear_bias is None else linear_bias.reshape(-1))
    z = z.reshape(*input.shape[:-1], c, *out)
    return F.cross_entropy(z, target, weight=weight, reduction=reduction,
                           ignore_index=-100 if ignore_index is None else ignore_index,
                           label_smoothing=label_smoothing)


def _values_and_grads(fn, case: Case, g_seed: int, names=GRADS):
    args, kwargs, leaves = L.tensors(case, frozenset(names))
    out = _quiet(fn, *args, **kwargs)
    g = case.rounded(np.random.default_rng(g_seed).uniform(-2, 2, size=tuple(out.shape)))
    names = [n for n in names if n in leaves]
    grads = torch.autograd.grad(out, [leaves[n] for n in names],
                                torch.from_numpy(g).to(out.dtype)) if names else ()
    return g, {"forward": out.detach(), **dict(zip(names, grads))}


def _within_rounding(a: dict, b: dict, case: Case, g: np.ndarray, what: str) -> None:
    scales = linear_error_scales(case, g)
    for name in a:
        kind = "forward" if name == "forward" else "gradient"
        _check(a[name].double().numpy(), b[name].double().numpy(), case, kind,
               f"{what}: {name}", scales[name])


@_examples("identity")
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_is_cross_entropy_of_linear(impl, linear, data, seed):
    """Value and every gradient within rounding of torch's ``cross_entropy(linear(x))`` (the
    gradients are compared unless a known divergence of the target covers them)."""
    case = draw_case(data, impl, FUNCTION, None, _cases())
    names = () if _set_aside_gradient(impl, case) else GRADS
    g, a = _values_and_grads(linear, case, seed, names)
    _, b = _values_and_grads(_composed, case, seed, names)
    _within_rounding(a, b, case, g, f"{impl.name} vs cross_entropy(linear(x))")


@_examples("contract")
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_repeated_backward_leaves_earlier_gradients_right(impl, linear, data, seed):
    """``retain_graph=True`` and a second ``grad_output``: the autograd contract."""
    reason = impl.unsupported("retain_graph")
    if reason:
        pytest.skip(f"{impl.name}: {reason}")
    case = draw_case(data, impl, FUNCTION, None, _cases())
    assume(not _set_aside_gradient(impl, case))
    check_retain_graph(linear, case, seed)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_empty_batch_gradients_are_zero(impl, linear, reduction):
    """N = 0 (values: lossproofs.special_cases): every gradient exactly 0, as the reference.
    Skipped where the target declares an empty batch, a bias or the reduction not provided."""
    declared = {**impl.not_provided.get(FUNCTION, {}), **impl.conventions.get(FUNCTION, {})}
    why = ([f"empty ({declared['empty']})"] if "empty" in declared else []) + [
        impl.excluded_arguments(FUNCTION, {"linear_bias": True, "reduction": reduction})]
    if any(why):
        pytest.skip(f"{impl.name}: " + "; ".join(w for w in why if w))
    x = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    w = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(0, dtype=torch.int64)
    out = _quiet(linear, x, w, t, linear_bias=b, reduction=reduction)
    grads = torch.autograd.grad(out.sum(), (x, w, b), allow_unused=True)
    expected = reference.linear_cross_entropy_backward(
        np.ones(tuple(out.shape)), x.detach().numpy(), w.detach().numpy(), t.numpy(),
        linear_bias=b.detach().numpy(), reduction=reduction)
    for name, got, e in zip(GRADS, grads, expected):
        a = np.zeros_like(e) if got is None else got.numpy()
        c = compare(a, e, "float64", "gradient")
        assert c.ok, c.message(f"empty batch {name} gradient", a, e)


# == torch's paths and options (torch-family targets) ==========================================
@pytest.mark.parametrize("dtype", DTYPES)
@_examples("per dtype")
@given(data=st.data())
def test_torch_paths_match_reference(torch_paths, dtype, data):
    """Each of torch's paths (the reference path, a chunked configuration, the nn module) on
    the cases the chunked path computes itself and on those it hands back."""
    name = data.draw(st.sampled_from(sorted(PATHS)), label="path")
    case = data.draw(_cases(dtype), label="case")
    frozen = data.draw(st.sampled_from(list(FROZEN)), label="frozen")
    event(name)
    check_target(PATHS[name], case, data.draw(st.integers(0, 2**16), label="seed"),
                 FROZEN[frozen])


@_examples("identity")
@given(case=linear_cross_entropy_cases(), seed=st.integers(0, 2**16))
def test_reference_path_is_cross_entropy_of_linear_bitwise(torch_paths, case, seed):
    """options=None is documented as linear then cross_entropy: the same operations, so the
    value and every gradient are bitwise equal to the composition."""
    _, a = _values_and_grads(L.reference_path(), case, seed)
    _, b = _values_and_grads(_composed, case, seed)
    for name in a:
        assert torch.equal(a[name], b[name]) or (
            torch.isnan(a[name]).equal(torch.isnan(b[name]))
            and torch.equal(a[name].nan_to_num(), b[name].nan_to_num())), name


@_examples("identity")
@given(case=chunked_path_cases(), config=st.sampled_from(CONFIGS), seed=st.integers(0, 2**16))
def test_chunked_path_is_cross_entropy_of_linear_within_rounding(torch_paths, case, config,
                                                                 seed):
    """Each configuration against torch's own composition: value and every gradient."""
    names = () if _set_aside_gradient(L.chunked_target(config), case) else GRADS
    g, a = _values_and_grads(L.chunked(config), case, seed, names)
    _, b = _values_and_grads(_composed, case, seed, names)
    _within_rounding(a, b, case, g, f"{config.name} vs cross_entropy(linear(x))")


@_examples("identity")
@given(case=chunked_path_cases(), policy=st.sampled_from(L.ACC_POLICIES),
       seed=st.integers(0, 2**16))
def test_chunked_path_is_invariant_to_chunk_size_and_method(torch_paths, case, policy, seed):
    """Every chunk size (1, a non-divisor of N, ≥ N) and chunking method of one acc_policy
    gives the same value and gradients within rounding: chunking is a memory knob."""
    configs = [L.ChunkedConfig(policy, kind) for kind in L.CHUNK_SIZES] + [
        L.ChunkedConfig(policy, None, m) for m in L.CHUNKING_METHODS]
    names = () if _set_aside_gradient(L.chunked_target(configs[0]), case) else GRADS
    runs = [_values_and_grads(L.chunked(c), case, seed, names) for c in configs]
    g, first = runs[0]
    for config, (_, other) in zip(configs[1:], runs[1:]):
        _within_rounding(other, first, case, g, f"{config.name} vs {configs[0].name}")


@_examples("identity")
@given(case=linear_cross_entropy_cases(), config=st.sampled_from([None, *CONFIGS]),
       seed=st.integers(0, 2**16))
def test_nn_module_equals_functional(torch_paths, case, config, seed):
    """``nn.LinearCrossEntropyLoss`` (weight stored flat, reshaped in forward) == the
    functional with the same options: bitwise for a contiguous weight (the reshape is a
    view), within rounding otherwise."""
    names = () if config is not None and _set_aside_gradient(
        L.chunked_target(config), case) else GRADS
    fn = L.reference_path() if config is None else L.chunked(config)
    g, a = _values_and_grads(L.nn_module(config), case, seed, names)
    _, b = _values_and_grads(fn, case, seed, names)
    for name in a:
        if case.layout == "contiguous":
            assert torch.equal(a[name].nan_to_num(), b[name].nan_to_num()), name
    _within_rounding(a, b, case, g, "nn vs functional")


# -- the autograd contract per path -----------------------------------------------------------
RETAIN_CONFIGS = [L.ChunkedConfig("accurate", "non-divisor", allow_retain_graph=True),
                  L.ChunkedConfig("compact", "1", acc_dtype="float32", allow_retain_graph=True),
                  L.ChunkedConfig("balanced", None, "aspect_ratio", allow_retain_graph=True)]


@_examples("contract")
@given(case=chunked_path_cases(), config=st.sampled_from(RETAIN_CONFIGS),
       seed=st.integers(0, 2**16))
def test_repeated_backward_with_allow_retain_graph(torch_paths, case, config, seed):
    assume(not _set_aside_gradient(L.chunked_target(config), case))
    check_retain_graph(L.chunked(config), case, seed)


@_examples("contract")
@given(case=chunked_path_cases().filter(lambda c: c.params["reduction"] == "none"),
       seed=st.integers(0, 2**16))
def test_repeated_backward_of_reduction_none_needs_no_option(torch_paths, case, seed):
    """Documented: reduction='none' recomputes its gradients in backward, so retain_graph
    works without allow_retain_graph."""
    check_retain_graph(L.chunked(L.ChunkedConfig("accurate", "non-divisor")), case, seed)


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
@_examples("identity")
@given(case=fallback_cases(), config=st.sampled_from(CONFIGS))
def test_documented_fallback_warns_and_equals_the_reference_path(torch_paths, case, config):
    """Label smoothing, probability or uint8 targets and K-dim weights: the chunked path warns
    and runs the reference path, so the value is bitwise the reference path's."""
    assert L.documented_fallback(case)
    args, kwargs, _ = L.tensors(case)
    out, warned = L.call_recording_warnings(L.chunked(config), *args, **kwargs)
    assert warned, f"no fallback warning for {case!r}"
    expected = L.reference_path()(*args, **kwargs)
    assert torch.equal(out.nan_to_num(), expected.nan_to_num())


@_examples("identity")
@given(case=chunked_path_cases(), config=st.sampled_from(CONFIGS))
def test_supported_configurations_do_not_warn(torch_paths, case, config):
    assert not L.documented_fallback(case)
    args, kwargs, _ = L.tensors(case)
    _, warned = L.call_recording_warnings(L.chunked(config), *args, **kwargs)
    assert not warned, warned


def test_fallback_probe_matches_the_documentation(torch_paths):
    expected_fallback = {"label smoothing", "negative label smoothing", "probability target",
                         "uint8 target", "K-dim weight"}
    for record in L.probe_fallbacks():
        assert record["warned"] == (record["family"] in expected_fallback), record


# -- special values per path ------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", [CONFIGS[0].name, CONFIGS[4].name])
def test_empty_batch_on_the_chunked_path(torch_paths, name, reduction):
    """N = 0: mean NaN, sum 0, none empty, and zero gradients — as the reference."""
    x = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    w = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(0, dtype=torch.int64)
    out = CHUNKED[name](x, w, t, reduction=reduction)
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
    assert torch.isnan(CHUNKED[CONFIGS[0].name](x, w, t, linear_bias=b))


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
    case = Case(FUNCTION, (x.double().numpy(), w.double().numpy(), t.numpy()),
                {"reduction": "mean"}, "float16")
    _check(out.double().numpy(), expected, case, "forward", "float16 mean of huge losses",
           linear_error_scales(case)["forward"])


# -- the ledger's chunked divergences, on the representative configuration --------------------
CHUNKED_ENTRIES = [e for e in ledger.LEDGER if e.function == FUNCTION
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
        ledger.run_check(L.chunked_target(L.ChunkedConfig()), entry).raise_for_failure()


def test_reference_path_has_none_of_the_chunked_divergences(torch_paths):
    """The same entries pass on the reference path (``options=None``)."""
    for entry in CHUNKED_ENTRIES:
        ledger.run_check(PATHS["reference path"], entry).raise_for_failure()


# -- the built-in target "chunked" -------------------------------------------------------------
@pytest.mark.parametrize("spec,config", [
    (None, L.ChunkedConfig()),
    ("compact,none,1", L.ChunkedConfig("compact", "1")),
    ("balanced,none,at-least-N", L.ChunkedConfig("balanced", "at least N")),
    ("auto,aspect_ratio:2,none,float32", L.ChunkedConfig("auto", None, "aspect_ratio:2",
                                                         "float32")),
])
def test_chunked_target_runs_the_configuration_it_names(torch_paths, spec, config):
    """``--target chunked[:<acc_policy>,<chunking_method>,<batch_chunk_size>[,<acc_dtype>]]``
    is that configuration: its value is bitwise the functional's with the same options."""
    from lossproofs.targets import get_target

    target = get_target("chunked" if spec is None else f"chunked:{spec}")
    assert target.get("cross_entropy") is None and TORCH_CHUNKED in target.families
    x, w, b, t, _ = _small()
    got = target.linear_cross_entropy(x, w, t, linear_bias=b)
    assert torch.equal(got, L.chunked(config)(x, w, t, linear_bias=b))


@pytest.mark.parametrize("spec", ["fast,none,1", "accurate,auto,2", "accurate,none,none",
                                  "accurate,none,0", "accurate,none,1,float16", "accurate"])
def test_chunked_target_rejects_a_configuration_torch_does_not_have(torch_paths, spec):
    from lossproofs.targets import get_target

    with pytest.raises(ValueError, match=f"chunked:{spec}"):
        get_target(f"chunked:{spec}")


# -- accuracy against the exact oracle --------------------------------------------------------
def ulp_key(policy: str, dtype: str) -> str:
    """The ULP_BOUNDS function key of an ulp_study policy name in ``dtype`` (acc_policy auto on
    CPU picks a float32 accumulator for float16/bfloat16 input, the input's dtype otherwise)."""
    if policy == "reference path":
        return FUNCTION
    half = dtype in ("float16", "bfloat16")
    if "acc_dtype=float32" in policy or (policy == "auto" and half):
        return f"{FUNCTION}[chunked, float32 accumulator]"
    return f"{FUNCTION}[chunked]"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_within_the_ulp_bounds_on_extreme_logits(torch_paths, dtype):
    """Each path and acc_policy against the exact oracle (lossproofs.oracle_linear) on logits of
    hundreds (‖x‖·‖W‖ ≈ 10³), in floored ulps; the bounds are ULP_BOUNDS rows
    ``(ulp_key(policy, dtype), dtype, "forward" | "gradient")``."""
    from lossproofs import oracle_linear
    from lossproofs.tolerances import ULP_BOUNDS

    records = oracle_linear.ulp_study(dtypes=(dtype,), strata_names=["extreme logits"])
    checked = 0
    for r in records:
        direction = "forward" if r["quantity"] == "forward" else "gradient"
        bound = ULP_BOUNDS[(ulp_key(r["policy"], dtype), dtype, direction)]
        checked += 1
        assert r["floored"] <= bound, r
    assert checked, "the ULP study returned no records"


# -- teeth ------------------------------------------------------------------------------------
def _finds_a_counterexample(check, fn, strategy) -> bool:
    @settings(max_examples=EXAMPLES["teeth"], derandomize=True, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck), deadline=None)
    @given(case=strategy, seed=st.integers(0, 2**16))
    def run(case, seed):
        check(fn, case, seed)

    try:
        run()
    except AssertionError as exc:
        print(f"counterexample: {exc}")  # shown by pytest when the test fails
        return True
    return False


def _teeth_cases():
    """What the chunked-path properties compare (they set zero-denominator means aside)."""
    return chunked_path_cases().filter(lambda c: not L.zero_mean_denominator(c))


TEETH = [
    (linear_chunk_tail_dropped, check_values_and_gradients, _teeth_cases),
    (linear_sum_of_chunk_means, check_values_and_gradients, _teeth_cases),
    (linear_grad_output_first_element, check_values_and_gradients, _teeth_cases),
    (linear_grad_output_twice, check_values_and_gradients, _teeth_cases),
    (linear_retain_mutates_saved, check_retain_graph, lambda: _teeth_cases().filter(
        lambda c: c.params["reduction"] != "none")),
]


@pytest.mark.skipif(control(), reason="the broken modules' bugs are switched off (a teeth "
                    "control run of their bug-free twins)")
@pytest.mark.parametrize("module,check,strategy", TEETH,
                         ids=[m.__name__.rsplit(".", 1)[1] for m, _, _ in TEETH])
def test_broken_chunked_implementation_is_caught(module, check, strategy):
    assert _finds_a_counterexample(check, module.linear_cross_entropy, strategy()), (
        f"{check.__name__} did not catch {module.__name__}")


def test_retain_graph_bug_escapes_a_single_backward():
    """The in-place bug is invisible to one backward: only the contract test catches it."""
    assert not _finds_a_counterexample(check_values_and_gradients,
                                       linear_retain_mutates_saved.linear_cross_entropy,
                                       _teeth_cases())


@pytest.mark.parametrize("check", [check_values_and_gradients, check_retain_graph])
def test_a_correct_chunked_implementation_passes(check):
    """The same hand-written chunked implementation without its bug passes both checks."""
    assert not _finds_a_counterexample(check, chunked_linear_cross_entropy, _teeth_cases())
