"""The comparison's bounds are per element (issue 10, item 5).

With one scale per result (``max|expected|``), a small element could come back as 0 and pass:
in float16, ``atol = 4ε ≈ 0.0039`` times a scale of 1 covers any element below 0.004. Each
element is now compared at the error model's floor for that element (the magnitudes of the
terms its formula combines, :func:`lossproofs.error_model.floors`), never above the old scale,
and never below the dtype's representability floor (half a subnormal step is all a correctly
rounded result near 0 can be off by). These tests show the hole closed and the bounds still
passing correctly rounded results.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossproofs.ledger  # noqa: F401  (import order: the registry's cycle through the ledger)
from lossproofs import checks, conformance_run, error_model
from lossproofs.cases import Case
from lossproofs.dtypes import smallest_subnormal, tiny
from lossproofs.registry import GENERIC_FUNCTIONS, LOSSES, loss
from lossproofs.targets import get_target
from lossproofs.tolerances import tolerance

TORCH = get_target("torch")


def _rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` correctly rounded to ``dtype`` (round to nearest even), back in float64."""
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(getattr(torch, dtype)).double(
        ).numpy()


def _zero_smallest(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out[np.unravel_index(np.argmin(np.abs(out)), out.shape)] = 0.0
    return out


def _softmax_case(dtype="float16"):
    # row 0's smallest probability is e^−6/(1 + e^−6 + e^−3) ≈ 2.4e-3: below the old bound
    # 4ε·1 ≈ 3.9e-3, and far above float16's subnormal range.
    x = np.array([[0.0, -6.0, -3.0], [1.0, 2.0, 0.5]])
    return Case("softmax", (x,), {"dim": 1}, dtype)


# -- the hole, closed ----------------------------------------------------------------------------
def test_float16_softmax_with_a_small_element_returned_as_zero_fails():
    case = _softmax_case()
    actual, expected, scale = checks.forward(TORCH, case)
    assert checks.compare(actual, expected, "float16", "forward", scale).ok
    broken = _zero_smallest(actual)
    assert broken[0, 1] == 0 and expected[0, 1] > 2e-3
    # the old whole-result scale let it pass ...
    assert checks.compare(broken, expected, "float16", "forward", 1.0).ok
    # ... the per-element scale does not
    c = checks.compare(broken, expected, "float16", "forward", scale)
    assert not c.ok and c.worst_index == (0, 1)
    assert "per element" in c.bound


def test_a_correctly_rounded_result_passes_and_one_ulp_per_element_more_is_still_allowed():
    for function, x, params in (
            ("softmax", np.array([[0.0, -6.0, -3.0, 9.0], [1.0, 2.0, 0.5, -9.5]]), {"dim": 1}),
            ("log_softmax", np.array([[0.0, -6.0, -3.0, 9.0]]), {"dim": -1}),
            ("logsumexp", np.arange(24.0).reshape(2, 3, 4) / 3, {"dim": (0, 2), "keepdim": True})):
        for dtype in ("float16", "bfloat16", "float32"):
            case = Case(function, (x,), params, dtype)
            expected = checks.reference_forward(case)
            scale = checks.forward_scale(case, expected)
            assert checks.compare(_rounded(expected, dtype), expected, dtype, "forward", scale).ok


def test_a_float16_cross_entropy_gradient_with_a_small_element_zeroed_fails():
    x = np.array([[0.0, -6.0, -3.0, 2.0], [1.0, 2.0, 0.5, -4.0]])
    case = Case("cross_entropy", (x, np.array([3, 1])), {"reduction": "sum"}, "float16")
    (name, actual, expected), = checks.gradients(TORCH, case, seed=3)
    g = checks.grad_output_for(case, (), seed=3)
    scale = checks.gradient_scale(case, expected, g, name)
    assert checks.compare(actual, expected, "float16", "gradient", scale).ok
    broken = _zero_smallest(actual)
    assert checks.compare(broken, expected, "float16", "gradient",
                          checks.gradient_scale("cross_entropy", expected)).ok  # the old hole
    assert not checks.compare(broken, expected, "float16", "gradient", scale).ok


def test_a_float16_softmax_gradient_with_a_small_element_zeroed_fails():
    case = _softmax_case()
    g = np.array([[0.25, -1.0, 0.25], [1.0, -0.5, 2.0]])  # float16 values
    arrays, params = case.reference_args()
    expected = loss("softmax").backward(g, *arrays, **params)
    scale = checks.gradient_scale(case, expected, g)
    actual = _rounded(expected, "float16")
    assert checks.compare(actual, expected, "float16", "gradient", scale).ok
    broken = actual.copy()
    broken[0, 1] = 0.0  # y₁·(g₁ − Σ g⊙y) ≈ −0.003, below the old 4ε
    assert checks.compare(broken, expected, "float16", "gradient",
                          checks.gradient_scale("softmax", expected)).ok  # the old hole
    assert not checks.compare(broken, expected, "float16", "gradient", scale).ok


def test_an_unreduced_loss_element_zeroed_fails_where_a_large_one_sits_beside_it():
    # nll_loss 'none': the loss 0.001 beside 9.0; the old scale 9 allowed 0.035 of error.
    x = np.array([[-0.001, -5.0], [-9.0, -1.0]])
    case = Case("nll_loss", (x, np.array([0, 0])), {"reduction": "none"}, "float16")
    actual, expected, scale = checks.forward(TORCH, case)
    assert checks.compare(actual, expected, "float16", "forward", scale).ok
    broken = actual.copy()
    broken[0] = 0.0
    assert checks.compare(broken, expected, "float16", "forward", 9.0).ok
    assert not checks.compare(broken, expected, "float16", "forward", scale).ok


def test_the_check_functions_use_the_per_element_scale():
    """check_forward and check_gradients fail a broken implementation that zeroes the smallest
    element of an otherwise exact float16 softmax."""

    class Zeroing:
        name = "zeroing"
        families = frozenset()

        def get(self, function):
            def softmax(x, dim, dtype=None):
                y = torch.softmax(x, dim)
                flat = y.reshape(-1)
                k = int(torch.argmin(flat.abs()))
                mask = torch.ones_like(flat)
                mask[k] = 0
                return (flat * mask).reshape(y.shape)
            return softmax if function == "softmax" else None

    case = _softmax_case()
    assert checks.check_forward(TORCH, case, known=False).status == "pass"
    assert checks.check_forward(Zeroing(), case, known=False).status == "fail"
    assert checks.check_gradients(Zeroing(), case, seed=1, known=False).status == "fail"


# -- the representability floor ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_a_result_below_the_subnormal_range_may_round_to_zero_but_not_far_from_it(dtype):
    step = smallest_subnormal(dtype)
    expected = np.array([0.4 * step, 3.0])
    scale = np.array([0.0, 3.0])  # a zero floor: the element is compared absolutely
    # 0 is the correctly rounded result of 0.4 steps: it passes
    assert checks.compare(np.array([0.0, 3.0]), expected, dtype, "forward", scale).ok
    # 2 subnormal steps off is within the row's atol/ε steps only where that is ≥ 2.4
    tol = tolerance(dtype, "forward")
    within = tol.atol * tiny(dtype) / step
    far = np.array([(within + 1.0) * step, 3.0])
    assert not checks.compare(far, expected, dtype, "forward", scale).ok


def test_near_zero_float64_results_are_no_longer_compared_absolutely_at_one():
    expected = np.array([1e-300, 1.0])
    case_scale = np.array([1e-300, 1.0])
    assert not checks.compare(np.array([0.0, 1.0]), expected, "float64", "forward",
                              case_scale).ok
    assert checks.compare(np.array([0.0, 1.0]), expected, "float64", "forward", 1.0).ok


# -- the floors cover every shape the strategies draw --------------------------------------------
@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(data=st.data(), function=st.sampled_from(GENERIC_FUNCTIONS),
       dtype=st.sampled_from(["float64", "float16"]))
def test_floors_have_the_result_shapes_and_never_exceed_the_whole_result_scale(
        data, function, dtype):
    case = data.draw(LOSSES[function].cases(dtype))
    expected = checks.reference_forward(case)
    scale = np.asarray(checks.forward_scale(case, expected))
    if case.params.get("reduction") in ("sum", "mean"):
        assert scale.shape == ()
    else:
        assert scale.shape == expected.shape
        assert np.all(scale >= 0) and np.all(scale <= checks.error_scale(case, expected))
    g = checks.grad_output_for(case, expected.shape, 0)
    arrays, params = case.reference_args()
    grad = np.asarray(loss(function).backward(g, *arrays, **params))
    gs = np.asarray(checks.gradient_scale(case, grad, g))
    assert gs.shape == grad.shape and np.all(gs >= 0)
    assert np.all(gs <= checks.gradient_scale(function, grad))
    found = error_model.floors(case, g)
    if loss(function).differentiable_target and np.asarray(arrays[1]).dtype.kind == "f" and \
            np.shape(arrays[1]) == np.shape(arrays[0]):
        assert np.shape(found["target gradient"]) == np.shape(arrays[1])


def test_ignored_targets_get_a_zero_scale_and_must_be_exactly_zero():
    x = np.array([[[0.5, 1.0], [2.0, -1.0]], [[1.0, 0.0], [3.0, 2.0]]])  # (N, C, d) = (2, 2, 2)
    t = np.array([[0, -100], [1, 1]])
    case = Case("cross_entropy", (x, t), {"reduction": "none", "ignore_index": -100},
                "float32")
    expected = checks.reference_forward(case)
    scale = checks.forward_scale(case, expected)
    assert scale.shape == (2, 2) and scale[0, 1] == 0 and np.all(scale[[0, 1, 1], [0, 0, 1]] > 0)
    wrong = expected.copy()
    wrong[0, 1] = 1e-3
    assert not checks.compare(wrong, expected, "float32", "forward", scale).ok


def test_the_conformance_measure_takes_the_per_element_scale():
    case = _softmax_case()
    actual, expected, scale = checks.forward(TORCH, case)
    assert conformance_run.measure(actual, expected, "float16", "forward", scale, "x").ok
    m = conformance_run.measure(_zero_smallest(actual), expected, "float16", "forward", scale,
                                "x")
    assert not m.ok and m.of_bound > 1
