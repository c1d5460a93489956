"""``torch.nn.functional.linear_cross_entropy`` (torch 2.13): both paths, against the reference.

- **Values and gradients**: forward and the three gradients (input, linear_weight,
  linear_bias; and the target for probability targets) with a random ``grad_output``, against
  :func:`lossproofs.reference.linear_cross_entropy` and its closed-form backward, in every dtype,
  for the reference path (``options=None``), a representative set of chunked configurations
  (:func:`lossproofs.linear_targets.representative_configurations`: every ``acc_policy``, chunk
  sizes 1 / a non-divisor of N / ≥ N, every ``chunking_method``, with and without a float32
  accumulator) and the ``nn`` module, with the input or the weight frozen in turn.
- **Identities**: ``linear_cross_entropy == cross_entropy(linear(x))`` (bitwise on the reference
  path, within rounding on the chunked path; value and every gradient); invariance of the
  chunked path to ``batch_chunk_size`` and ``chunking_method``; ``nn`` module == functional.
- **Autograd contract as documented**: repeated backward with ``allow_retain_graph=True``;
  the error without it; no double backward, no forward-mode AD, no ``torch.func.grad`` on the
  chunked path and all of them on the reference path.
- **Fallbacks**: the documented configurations warn and still agree with the reference.
- **Divergences**: named strict xfails (``raises=AssertionError``), each with its reason.
- **Teeth**: the broken chunked implementations in ``lossproofs/broken/linear_*.py`` are each
  caught by the check that should catch them (and a correct chunked implementation is not).

Tolerances come from :func:`lossproofs.tolerances.tolerance` through
:func:`lossproofs.checks.compare`, at the error scales of
:func:`lossproofs.linear_targets.linear_scales` (first-order error propagation through the
matmul: ``|x|·|W|`` terms). Example counts: the properties set ``max_examples`` below the
profile's (see :data:`EXAMPLES`) so that the file stays within about 15 s at ``CI=true``; each
example runs a whole forward and backward plus the reference's, and the per-dtype properties
multiply by four.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from lossproofs import linear_targets as L
from lossproofs import reference
from lossproofs.broken import (
    linear_chunk_tail_dropped,
    linear_grad_output_first_element,
    linear_grad_output_twice,
    linear_retain_mutates_saved,
    linear_sum_of_chunk_means,
)
from lossproofs.broken._linear_chunked import chunked_linear_cross_entropy
from lossproofs.cases import DTYPES, Case
from lossproofs.checks import compare
from lossproofs.strategies.linear import (
    chunked_path_cases,
    fallback_cases,
    linear_cross_entropy_cases,
)

# Examples per property (the profile's count caps these: dev 25, ci 100).
EXAMPLES = {"per dtype": 40, "identity": 30, "contract": 20, "teeth": 60}
GRADS = ("input", "linear_weight", "linear_bias")
FROZEN = {"nothing frozen": GRADS, "input frozen": ("linear_weight", "linear_bias"),
          "weight frozen": ("input", "linear_bias")}
CONFIGS = L.representative_configurations()
CHUNKED = {c.name: L.chunked(c) for c in CONFIGS}
IMPLEMENTATIONS = {"reference path": L.reference_path(), **CHUNKED, "nn": L.nn_module(),
                   "nn " + CONFIGS[1].name: L.nn_module(CONFIGS[1])}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are tiny: with intra-op threads on a loaded machine each kernel waits
    milliseconds for the thread pool (measured 2.9 ms against 2 µs per cross_entropy call with
    2 threads on 2 busy cores), which would dominate the file's time. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _examples(kind: str):
    return settings(max_examples=min(EXAMPLES[kind], settings().max_examples))


def _is_chunked(name: str) -> bool:
    return "chunked" in name


# -- checks (plain functions: the properties and the teeth run them) -----------------------------
def _check(actual, expected, case: Case, kind: str, what: str, scale: float) -> None:
    c = compare(actual, expected, case.dtype, kind, scale)
    if not c.ok:
        raise AssertionError(c.message(what, np.asarray(actual), np.asarray(expected)))


def _quiet(fn, *args, **kwargs):
    """Call with the documented fallback warning silenced (the fallback tests check it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=L.FALLBACK_WARNING)
        return fn(*args, **kwargs)


