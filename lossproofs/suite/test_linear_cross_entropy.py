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

**Teeth**: the broken chunked implementations ``lossproofs/broken/linear_*.py`` are each caught
by the check that should catch them (and the correct chunked implementation is not).

Shared pieces: :mod:`lossproofs.suite._linear`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, assume, event, given, settings
from hypothesis import strategies as st

from lossproofs import reference
from lossproofs.broken import (
    linear_chunk_tail_dropped,
    linear_grad_output_first_element,
    linear_grad_output_twice,
    linear_retain_mutates_saved,
    linear_sum_of_chunk_means,
)
from lossproofs.broken._common import control
from lossproofs.broken._linear_chunked import chunked_linear_cross_entropy
from lossproofs.cases import DTYPES
from lossproofs.checks import compare
from lossproofs.ledger.linear import mean_denominator_is_zero
from lossproofs.strategies.linear import (
    chunked_path_cases,
)
from lossproofs.suite._linear import (  # with the fixtures _one_thread, linear, torch_paths
    EXAMPLES,
    FROZEN,
    FUNCTION,
    GRADS,
    _cases,
    _composed,
    _examples,
    _one_thread,
    _quiet,
    _set_aside_gradient,
    _values_and_grads,
    _within_rounding,
    check_retain_graph,
    check_target,
    check_values_and_gradients,
    linear,
    torch_paths,
)
from lossproofs.suite._support import draw_case
from lossproofs.targets import linear as L


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
    return chunked_path_cases().filter(lambda c: not mean_denominator_is_zero(c))


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
