"""The exact oracle is itself tested: against the float64 reference on benign inputs, against
closed forms worked by hand, against a direct high-precision mpmath evaluation on a cancelling
case, and its rounding and ulp conventions on their edge cases."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from lossproofs import oracle, reference

RNG_SEED = 1234


def _benign(seed: int):
    rng = np.random.default_rng([RNG_SEED, seed])
    x = rng.uniform(-5, 5, (3, 5))
    t = rng.integers(0, 5, 3)
    soft = rng.dirichlet(np.ones(5), 3)
    w = rng.uniform(0.5, 2, 5)
    p = rng.uniform(0.05, 0.95, (3, 4))
    y = rng.uniform(0, 1, (3, 4))
    g = rng.uniform(-1, 1, (3, 5))
    return x, t, soft, w, p, y, g


# (name, args builder, kwargs, grad shape: "input", "scalar", "rows")
CASES = [
    ("softmax", lambda b: (b[0],), {"dim": 1}, "input"),
    ("log_softmax", lambda b: (b[0],), {"dim": 1}, "input"),
    ("logsumexp", lambda b: (b[0],), {"dim": 1}, "rows"),
    ("nll_loss", lambda b: (b[0], b[1]), {"weight": "w", "reduction": "mean"}, "scalar"),
    ("cross_entropy", lambda b: (b[0], b[1]),
     {"weight": "w", "reduction": "sum", "label_smoothing": 0.2}, "scalar"),
    ("cross_entropy", lambda b: (b[0], b[2]), {"reduction": "mean"}, "scalar"),
    ("cross_entropy", lambda b: (b[0], b[1]), {"reduction": "none"}, "rows"),
    ("binary_cross_entropy", lambda b: (b[4], b[5]), {"reduction": "mean"}, "scalar"),
    ("binary_cross_entropy_with_logits", lambda b: (b[0][:, :4], b[5]),
     {"reduction": "none", "pos_weight": "pw"}, "input4"),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("name", "build", "kw", "grad_kind"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_oracle_matches_float64_reference_on_benign_inputs(seed, name, build, kw, grad_kind):
    b = _benign(seed)
    args = build(b)
    kwargs = {k: (b[3] if v == "w" else np.array([0.5, 1.0, 2.0, 3.0]) if v == "pw" else v)
              for k, v in kw.items()}
    exact = oracle.__dict__[name](*args, **kwargs)
    ref = getattr(reference, name)(*args, **kwargs)
    # The reference is float64 and well-conditioned here: a few ulps of float64.
    np.testing.assert_allclose(exact, ref, rtol=1e-13, atol=1e-15)
    g = {"input": b[6], "scalar": np.array(0.75), "rows": b[6][:, 0],
         "input4": b[6][:, :4]}[grad_kind]
    exact_g = oracle.__dict__[name + "_backward"](g, *args, **kwargs)
    ref_g = getattr(reference, name + "_backward")(g, *args, **kwargs)
    np.testing.assert_allclose(exact_g, ref_g, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("c", [1, 2, 3, 7, 64])
def test_equal_logits_give_uniform_probabilities_and_log_c(c):
    x = np.full((2, c), 3.25)
    # 1/C and −log C by hand; Python's division is correctly rounded, math.log within 1 ulp.
    assert np.all(oracle.softmax(x, 1) == 1.0 / c)
    assert np.all(oracle.ulp_distance(oracle.log_softmax(x, 1), -math.log(c), "float64") <= 1)
    assert np.all(oracle.ulp_distance(oracle.logsumexp(x, 1), 3.25 + math.log(c),
                                      "float64") <= 1)
    t = np.zeros(2, dtype=np.int64)
    assert oracle.ulp_distance(oracle.cross_entropy(x, t), math.log(c), "float64") <= 1
    # d/dx of the mean CE: (1/C − δ_ct)/N; uniform smoothing with uniform weights cancels
    # exactly in p·Σw − w, so the oracle must give exactly these values.
    grad = oracle.cross_entropy_backward(1.0, x, t, label_smoothing=0.3)
    expected = np.full((2, c), 1.0 / c)
    expected[:, 0] -= 1.0
    np.testing.assert_allclose(grad, 0.7 * expected / 2, rtol=1e-15, atol=0)
    # A constant upstream gradient gives an exactly zero softmax gradient (Σ y = 1).
    assert np.all(oracle.softmax_backward(np.ones((2, c)), x, 1) == 0.0)


@pytest.mark.parametrize("gap", [1.0, 40.0, 200.0, 700.0])
def test_two_classes_are_a_sigmoid(gap):
    x = np.array([[0.0, -gap]])
    lp = oracle.log_softmax(x, 1)
    # log_softmax([0, −a]) = (−log1p(e^{−a}), −a − log1p(e^{−a})), by hand at 300 bits.
    with mpmath.workprec(300):
        t = mpmath.log1p(mpmath.exp(-gap))
        tail, second = oracle.round_to_float64(t), oracle.round_to_float64(-gap - t)
    assert lp[0, 0] == -tail and lp[0, 1] == second
    # BCE with logits at x = −a, y = 0 is softplus(−a) = log1p(e^{−a}): the same number.
    bce = oracle.binary_cross_entropy_with_logits(np.array([-gap]), np.array([0.0]))
    assert bce == tail
    # A dominating class: softmax − one-hot is −Σ_{j≠k} p_j, not rounded to 0.
    grad = oracle.cross_entropy_backward(1.0, x, np.array([0]))
    assert grad[0, 0] < 0 and oracle.ulp_distance(grad[0, 0], -grad[0, 1], "float64") <= 1


def test_bce_follows_torch_definition_at_the_edges():
    # log clamps at −100: p = 0 with y = 1 costs exactly 100; the gradient floor is f32(1e-12).
    assert oracle.binary_cross_entropy(np.array([0.0]), np.array([1.0])) == 100.0
    g = oracle.binary_cross_entropy_backward(1.0, np.array([0.0]), np.array([1.0]))
    assert g[0] == -1.0 / float(np.float32(1e-12))
    # x = 0, y = 1/2: loss log 2, gradient exactly 0 (σ(0) = 1/2).
    assert oracle.ulp_distance(oracle.binary_cross_entropy_with_logits(
        np.array([0.0]), np.array([0.5])), math.log(2), "float64") <= 1
    assert oracle.binary_cross_entropy_with_logits_backward(
        1.0, np.array([0.0]), np.array([0.5]))[0] == 0.0


def test_a_cancelling_logsumexp_matches_direct_high_precision():
    # x = [−ln 2, −ln 2] rounded: the exact logsumexp is ≈ 1e-17 after cancelling m = −0.69…;
    # Ziv's strategy must raise the precision until the float64 is right.
    a = -math.log(2)
    with mpmath.workprec(2000):
        direct = mpmath.mpf(a) + mpmath.log(2)
    assert oracle.logsumexp(np.array([[a, a]]), 1)[0] == oracle.round_to_float64(direct)


def test_round_to_float64_rounds_to_nearest_even_with_gradual_underflow():
    with mpmath.workprec(3000):
        m = mpmath.mpf
        assert oracle.round_to_float64(1 + m(2) ** -53) == 1.0  # tie → even
        assert oracle.round_to_float64(1 + 3 * m(2) ** -53) == 1 + 2.0**-51  # tie → even (up)
        assert oracle.round_to_float64(m(2) ** -1075) == 0.0  # half the smallest subnormal
        assert oracle.round_to_float64(3 * m(2) ** -1075) == 2.0**-1073
        assert oracle.round_to_float64(m(2) ** -1074 * (1 + m(2) ** -60)) == 2.0**-1074
        assert oracle.round_to_float64(m(2) ** 1024) == math.inf
        assert oracle.round_to_float64(-m(10) ** -400) == 0.0
        assert math.isnan(oracle.round_to_float64(mpmath.nan))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_ulp_distance_conventions(dtype):
    d = oracle.ulp_distance
    assert d(0.0, -0.0, dtype) == 0  # ±0 are the same point
    assert d(np.nan, np.nan, dtype) == 0 and d(np.inf, np.inf, dtype) == 0
    assert d(np.nan, 1.0, dtype) == np.inf and d(np.inf, -np.inf, dtype) == np.inf
    assert d(np.inf, 1.0, dtype) == np.inf
    eps = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10,
           "bfloat16": 2.0**-7}[dtype]
    tiny = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24,
            "bfloat16": 2.0**-133}[dtype]
    assert d(1.0, 1.0 + eps, dtype) == 1  # next value up
    assert d(1.0, 1.0 - eps / 2, dtype) == 1  # next value down: half the spacing below 1
    if dtype != "float64":  # 1 + eps/4 is a float64 between two points of the narrower grid
        assert d(1.0, 1.0 + eps / 4, dtype) == 0.25  # fractions of the local spacing
    assert d(2.0 - eps, 2.0 + 2 * eps, dtype) == 2  # each binade counts its own spacing
    assert d(0.0, 3 * tiny, dtype) == 3  # subnormals are evenly spaced, across zero too
    assert d(-tiny, tiny, dtype) == 2
    assert d(-1.0, 1.0, dtype) == d(-1.0, 0.0, dtype) * 2  # symmetric about zero
    assert oracle.ulp_size(1.0, dtype) == eps


def test_ulp_distance_of_bfloat16_matches_torch_grid():
    import torch

    v = torch.tensor([1.0, 3.0, 1e-40, 1e30], dtype=torch.bfloat16)
    nxt = torch.nextafter(v, torch.full_like(v, float("inf")))
    assert np.all(oracle.ulp_distance(v.double().numpy(), nxt.double().numpy(),
                                      "bfloat16") == 1)


def test_oracle_rejects_bad_arguments_by_name():
    with pytest.raises(ValueError, match="reduction='avg'"):
        oracle.nll_loss(np.zeros((2, 3)), np.array([0, 1]), reduction="avg")
    with pytest.raises(IndexError, match="dim=2"):
        oracle.softmax(np.zeros((2, 3)), 2)
    with pytest.raises(IndexError, match="target 5"):
        oracle.cross_entropy(np.zeros((2, 3)), np.array([0, 5]))
    with pytest.raises(ValueError, match="dtype='float8'"):
        oracle.ulp_distance(1.0, 1.0, "float8")
    with pytest.raises(ValueError, match=r"label_smoothing=1\.5"):
        oracle.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5)


# The formats' limits, written from IEEE 754 (and bfloat16's 8-bit significand) by hand.
FORMATS = {  # eps, smallest normal, smallest subnormal, largest finite
    "float64": (2.0**-52, 2.0**-1022, 2.0**-1074, (2 - 2.0**-52) * 2.0**1023),
    "float32": (2.0**-23, 2.0**-126, 2.0**-149, (2 - 2.0**-23) * 2.0**127),
    "float16": (2.0**-10, 2.0**-14, 2.0**-24, 65504.0),
    "bfloat16": (2.0**-7, 2.0**-126, 2.0**-133, (2 - 2.0**-7) * 2.0**127),
}


@pytest.mark.parametrize("dtype", sorted(FORMATS))
def test_dtype_facts_are_the_formats_limits(dtype):
    from lossproofs import dtypes

    assert dtypes.DTYPES == ("float64", "float32", "float16", "bfloat16")
    eps, normal, subnormal, top = FORMATS[dtype]
    for name in (dtype, f"torch.{dtype}"):
        assert dtypes.eps(name) == eps and dtypes.tiny(name) == normal
        assert dtypes.smallest_subnormal(name) == subnormal and dtypes.max_finite(name) == top
    # the largest finite value is the top of the oracle's grid: representable, the next ulp not
    assert oracle.representable(np.array([top, -top]), dtype).all()
    with np.errstate(over="ignore"):  # float64's next value up is inf itself
        beyond = np.array([top + oracle.ulp_size(top, dtype)])
    assert not oracle.representable(beyond, dtype).any()
    assert dtypes.BCE_EPSILON == float(np.float32(1e-12)) and dtypes.BCE_LOG_CLAMP == -100.0