def check_values_and_gradients(fn, case: Case, seed: int, wrt: tuple[str, ...] = GRADS) -> None:
    """Forward and the gradients in ``wrt`` (plus the target's for probability targets)
    against the reference, at the linear error scales."""
    actual, expected = _quiet(L.forward, fn, case)
    _check(actual, expected, case, "forward", "linear_cross_entropy forward",
           L.linear_scales(case)["forward"])
    if case.arrays[2].dtype.kind == "f":
        wrt = (*wrt, "target")
    g, results = _quiet(L.gradients, fn, case, seed, wrt)
    scales = L.linear_scales(case, g)
    for name, a, e in results:
        _check(a, e, case, "gradient", f"linear_cross_entropy {name} gradient", scales[name])


def _expected_gradients(case: Case, g: np.ndarray) -> dict[str, np.ndarray]:
    arrays, params = L.reference_args(case)
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
        scales = L.linear_scales(case, g)
        for name, t in zip(names, got):
            _check(t.detach().double().numpy(), expected[name], case, "gradient",
                   f"{name} gradient of a repeated backward", scales[name])


# -- values and gradients, every dtype ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@_examples("per dtype")
@given(data=st.data())
def test_values_and_gradients_match_reference(dtype, data):
    """Any case (both target kinds, every parameter), any implementation: the reference path,
    a chunked configuration (falling back where documented) or the nn module."""
    name = data.draw(st.sampled_from(sorted(IMPLEMENTATIONS)), label="implementation")
    case = data.draw(linear_cross_entropy_cases(dtype), label="case")
    frozen = data.draw(st.sampled_from(list(FROZEN)), label="frozen")
    if _is_chunked(name) and L.zero_mean_denominator(case):
        return  # the chunked path's NaN rows: test_chunked_zero_denominator_mean_gradient
    event(name)
    event(frozen)
    check_values_and_gradients(IMPLEMENTATIONS[name], case, data.draw(st.integers(0, 2**16)),
                               FROZEN[frozen])


@pytest.mark.parametrize("dtype", DTYPES)
@_examples("per dtype")
@given(data=st.data())
def test_chunked_path_values_and_gradients_match_reference(dtype, data):
    """Cases the chunked path computes itself (int64 class indices, no smoothing, a 2-D
    weight), under each representative configuration."""
    config = data.draw(st.sampled_from(CONFIGS), label="config")
    case = data.draw(chunked_path_cases(dtype), label="case")
    frozen = data.draw(st.sampled_from(list(FROZEN)), label="frozen")
    if L.zero_mean_denominator(case):
        return
    event(config.name)
    check_values_and_gradients(L.chunked(config), case, data.draw(st.integers(0, 2**16)),
                               FROZEN[frozen])


# -- identities -------------------------------------------------------------------------------
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


def _values_and_grads(fn, case: Case, g_seed: int):
    args, kwargs, leaves = L.tensors(case, frozenset(GRADS))
    out = _quiet(fn, *args, **kwargs)
    g = case.rounded(np.random.default_rng(g_seed).uniform(-2, 2, size=tuple(out.shape)))
    names = [n for n in GRADS if n in leaves]
    grads = torch.autograd.grad(out, [leaves[n] for n in names], torch.from_numpy(g).to(out.dtype))
    return g, {"forward": out.detach(), **dict(zip(names, grads))}


@_examples("identity")
@given(case=linear_cross_entropy_cases(), seed=st.integers(0, 2**16))
def test_reference_path_is_cross_entropy_of_linear_bitwise(case, seed):
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
def test_chunked_path_is_cross_entropy_of_linear_within_rounding(case, config, seed):
    """The chunked path against torch's own composition (not the reference): value and every
    gradient within the dtype's bound at the linear scales."""
    if L.zero_mean_denominator(case):
        return
    g, a = _values_and_grads(L.chunked(config), case, seed)
    _, b = _values_and_grads(_composed, case, seed)
    scales = L.linear_scales(case, g)
    for name in a:
        kind = "forward" if name == "forward" else "gradient"
        _check(a[name].double().numpy(), b[name].double().numpy(), case, kind,
               f"chunked vs cross_entropy(linear(x)): {name}", scales[name])


