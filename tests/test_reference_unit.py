"""Unit tests of the float64 NumPy reference on its own (no torch).

Three kinds of evidence:

1. Every closed-form gradient (``*_backward``, ``*_target_backward``) and HVP agrees with a
   central finite difference of the reference's own forward (respectively backward) along
   random directions, over shapes, reductions, weights, ignore_index and label smoothing.
2. Hand-computed values: each expected number below is derived in the test from first
   principles (a comment shows the derivation), never copied from the code under test.
3. Every input torch rejects is rejected, with the exception type torch uses and a message
   naming the offending argument and its value.
"""

from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest

from lossproofs import reference as R

# Five-point central differences in float64 with h = 1e-3: truncation ~h⁴·|f⁽⁵⁾|/30 ≈ 1e-13
# and rounding ~eps·|f|/h ≈ 1e-12 for |f| ≲ 10, well below these bounds; a wrong formula (a
# missing factor, a wrong denominator, even a relative error of 1e-7) is caught.
FD_STEP = 1e-3
FD_RTOL = 1e-9
FD_ATOL = 1e-10
BCE_FD_STEP = 1e-4
N_DIRECTIONS = 3
IGNORE = -100


def rng_for(*params):
    """A generator seeded from the test's parameters (stable across runs, unlike hash())."""
    return np.random.default_rng(zlib.crc32(repr(params).encode()))


def directional_difference(function, point, direction, step=FD_STEP):
    """The derivative of ``function`` along ``direction`` by the fourth-order central stencil
    (−f(x+2h·d) + 8f(x+h·d) − 8f(x−h·d) + f(x−2h·d)) / 12h."""
    def at(multiple):
        return np.asarray(function(point + multiple * step * direction), dtype=np.float64)
    return (-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * step)


def assert_gradient_matches(forward, gradient, point, grad_output, rng, step=FD_STEP):
    """⟨gradient, d⟩ = d/dh Σ grad_output ⊙ forward(point + h·d) for random directions d."""
    gradient = np.asarray(gradient)
    assert gradient.shape == np.shape(point)
    assert gradient.dtype == np.float64
    for _ in range(N_DIRECTIONS):
        direction = rng.normal(size=np.shape(point))
        numeric = directional_difference(
            lambda z: np.sum(grad_output * forward(z)), point, direction, step)
        np.testing.assert_allclose(np.sum(gradient * direction), numeric,
                                   rtol=FD_RTOL, atol=FD_ATOL)


def assert_hvp_matches(hvp, backward, point, rng):
    """hvp(v) = d/dh backward(point + h·v), the whole vector, for random directions v."""
    for _ in range(N_DIRECTIONS):
        direction = rng.normal(size=np.shape(point))
        numeric = directional_difference(backward, point, direction)
        np.testing.assert_allclose(hvp(direction), numeric, rtol=FD_RTOL, atol=FD_ATOL)


def output_shape(reduction, loss_shape):
    return tuple(loss_shape) if reduction == "none" else ()


# =============================================================================================
# 1. Gradients and HVPs against central finite differences
# =============================================================================================

SOFTMAX_CASES = [((), 0), ((), -1), ((5,), 0), ((3, 4), 0), ((3, 4), 1), ((3, 4), -1),
                 ((2, 3, 4), 1), ((2, 3, 4), -3)]