@_examples("identity")
@given(case=chunked_path_cases(), policy=st.sampled_from(L.ACC_POLICIES),
       seed=st.integers(0, 2**16))
def test_chunked_path_is_invariant_to_chunk_size_and_method(case, policy, seed):
    """Every chunk size (1, a non-divisor of N, ≥ N) and chunking method of one acc_policy
    gives the same value and gradients within rounding: chunking is a memory knob."""
    if L.zero_mean_denominator(case):
        return
    configs = [L.ChunkedConfig(policy, kind) for kind in L.CHUNK_SIZES] + [
        L.ChunkedConfig(policy, None, m) for m in L.CHUNKING_METHODS]
    runs = [_values_and_grads(L.chunked(c), case, seed) for c in configs]
    g, first = runs[0]
    scales = L.linear_scales(case, g)
    for config, (_, other) in zip(configs[1:], runs[1:]):
        for name in first:
            kind = "forward" if name == "forward" else "gradient"
            _check(other[name].double().numpy(), first[name].double().numpy(), case, kind,
                   f"{config.name} vs {configs[0].name}: {name}", scales[name])


@_examples("identity")
@given(case=linear_cross_entropy_cases(), config=st.sampled_from([None, *CONFIGS]),
       seed=st.integers(0, 2**16))
def test_nn_module_equals_functional(case, config, seed):
    """``nn.LinearCrossEntropyLoss`` (weight stored flat, reshaped in forward) == the
    functional with the same options: bitwise for a contiguous weight (the reshape is a
    view), within rounding otherwise."""
    if config is not None and L.zero_mean_denominator(case):
        return
    fn = L.reference_path() if config is None else L.chunked(config)
    g, a = _values_and_grads(L.nn_module(config), case, seed)
    _, b = _values_and_grads(fn, case, seed)
    scales = L.linear_scales(case, g)
    for name in a:
        if case.layout == "contiguous":
            assert torch.equal(a[name].nan_to_num(), b[name].nan_to_num()), name
        kind = "forward" if name == "forward" else "gradient"
        _check(a[name].double().numpy(), b[name].double().numpy(), case, kind,
               f"nn vs functional: {name}", scales[name])


# -- the autograd contract --------------------------------------------------------------------
RETAIN_CONFIGS = [L.ChunkedConfig("accurate", "non-divisor", allow_retain_graph=True),
                  L.ChunkedConfig("compact", "1", acc_dtype="float32", allow_retain_graph=True),
                  L.ChunkedConfig("balanced", None, "aspect_ratio", allow_retain_graph=True)]


@_examples("contract")
@given(case=chunked_path_cases(), config=st.sampled_from(RETAIN_CONFIGS),
       seed=st.integers(0, 2**16))
def test_repeated_backward_with_allow_retain_graph(case, config, seed):
    if L.zero_mean_denominator(case):
        return
    check_retain_graph(L.chunked(config), case, seed)


@_examples("contract")
@given(case=chunked_path_cases().filter(lambda c: c.params["reduction"] == "none"),
       seed=st.integers(0, 2**16))
def test_repeated_backward_of_reduction_none_needs_no_option(case, seed):
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
def test_second_backward_without_allow_retain_graph_raises(reduction):
    x, w, b, t, _ = _small()
    out = L.chunked(L.ChunkedConfig("accurate", "non-divisor"))(
        x, w, t, linear_bias=b, reduction=reduction)
    torch.autograd.grad(out, (x, w, b), retain_graph=True)
    with pytest.raises(RuntimeError, match="backward called twice"):
        torch.autograd.grad(out, (x, w, b))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_double_backward_is_unsupported_on_the_chunked_path(reduction):
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
def test_double_backward_works_on_the_reference_path(reduction, smoothing):
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
def test_forward_mode_ad_on_the_reference_path(reduction):
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
def test_forward_mode_ad_is_unsupported_on_the_chunked_path(reduction):
    """Documented "forward-mode AD (jvp, jacfwd) is unsupported": the output carries no
    tangent at all (silently: no error, no wrong number)."""
    x, w, b, t, _ = _small()
    vx, vw, vb = _tangents(x, w, b)
    fn = L.chunked(L.ChunkedConfig("accurate", "non-divisor"))
    with fwAD.dual_level():
        out = fn(fwAD.make_dual(x.detach(), vx), fwAD.make_dual(w.detach(), vw), t,
                 linear_bias=fwAD.make_dual(b.detach(), vb), reduction=reduction)
        assert fwAD.unpack_dual(out).tangent is None


def test_func_grad_raises_on_the_chunked_path_and_works_on_the_reference_path():
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
def test_documented_fallback_warns_and_equals_the_reference_path(case, config):
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
def test_supported_configurations_do_not_warn(case, config):
    assert not L.documented_fallback(case)
    args, kwargs, _ = L.tensors(case)
    _, warned = L.call_recording_warnings(L.chunked(config), *args, **kwargs)
    assert not warned, warned


def test_fallback_probe_matches_the_documentation():
    expected_fallback = {"label smoothing", "negative label smoothing", "probability target",
                         "uint8 target", "K-dim weight"}
    for record in L.probe_fallbacks():
        assert record["warned"] == (record["family"] in expected_fallback), record


# -- special values ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name", ["reference path", CONFIGS[0].name, CONFIGS[4].name])
def test_empty_batch(name, reduction):
    """N = 0: mean NaN, sum 0, none empty, and zero gradients — as the reference."""
    x = torch.zeros(0, 3, dtype=torch.float64, requires_grad=True)
    w = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.zeros(0, dtype=torch.int64)
    out = IMPLEMENTATIONS[name](x, w, t, reduction=reduction)
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


def test_all_ignored_mean_is_nan_on_both_paths():
    x, w, b, _, _ = _small()
    t = torch.full((5,), -100)
    for fn in (L.reference_path(), CHUNKED[CONFIGS[0].name]):
        assert torch.isnan(fn(x, w, t, linear_bias=b))


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "chunked path: with reduction='mean' and a zero denominator (every kept target's class "
    "weight 0) the input gradient is NaN in every row, ignored rows included, because "
    "neg_weight_target divides the whole (N,) vector by NaN; the reference path gives NaN only "
    "in the kept rows and exactly 0 in ignored ones (no upstream issue found)"))
def test_chunked_zero_denominator_mean_gradient():
    x, w, b, _, _ = _small()
    t = torch.tensor([0, 3, -100, 1, 2])
    cw = torch.zeros(4, dtype=torch.float64)
    args = (x, w, t)
    out = CHUNKED[CONFIGS[0].name](*args, linear_bias=b, weight=cw)
    (gx,) = torch.autograd.grad(out, (x,))
    ref_out = L.reference_path()(*args, linear_bias=b, weight=cw)
    (rx,) = torch.autograd.grad(ref_out, (x,))
    assert torch.isnan(out) and torch.isnan(ref_out)
    assert torch.equal(torch.isnan(gx), torch.isnan(rx)), (gx, rx)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "chunked path: a NaN (or inf) activation in an IGNORED row (a padding token) makes the loss "
    "NaN — the chunked loop adds weight_chunk·logit with weight 0, and 0·NaN = NaN — where "
    "the reference path, like cross_entropy, ignores the row exactly and returns the finite "
    "mean of the kept rows (no upstream issue found)"))