@pytest.mark.parametrize(("shape", "dim"), SOFTMAX_CASES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_backward_matches_finite_differences(name, shape, dim):
    rng = rng_for(name, shape, dim)
    forward, backward = getattr(R, name), getattr(R, f"{name}_backward")
    x = rng.normal(size=shape) * 2
    g = rng.normal(size=shape)
    assert_gradient_matches(lambda z: forward(z, dim), backward(g, x, dim), x, g, rng)


@pytest.mark.parametrize(("shape", "dim"), [((), 0), ((5,), 0), ((3, 4), 1), ((3, 4), (0, 1)),
                                            ((2, 3, 4), (0, 2)), ((2, 3, 4), -2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_logsumexp_backward_matches_finite_differences(shape, dim, keepdim):
    rng = rng_for(shape, str(dim), keepdim)
    x = rng.normal(size=shape) * 3
    g = rng.normal(size=np.shape(R.logsumexp(x, dim, keepdim)))
    gradient = R.logsumexp_backward(g, x, dim, keepdim)
    assert_gradient_matches(lambda z: R.logsumexp(z, dim, keepdim), gradient, x, g, rng)


CLASS_SHAPES = [(5,), (4, 3), (3, 4, 2), (2, 3, 2, 2)]
REDUCTIONS = ["none", "sum", "mean"]


def class_problem(shape, kind, with_weight, rng, ignore_index=IGNORE):
    """Logits, a target (index with one ignored entry, or unnormalised probabilities), weight."""
    n_classes = shape[0] if len(shape) == 1 else shape[1]
    loss_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    x = rng.normal(size=shape) * 2
    if kind == "index":
        target = rng.integers(0, n_classes, size=loss_shape)
        if target.size > 1:
            target.reshape(-1)[0] = ignore_index
    else:
        target = rng.uniform(0.0, 1.0, size=shape)  # torch accepts rows not summing to 1
    weight = rng.uniform(0.5, 2.0, size=n_classes) if with_weight else None
    return x, target, weight, loss_shape


CE_GRID = list(itertools.product(CLASS_SHAPES, ["index", "probabilities"], [False, True],
                                 REDUCTIONS, [0.0, 0.3]))


@pytest.mark.parametrize(("shape", "kind", "with_weight", "reduction", "smoothing"), CE_GRID)
def test_cross_entropy_gradients_and_hvp_match_finite_differences(
        shape, kind, with_weight, reduction, smoothing):
    rng = rng_for(shape, kind, with_weight, reduction, smoothing)
    x, target, weight, loss_shape = class_problem(shape, kind, with_weight, rng)
    options = dict(weight=weight, reduction=reduction, label_smoothing=smoothing)
    g = rng.normal(size=output_shape(reduction, loss_shape))

    gradient = R.cross_entropy_backward(g, x, target, **options)
    assert_gradient_matches(lambda z: R.cross_entropy(z, target, **options), gradient, x, g, rng)
    assert_hvp_matches(lambda vec: R.cross_entropy_hvp(vec, g, x, target, **options),
                       lambda z: R.cross_entropy_backward(g, z, target, **options), x, rng)
    if kind == "probabilities":
        target_gradient = R.cross_entropy_target_backward(g, x, target, **options)
        assert_gradient_matches(lambda t: R.cross_entropy(x, t, **options), target_gradient,
                                target, g, rng)


@pytest.mark.parametrize("shape", CLASS_SHAPES)
@pytest.mark.parametrize(("with_weight", "reduction"),
                         list(itertools.product([False, True], REDUCTIONS)))
def test_nll_loss_backward_matches_finite_differences(shape, with_weight, reduction):
    rng = rng_for(shape, with_weight, reduction)
    x, target, weight, loss_shape = class_problem(shape, "index", with_weight, rng)
    g = rng.normal(size=output_shape(reduction, loss_shape))
    options = dict(weight=weight, reduction=reduction)
    gradient = R.nll_loss_backward(g, x, target, **options)
    assert_gradient_matches(lambda z: R.nll_loss(z, target, **options), gradient, x, g, rng)


def test_cross_entropy_gradients_with_a_nondefault_ignore_index():
    rng = np.random.default_rng(7)
    x, target, weight, _ = class_problem((6, 4), "index", True, rng, ignore_index=2)
    target[1] = 2
    options = dict(weight=weight, ignore_index=2, label_smoothing=0.2)
    gradient = R.cross_entropy_backward(1.0, x, target, **options)
    np.testing.assert_array_equal(gradient[target == 2], 0.0)  # ignored rows: exactly 0
    assert_gradient_matches(lambda z: R.cross_entropy(z, target, **options), gradient, x, 1.0,
                            rng)


BCE_SHAPES = [(), (5,), (3, 4), (2, 3, 4)]


def bce_weight(shape, kind, rng):
    if kind == "none" or not shape:
        return None
    return rng.uniform(0.5, 2.0, size={"last": shape[-1:], "full": shape}[kind])


@pytest.mark.parametrize(("shape", "weight_kind", "reduction"),
                         list(itertools.product(BCE_SHAPES, ["none", "last", "full"],
                                                REDUCTIONS)))
def test_binary_cross_entropy_gradients_match_finite_differences(shape, weight_kind,
                                                                 reduction):
    rng = rng_for(shape, weight_kind, reduction)
    # Keep p and y inside (0, 1) and away from the −100 clamp, where the formula is smooth.
    p = rng.uniform(0.1, 0.9, size=shape)
    y = rng.uniform(0.1, 0.9, size=shape)
    weight = bce_weight(shape, weight_kind, rng)
    g = rng.normal(size=output_shape(reduction, shape))
    options = dict(weight=weight, reduction=reduction)
    # log p has |d⁵/dp⁵| = 24/p⁵ ≈ 2.4e6 at p = 0.1: a smaller step keeps truncation ≈ 1e-11.
    assert_gradient_matches(lambda z: R.binary_cross_entropy(z, y, **options),
                            R.binary_cross_entropy_backward(g, p, y, **options), p, g, rng,
                            step=BCE_FD_STEP)
    assert_gradient_matches(lambda t: R.binary_cross_entropy(p, t, **options),
                            R.binary_cross_entropy_target_backward(g, p, y, **options), y, g,
                            rng, step=BCE_FD_STEP)


@pytest.mark.parametrize(("shape", "weight_kind", "with_pos_weight", "reduction"),
                         list(itertools.product(BCE_SHAPES, ["none", "last", "full"],
                                                [False, True], REDUCTIONS)))
def test_binary_cross_entropy_with_logits_gradients_and_hvp_match_finite_differences(
        shape, weight_kind, with_pos_weight, reduction):
    rng = rng_for(shape, weight_kind, with_pos_weight, reduction)
    x = rng.normal(size=shape) * 3
    y = rng.uniform(0.0, 1.0, size=shape)
    weight = bce_weight(shape, weight_kind, rng)
    pos_weight = rng.uniform(0.5, 3.0, size=shape[-1:]) if with_pos_weight else None
    g = rng.normal(size=output_shape(reduction, shape))
    options = dict(weight=weight, reduction=reduction, pos_weight=pos_weight)
    forward = R.binary_cross_entropy_with_logits
    assert_gradient_matches(lambda z: forward(z, y, **options),
                            R.binary_cross_entropy_with_logits_backward(g, x, y, **options),
                            x, g, rng)
    assert_gradient_matches(
        lambda t: forward(x, t, **options),
        R.binary_cross_entropy_with_logits_target_backward(g, x, y, **options), y, g, rng)
    assert_hvp_matches(
        lambda vec: R.binary_cross_entropy_with_logits_hvp(vec, g, x, y, **options),
        lambda z: R.binary_cross_entropy_with_logits_backward(g, z, y, **options), x, rng)


# =============================================================================================
# 2. Hand-computed cases
# =============================================================================================

def test_pytorch_tutorial_value():
    # CrossEntropyLoss()([[0.2, 0.1, -0.1]], [0]) = log(e^0.2 + e^0.1 + e^−0.1) − 0.2 ≈ 0.9729.
    value = R.cross_entropy(np.array([[0.2, 0.1, -0.1]]), np.array([0]))
    assert round(float(value), 4) == 0.9729
    expected = math.log(math.exp(0.2) + math.exp(0.1) + math.exp(-0.1)) - 0.2
    assert float(value) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("n_classes", [1, 2, 7, 1000])
@pytest.mark.parametrize("smoothing", [0.0, 0.25, 1.0])
def test_equal_logits_give_log_c(n_classes, smoothing):
    # lp = −log C everywhere, so (1−ε)·log C + (ε/C)·C·log C = log C for any target, and a
    # uniform probability target gives −Σ (1/C)·(−log C) = log C as well.
    x = np.full((3, n_classes), 1.5)
    index = np.array([0, n_classes - 1, n_classes // 2])
    uniform = np.full((3, n_classes), 1.0 / n_classes)
    for target in (index, uniform):
        value = R.cross_entropy(x, target, label_smoothing=smoothing)
        assert float(value) == pytest.approx(math.log(n_classes), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize(("a", "b"), [(0.0, 0.0), (2.0, -1.0), (-30.0, 40.0), (500.0, -500.0)])
def test_two_class_cross_entropy_is_softplus_of_the_margin(a, b):
    # C = 2: −log(e^a / (e^a + e^b)) = log(1 + e^(b−a)) = softplus(b − a); gradient w.r.t.
    # (a, b) is (σ(b−a)·(−1), σ(b−a)); computed here with the stable log1p/exp forms.
    margin = b - a
    softplus = max(margin, 0.0) + math.log1p(math.exp(-abs(margin)))
    sigma = 1.0 / (1.0 + math.exp(-margin)) if margin >= 0 else math.exp(margin) / (
        1.0 + math.exp(margin))
    x = np.array([a, b])
    assert float(R.cross_entropy(x, np.int64(0))) == pytest.approx(softplus, rel=1e-14)
    np.testing.assert_allclose(R.cross_entropy_backward(1.0, x, np.int64(0)),
                               [-sigma, sigma], rtol=1e-14, atol=1e-300)


def test_label_smoothing_by_hand():
    # x = (0, log 3): p = (1/4, 3/4). Target 0, ε = 1/2, C = 2:
    # (1−ε)·log 4 + (ε/C)·(log 4 + log(4/3)) = ½·log 4 + ¼·log(16/3).
    x = np.array([[0.0, math.log(3.0)]])
    expected = 0.5 * math.log(4.0) + 0.25 * math.log(16.0 / 3.0)
    assert float(R.cross_entropy(x, np.array([0]), label_smoothing=0.5)) == pytest.approx(
        expected, rel=1e-14)
    # The same as a probability target T = t(1−ε) + ε/C = (3/4, 1/4).
    one_hot = np.array([[1.0, 0.0]])
    assert float(R.cross_entropy(x, one_hot, label_smoothing=0.5)) == pytest.approx(
        expected, rel=1e-14)


def test_weighted_mean_for_index_targets_and_numel_over_c_for_probabilities():
    # nll: ℓ = (−2·(−1), −3·(−4)) = (2, 12); mean = 14 / (2 + 3) = 2.8, sum = 14.
    log_probs = np.array([[-1.0, -2.0], [-3.0, -4.0]])
    target, weight = np.array([0, 1]), np.array([2.0, 3.0])
    assert float(R.nll_loss(log_probs, target, weight)) == pytest.approx(2.8, rel=1e-15)
    assert float(R.nll_loss(log_probs, target, weight, reduction="sum")) == 14.0
    np.testing.assert_array_equal(R.nll_loss(log_probs, target, weight, reduction="none"),
                                  [2.0, 12.0])
    # cross_entropy with the equivalent one-hot probability target divides by numel/C = 2
    # instead (pytorch#61309): the same sum, a different mean.
    logits = np.array([[0.3, -1.0], [2.0, 0.5]])
    one_hot = np.eye(2)[target]
    total = float(R.cross_entropy(logits, target, weight, reduction="sum"))
    assert float(R.cross_entropy(logits, one_hot, weight, reduction="sum")) == pytest.approx(
        total, rel=1e-15)
    assert float(R.cross_entropy(logits, target, weight)) == pytest.approx(total / 5.0,
                                                                          rel=1e-15)
    assert float(R.cross_entropy(logits, one_hot, weight)) == pytest.approx(total / 2.0,
                                                                           rel=1e-15)


def test_ignored_targets_and_empty_batches():
    x = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan]])
    # An ignored row contributes exactly 0 even when it holds NaN.
    kept_only = R.cross_entropy(x[:1], np.array([2]), reduction="none")
    np.testing.assert_array_equal(R.cross_entropy(x, np.array([2, IGNORE]), reduction="none"),
                                  [float(kept_only[0]), 0.0])
    all_ignored = np.array([IGNORE, IGNORE])
    assert np.isnan(R.cross_entropy(x, all_ignored))
    assert float(R.cross_entropy(x, all_ignored, reduction="sum")) == 0.0
    assert np.isnan(R.nll_loss(x, all_ignored))
    np.testing.assert_array_equal(R.nll_loss_backward(1.0, x, all_ignored), np.zeros((2, 3)))
    # Empty batches: mean 0/0 = NaN, sum 0, "none" an empty array of the loss's shape.
    for function, args, loss_shape in [
            (R.cross_entropy, (np.zeros((0, 3)), np.zeros(0, np.int64)), (0,)),
            (R.cross_entropy, (np.zeros((0, 3)), np.zeros((0, 3))), (0,)),
            (R.nll_loss, (np.zeros((0, 3, 2)), np.zeros((0, 2), np.int64)), (0, 2)),
            (R.binary_cross_entropy, (np.zeros((0, 2)), np.zeros((0, 2))), (0, 2)),
            (R.binary_cross_entropy_with_logits, (np.zeros(0), np.zeros(0)), (0,))]:
        assert np.isnan(function(*args))
        assert float(function(*args, reduction="sum")) == 0.0
        assert function(*args, reduction="none").shape == loss_shape


def test_single_class_and_unbatched_input():
    # C = 1: log_softmax is identically 0, so the loss and its gradient are exactly 0.
    x = np.array([[3.0], [-7.0]])
    target = np.array([0, 0])
    assert float(R.cross_entropy(x, target, reduction="sum", label_smoothing=0.4)) == 0.0
    np.testing.assert_array_equal(R.cross_entropy_backward(1.0, x, target), np.zeros((2, 1)))
    # An unbatched (C,) input with a 0-d or (1,) target is the batched case with N = 1, and
    # reduction "none" gives a 0-d result.
    logits = np.array([0.5, -1.0, 2.0])
    batched = R.cross_entropy(logits[None, :], np.array([1]), reduction="none")
    for target in (np.int64(1), np.array([1])):
        unbatched = R.cross_entropy(logits, target, reduction="none")
        assert unbatched.shape == ()
        assert float(unbatched) == float(batched[0])


def test_k_dimensional_input_is_the_flattened_two_dimensional_case():
    # (N, C, d1, d2) with class dim 1 equals (N·d1·d2, C) after moving the class dim last.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 4, 5))
    target = rng.integers(0, 3, size=(2, 4, 5))
    flat_x = np.moveaxis(x, 1, -1).reshape(-1, 3)
    per_element = R.cross_entropy(x, target, reduction="none", label_smoothing=0.1)
    flat = R.cross_entropy(flat_x, target.reshape(-1), reduction="none", label_smoothing=0.1)
    np.testing.assert_array_equal(per_element.reshape(-1), flat)
    gradient = R.cross_entropy_backward(1.0, x, target)
    flat_gradient = R.cross_entropy_backward(1.0, flat_x, target.reshape(-1))
    np.testing.assert_allclose(np.moveaxis(gradient, 1, -1).reshape(-1, 3), flat_gradient,
                               rtol=1e-15, atol=0)


def test_softmax_special_values():
    inf, nan = np.inf, np.nan
    x = np.array([[0.0, -inf, 0.0], [-inf, -inf, -inf], [inf, 0.0, 1.0], [nan, 0.0, 1.0]])
    p = R.softmax(x, 1)
    np.testing.assert_array_equal(p[0], [0.5, 0.0, 0.5])  # partial −inf row: exact 0
    assert np.isnan(p[1:]).all()  # all −inf, +inf or NaN: the whole row is NaN
    np.testing.assert_array_equal(R.log_softmax(x, 1)[0], [-math.log(2), -inf, -math.log(2)])
    assert np.isfinite(R.softmax_backward(np.ones((4, 3)), x, 1)[0]).all()
    assert np.isfinite(R.log_softmax_backward(np.ones((4, 3)), x, 1)[0]).all()
    assert float(R.softmax(np.float64(5.0), 0)) == 1.0
    assert float(R.log_softmax(np.float64(5.0), -1)) == 0.0
    # No overflow: softmax of (1000, 1000) is (1/2, 1/2) and logsumexp is 1000 + log 2.
    np.testing.assert_array_equal(R.softmax(np.array([1000.0, 1000.0]), 0), [0.5, 0.5])
    assert float(R.logsumexp(np.array([1000.0, 1000.0]), 0)) == 1000.0 + math.log(2.0)
    np.testing.assert_array_equal(
        R.logsumexp(np.array([[-inf, -inf], [inf, 1.0], [inf, -inf]]), 1), [-inf, inf, inf])
    assert R.logsumexp(np.zeros((3, 0)), 1).tolist() == [-inf] * 3


def test_loss_gradient_and_hvp_stay_finite_at_extreme_logits():
    # As optax's tests: logits of ±100 (and ±1000) must not overflow anywhere.
    x = np.array([[100.0, -100.0, 0.0], [-1000.0, 1000.0, 3.0]])
    target = np.array([1, 0])
    direction = np.ones_like(x)
    for value in (R.cross_entropy(x, target, label_smoothing=0.1),
                  R.cross_entropy_backward(1.0, x, target, label_smoothing=0.1),
                  R.cross_entropy_hvp(direction, 1.0, x, target, label_smoothing=0.1),
                  R.binary_cross_entropy_with_logits(x, np.full_like(x, 0.5)),
                  R.binary_cross_entropy_with_logits_backward(1.0, x, np.full_like(x, 0.5)),
                  R.binary_cross_entropy_with_logits_hvp(direction, 1.0, x,
                                                         np.full_like(x, 0.5))):
        assert np.isfinite(value).all()
    # −log softmax at a logit 200 below the maximum is 200 (up to e^−200 ≈ 1e-87).
    assert float(R.cross_entropy(x[:1], np.array([1]))) == pytest.approx(200.0, rel=1e-15)


def test_binary_cross_entropy_by_hand():
    # −(y·log p + (1−y)·log(1−p)): p = y = 1/2 gives log 2; the logs are clamped at −100.
    assert float(R.binary_cross_entropy(np.array([0.5]), np.array([0.5]))) == pytest.approx(
        math.log(2.0), rel=1e-15)
    ends = R.binary_cross_entropy(np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0]),
                                  reduction="none")
    np.testing.assert_array_equal(ends, [100.0, 100.0, 0.0, 0.0])
    # torch's backward divides by max((1−p)·p, ε) with ε = 1e-12 rounded to float32.
    epsilon = float(np.float32(1e-12))
    np.testing.assert_array_equal(
        R.binary_cross_entropy_backward(np.ones(2), np.array([0.0, 1.0]), np.array([1.0, 0.0]),
                                        reduction="none"),
        [-1.0 / epsilon, 1.0 / epsilon])
    # The target gradient is −logit(p), unclamped.
    np.testing.assert_array_equal(
        R.binary_cross_entropy_target_backward(np.ones(3), np.array([0.0, 1.0, 0.5]),
                                               np.full(3, 0.5), reduction="none"),
        [np.inf, -np.inf, 0.0])


def test_binary_cross_entropy_with_logits_by_hand():
    # y = 1: ℓ = −pw·log σ(x) = pw·softplus(−x); y = 0: ℓ = softplus(x). No overflow at |x| = 800.
    x = np.array([0.0, -800.0, 800.0, 2.0])
    y = np.array([1.0, 1.0, 0.0, 0.0])
    pos_weight = np.array([3.0, 1.0, 5.0, 1.0])
    expected = [3.0 * math.log(2.0), 800.0, 800.0, 2.0 + math.log1p(math.exp(-2.0))]
    np.testing.assert_allclose(
        R.binary_cross_entropy_with_logits(x, y, reduction="none", pos_weight=pos_weight),
        expected, rtol=1e-15)
    # Matches BCE on σ(x) where neither clamp nor rounding of σ matters.
    xs = np.linspace(-4, 4, 9)
    ys = np.linspace(0, 1, 9)
    np.testing.assert_allclose(R.binary_cross_entropy_with_logits(xs, ys, reduction="none"),
                               R.binary_cross_entropy(1 / (1 + np.exp(-xs)), ys,
                                                      reduction="none"), rtol=1e-13)


def test_binary_cross_entropy_with_logits_infinities_mirror_torch():
    # pytorch#102894: torch evaluates (1−y)·x − log σ(x) literally, so x = +inf with y = 1
    # (0·inf) and x = −inf (inf − inf or 0·(−inf)) give NaN; x = +inf with y = 0 gives +inf.
    loss = R.binary_cross_entropy_with_logits(np.array([np.inf, -np.inf, np.inf, -np.inf]),
                                              np.array([1.0, 0.0, 0.0, 1.0]), reduction="none")
    assert np.isnan(loss[[0, 1, 3]]).all()
    assert loss[2] == np.inf


def test_uint8_targets_equal_int64_targets_where_torch_accepts_them():
    rng = np.random.default_rng(5)
    x, target, weight, _ = class_problem((6, 4), "index", True, rng)
    target = np.abs(target) % 4
    for options in ({"weight": weight}, {"label_smoothing": 0.2, "reduction": "sum"}):
        np.testing.assert_array_equal(R.cross_entropy(x, target.astype(np.uint8), **options),
                                      R.cross_entropy(x, target, **options))


def test_results_are_float64_arrays_and_zero_d_for_reductions():
    x = np.array([[0.1, 0.2], [0.3, -0.4]], dtype=np.float32)
    target = np.array([0, 1])
    for reduction in ("sum", "mean"):
        value = R.cross_entropy(x, target, reduction=reduction)
        assert isinstance(value, np.ndarray)
        assert value.shape == ()
        assert value.dtype == np.float64
    assert R.cross_entropy(x, target, reduction="none").dtype == np.float64
    assert R.softmax(x, 1).dtype == np.float64
    assert target.dtype == np.int64  # the target is not converted in place


def test_softmax_dtype_rounds_the_input_first():
    # 1 + 2^-12 is not representable in float16 (10 fraction bits) and rounds to 1.
    x = np.array([1.0 + 2.0**-12, 1.0])
    np.testing.assert_array_equal(R.softmax(x, 0, dtype="float16"), [0.5, 0.5])
    assert R.softmax(x, 0)[0] > 0.5
    np.testing.assert_array_equal(R.softmax(np.arange(3), 0, dtype=np.float64),
                                  R.softmax(np.arange(3.0), 0))


# =============================================================================================
# 3. Rejected inputs: torch's exception type, a message naming the argument and value
# =============================================================================================

X = np.random.default_rng(0).normal(size=(3, 4))
HALF = np.full((3, 4), 0.5)
IDX = np.array([0, 1, 2])

REJECTED = [
    # (id, function, args, kwargs, exception type, fragments the message must contain)
    ("target out of bounds", R.cross_entropy, (X, np.array([0, 1, 4])), {}, IndexError,
     ["Target 4 is out of bounds", "target=4"]),
    ("negative target", R.nll_loss, (X, np.array([0, -3, 1])), {}, IndexError,
     ["Target -3 is out of bounds", "ignore_index=-100"]),
    ("int32 target", R.cross_entropy, (X, IDX.astype(np.int32)), {}, RuntimeError,
     ["but got Int", "target dtype int32"]),
    ("int16 target", R.nll_loss, (X, IDX.astype(np.int16)), {}, RuntimeError,
     ["but got Short", "target"]),
    ("int8 target", R.nll_loss, (X, IDX.astype(np.int8)), {}, RuntimeError,
     ["but got Char", "target"]),
    ("float target of another shape", R.cross_entropy, (X, IDX.astype(np.float64)), {},
     RuntimeError, ["but got Double", "target"]),
    ("integer input", R.cross_entropy, (X.astype(np.int64), IDX), {}, NotImplementedError,
     ["'Long'", "input has dtype int64"]),
    ("integer input nll", R.nll_loss, (X.astype(np.int64), IDX), {}, NotImplementedError,
     ["'Long'", "input"]),
    ("batch mismatch", R.cross_entropy, (X, IDX[:2]), {}, ValueError,
     ["input batch_size (3)", "target batch_size (2)"]),
    ("spatial mismatch", R.cross_entropy, (np.zeros((2, 3, 5)), np.zeros((2, 4), np.int64)),
     {}, RuntimeError, ["Expected target size [2, 5], got [2, 4]", "target shape (2, 4)"]),
    ("spatial mismatch 4-d", R.nll_loss,
     (np.zeros((2, 3, 5, 6)), np.zeros((2, 4, 6), np.int64)), {}, RuntimeError,
     ["size mismatch", "target shape (2, 4, 6)"]),
    ("uint8 target with K-dim input", R.nll_loss,
     (np.zeros((2, 3, 4)), np.zeros((2, 4), np.uint8)), {}, RuntimeError,
     ["found Byte", "target dtype uint8"]),
    ("2-d index target", R.cross_entropy, (X, np.zeros((3, 2), np.int64)), {}, RuntimeError,
     ["multi-target not supported", "target shape (3, 2)"]),
    ("0-d input nll", R.nll_loss, (np.float64(1.0), np.int64(0)), {}, ValueError,
     ["Expected 1 or more dimensions (got 0)", "input"]),
    ("0-d input cross_entropy", R.cross_entropy, (np.float64(1.0), np.array([0])), {},
     IndexError, ["input of shape ()"]),
    ("(C,) input with a 2-element target", R.cross_entropy, (X[0], np.array([0, 1])), {},
     ValueError, ["1D target must have size 1", "target size: 2"]),
    ("weight of wrong size", R.cross_entropy, (X, IDX), {"weight": np.ones(3)}, RuntimeError,
     ["all 4 classes", "weight tensor of shape: [3]"]),
    ("weight of wrong rank", R.nll_loss, (X, IDX), {"weight": np.ones((4, 1))}, RuntimeError,
     ["weight tensor of shape: [4, 1]"]),
    ("weight of wrong dtype", R.cross_entropy, (X, IDX), {"weight": np.ones(4, np.float32)},
     RuntimeError, ["expected scalar type Double but found Float", "weight dtype float32"]),
    ("probability weight of wrong size", R.cross_entropy, (X, HALF), {"weight": np.ones(3)},
     RuntimeError, ["weight tensor of shape: [3]"]),
    ("unknown reduction", R.cross_entropy, (X, IDX), {"reduction": "avg"}, ValueError,
     ["avg is not a valid value for reduction", "reduction='avg'"]),
    ("unknown reduction bce", R.binary_cross_entropy, (HALF, HALF), {"reduction": "Mean"},
     ValueError, ["reduction='Mean'"]),
    ("int target with input's shape", R.cross_entropy, (X, np.zeros((3, 4), np.int64)), {},
     RuntimeError, ["Expected floating point type for target", "target dtype int64"]),
    ("ignore_index >= 0 with probabilities", R.cross_entropy, (X, HALF), {"ignore_index": 0},
     RuntimeError, ["ignore_index is not supported", "ignore_index=0"]),
    ("non-integer ignore_index", R.cross_entropy, (X, IDX), {"ignore_index": 1.5}, TypeError,
     ["ignore_index=1.5"]),
    ("label_smoothing > 1", R.cross_entropy, (X, IDX), {"label_smoothing": 1.5}, RuntimeError,
     ["label_smoothing must be between 0.0 and 1.0. Got: 1.5", "label_smoothing=1.5"]),
    ("label_smoothing < 0 (deliberate divergence)", R.cross_entropy, (X, IDX),
     {"label_smoothing": -0.1}, ValueError, ["label_smoothing=-0.1", "134767"]),
    ("label_smoothing NaN (deliberate divergence)", R.cross_entropy, (X, HALF),
     {"label_smoothing": float("nan")}, ValueError, ["label_smoothing=nan"]),
    ("BCE input above 1", R.binary_cross_entropy, (HALF + 1, HALF), {}, RuntimeError,
     ["all elements of input should be between 0 and 1", "1.5"]),
    ("BCE NaN target", R.binary_cross_entropy, (HALF, HALF * np.nan), {}, RuntimeError,
     ["all elements of target should be between 0 and 1", "nan"]),
    ("BCE shape mismatch", R.binary_cross_entropy, (HALF, HALF[:1]), {}, ValueError,
     ["target size ((1, 4))", "input size ((3, 4))"]),
    ("BCE target dtype", R.binary_cross_entropy, (HALF, HALF.astype(np.float32)), {},
     RuntimeError, ["Found dtype Float but expected Double", "target dtype float32"]),
    ("BCE integer input", R.binary_cross_entropy, (HALF.astype(np.int64),) * 2, {},
     NotImplementedError, ["'Long'", "input"]),
    ("BCE weight enlarges", R.binary_cross_entropy, (HALF[:1], HALF[:1]),
     {"weight": np.ones((3, 4))}, RuntimeError, ["doesn't match the broadcast shape", "weight"]),
    ("BCE weight does not broadcast", R.binary_cross_entropy, (HALF, HALF),
     {"weight": np.ones(3)}, RuntimeError, ["weight of shape [3]"]),
    ("BCE-with-logits shape mismatch", R.binary_cross_entropy_with_logits, (X, HALF[:2]), {},
     ValueError, ["Target size ((2, 4))", "input size ((3, 4))"]),
    ("pos_weight does not broadcast", R.binary_cross_entropy_with_logits, (X, HALF),
     {"pos_weight": np.ones(3)}, RuntimeError, ["pos_weight of shape [3]"]),
    ("pos_weight enlarges", R.binary_cross_entropy_with_logits, (X, HALF),
     {"pos_weight": np.ones((2, 3, 4))}, RuntimeError, ["pos_weight of shape [2, 3, 4]"]),
    ("BCE-with-logits integer target", R.binary_cross_entropy_with_logits,
     (X, HALF.astype(np.int64)), {}, RuntimeError, ["target dtype int64"]),
    ("softmax dim out of range", R.softmax, (X, 2), {}, IndexError,
     ["expected to be in range of [-2, 1], but got 2", "dim=2"]),
    ("log_softmax integer input", R.log_softmax, (X.astype(np.int32), 1), {},
     NotImplementedError, ["'Int'", "input has dtype int32"]),
    ("softmax integer dtype", R.softmax, (X, 1), {"dtype": np.int64}, NotImplementedError,
     ["dtype="]),
    ("logsumexp repeated dim", R.logsumexp, (X, (1, -1)), {}, RuntimeError,
     ["appears multiple times", "dim=(1, -1)"]),
    ("logsumexp dim out of range", R.logsumexp, (X, -3), {}, IndexError, ["dim=-3"]),
    ("grad_output of the wrong shape", R.cross_entropy_backward, (np.ones(3), X, IDX), {},
     ValueError, ["grad_output has shape (3,)", "()"]),
    ("hvp vector of the wrong shape", R.cross_entropy_hvp, (np.ones(4), 1.0, X, IDX), {},
     ValueError, ["vector has shape (4,)"]),
    ("target gradient of an index target", R.cross_entropy_target_backward, (1.0, X, IDX), {},
     TypeError, ["no gradient", "class-index target"]),
]


@pytest.mark.parametrize(("function", "args", "kwargs", "error", "fragments"),
                         [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED])
def test_rejected_inputs_raise_torchs_exception_type_naming_the_argument(
        function, args, kwargs, error, fragments):
    with pytest.raises(error) as info:
        function(*args, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_deliberate_divergence_is_recorded():
    from lossproofs import ledger

    entry = ledger.divergence("cross_entropy accepts a negative label_smoothing")
    assert "134767" in entry.upstream
    for function in (R.cross_entropy_backward, R.cross_entropy_target_backward):
        with pytest.raises(ValueError, match="label_smoothing"):
            function(1.0, X, HALF, label_smoothing=-0.5)


def test_public_names():
    for name in R.__all__:
        assert callable(getattr(R, name)) or name.isupper()


def test_uint8_target_with_weight_smoothing_and_mean_is_computed():
    """torch raises here (a ledger entry); the reference computes the loss, which
    cannot depend on the integer type of the class indices."""
    kw = {"weight": np.array([1.0, 2.0, 0.5, 1.5]), "label_smoothing": 0.1}
    assert R.cross_entropy(X, IDX.astype(np.uint8), **kw) == R.cross_entropy(X, IDX, **kw)