def test_chunked_nan_activation_in_an_ignored_row(reduction):
    x, w, b, _, _ = _small()
    x = x.detach().clone()
    x[2, 0] = float("nan")  # row 2 is ignored (target −100)
    t = torch.tensor([0, 3, -100, 1, 2])
    expected = reference.linear_cross_entropy(x.numpy(), w.detach().numpy(), t.numpy(),
                                              linear_bias=b.detach().numpy(),
                                              reduction=reduction)
    assert np.all(np.isfinite(expected))
    for fn in (L.reference_path(), CHUNKED[CONFIGS[0].name]):
        out = fn(x, w.detach(), t, linear_bias=b.detach(), reduction=reduction)
        assert compare(out.numpy(), expected, "float64", "forward").ok, (fn.__qualname__, out)


def test_float16_per_row_losses_beyond_the_range_with_a_float32_accumulator():
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
    case = Case("linear_cross_entropy", (x.double().numpy(), w.double().numpy(), t.numpy()),
                {"reduction": "mean"}, "float16")
    _check(out.double().numpy(), expected, case, "forward", "float16 mean of huge losses",
           L.linear_scales(case)["forward"])


# -- divergences: input the chunked path handles unlike the reference path --------------------
def _bad(name):
    x = torch.randn(4, 3, dtype=torch.float64)
    w = torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor([0, 4, 2, 1])
    cases = {
        "0-d input": ((x[0, 0], w, t), {}),
        "in_features mismatch": ((x, w[:, :2], t), {}),
        "bias of the wrong shape": ((x, w, t), {"linear_bias": torch.zeros(4,
                                                                           dtype=torch.float64)}),
        "linear_weight of another dtype": ((x, w.float(), t), {}),
        "int32 target": ((x, w, t.int()), {}),
        "bad reduction": ((x, w, t), {"reduction": "avg"}),
        "target out of bounds": ((x, w, torch.tensor([0, 4, 9, 1])), {}),
        "negative target": ((x, w, torch.tensor([0, 4, -3, 1])), {}),
        "target shorter than the batch": ((x, w, t[:3]), {}),
        "target longer than the batch": ((x, w, torch.cat([t, t])), {}),
        "class weight too short": ((x, w, t), {"weight": torch.ones(4, dtype=torch.float64)}),
        "class weight too long": ((x, w, t), {"weight": torch.ones(6, dtype=torch.float64)}),
        "class weight of another dtype": ((x, w, t), {"weight": torch.ones(5)}),
        "bias of another dtype": ((x, w, t), {"linear_bias": torch.zeros(5)}),
        "unbatched input, target of shape (1,)": ((x[0], w, t[:1]), {}),
        "float ignore_index": ((x, w, t), {"ignore_index": 1.0}),
        "integer input": ((x.long(), w.long(), t), {}),
    }
    return cases[name]


def _raised(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # the type is what the test compares
        return exc
    return None


def _divergence(name, reason):
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                      reason=reason), id=name)


_NO_ISSUE = " (no upstream issue found)"
BAD_INPUT = [
    "0-d input", "in_features mismatch", "bias of the wrong shape",
    "linear_weight of another dtype", "int32 target", "bad reduction",
    _divergence("target out of bounds", "chunked path: gather's RuntimeError ('index 9 is out "
                "of bounds for dimension 1') instead of cross_entropy's IndexError" + _NO_ISSUE),
    _divergence("negative target", "chunked path: RuntimeError from gather instead of "
                "IndexError" + _NO_ISSUE),
    _divergence("target shorter than the batch", "chunked path: RuntimeError from narrow "
                "('start (2) + length (2) exceeds dimension size (3)') instead of ValueError "
                "('Expected input batch_size (4) to match target batch_size (3)')" + _NO_ISSUE),
    _divergence("target longer than the batch", "chunked path: SILENTLY ACCEPTED — the first N "
                "targets are used and mean divides by the weights of all of them (the loss is "
                "halved for a doubled target); the reference path raises ValueError" + _NO_ISSUE),
    _divergence("class weight too short", "chunked path: IndexError from index_select "
                "instead of RuntimeError ('weight tensor should be defined either for all 5 "
                "classes or no classes')" + _NO_ISSUE),
    _divergence("class weight too long", "chunked path: SILENTLY ACCEPTED (the extra entries "
                "are never indexed); the reference path raises RuntimeError" + _NO_ISSUE),
    _divergence("class weight of another dtype", "chunked path: a float32 class weight with "
                "float64 input is accepted (cast); the reference path raises RuntimeError "
                "('expected scalar type Double but found Float')" + _NO_ISSUE),
    _divergence("bias of another dtype", "chunked path: a float32 bias with float64 input is "
                "accepted (cast); the reference path's linear raises RuntimeError" + _NO_ISSUE),
    _divergence("unbatched input, target of shape (1,)", "chunked path: RuntimeError ('Index "
                "tensor must have the same number of dimensions') where the reference path, "
                "like cross_entropy, accepts a (1,) target for unbatched input" + _NO_ISSUE),
    _divergence("float ignore_index", "chunked path: RuntimeError from the custom op's schema "
                "instead of TypeError" + _NO_ISSUE),
    _divergence("integer input", "chunked path: ValueError ('acc_dtype must be one of ...') "
                "instead of NotImplementedError" + _NO_ISSUE),
]


@pytest.mark.parametrize("name", BAD_INPUT)
def test_chunked_path_rejects_bad_input_as_the_reference_path_does(name):
    args, kwargs = _bad(name)
    expected = _raised(L.reference_path(), *args, **kwargs)
    assert expected is not None, f"the reference path accepts {name}"
    got = _raised(_quiet, L.chunked(L.ChunkedConfig("accurate", "non-divisor")), *args, **kwargs)
    assert type(got) is type(expected), (
        f"{name}: reference path raises {type(expected).__name__}: {expected}; chunked path "
        f"{'accepts it' if got is None else f'raises {type(got).__name__}: {got}'}")


# -- accuracy against the exact oracle --------------------------------------------------------
def ulp_key(policy: str) -> str:
    """The ULP_BOUNDS function key of an ulp_study policy name."""
    if policy == "reference path":
        return "linear_cross_entropy"
    if "acc_dtype=float32" in policy or policy == "auto":
        return "linear_cross_entropy[chunked, float32 accumulator]"
    return "linear_cross_entropy[chunked]"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_within_the_ulp_bounds_on_extreme_logits(dtype):
    """Each path and acc_policy against the exact oracle (lossproofs.oracle_linear) on logits of
    hundreds (‖x‖·‖W‖ ≈ 10³), in floored ulps; the bounds are ULP_BOUNDS rows
    ``(ulp_key(policy), dtype, "forward" | "gradient")`` and the test skips until they exist."""
    from lossproofs import oracle_linear
    from lossproofs.tolerances import ULP_BOUNDS

    keys = {ulp_key(policy) for policy, _ in oracle_linear.POLICIES}
    if not any((k, dtype, d) in ULP_BOUNDS for k in keys for d in ("forward", "gradient")):
        pytest.skip("no linear_cross_entropy rows in lossproofs.tolerances.ULP_BOUNDS yet")
    records = oracle_linear.ulp_study(dtypes=(dtype,), strata_names=["extreme logits"])
    checked = 0
    for r in records:
        direction = "forward" if r["quantity"] == "forward" else "gradient"
        bound = ULP_BOUNDS.get((ulp_key(r["policy"]), dtype, direction))
        if bound is None:
            continue
        checked += 1
        assert r["floored"] <= bound, r
    if not checked:
        pytest.skip("no linear_cross_entropy rows in lossproofs.tolerances.ULP_BOUNDS yet")


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
    """What the chunked-path properties run (they set zero-denominator means aside)."""
    return chunked_path_cases().filter(lambda c: not L.zero_mean_denominator(c))


TEETH = [
    (linear_chunk_tail_dropped, check_values_and_gradients, _teeth_cases),
    (linear_sum_of_chunk_means, check_values_and_gradients, _teeth_cases),
    (linear_grad_output_first_element, check_values_and_gradients, _teeth_cases),
    (linear_grad_output_twice, check_values_and_gradients, _teeth_cases),
    (linear_retain_mutates_saved, check_retain_graph, lambda: _teeth_cases().filter(
        lambda c: c.params["reduction"] != "none")),
]


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
