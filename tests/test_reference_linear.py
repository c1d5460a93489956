"""The linear_cross_entropy reference itself: central finite differences for all four gradients,
agreement with torch's float64 reference path (``options=None``) on hand-made cases, and the
inputs torch rejects, rejected with the same exception type and a message naming the argument.

Finite differences: ``(f(a + hv) − f(a − hv))/2h`` along a random direction ``v`` against
``⟨grad, v⟩``; the truncation error is O(h²·f''') and the rounding error O(ε·|f|/h), so with
h = 1e-6 on logits of size O(1) agreement to 1e-7 relative is what a correct gradient gives and a
wrong factor (a dropped 1/N, a transposed matmul) misses by orders of magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossproofs import reference
from lossproofs.comparison import linear_error_scales
from lossproofs.oracle import linear as oracle_linear

RNG_SEED = 20261129
FD_STEP = 1e-6
FD_RTOL = 1e-7  # see the module docstring: central differences at h = 1e-6


def _case(kind: str, rng: np.random.Generator):
    """Hand-made arguments: ``(input, linear_weight, target, kwargs)``."""
    n, d, c = 4, 3, 5
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(c, d))
    if kind == "index":
        return x, w, np.array([0, 4, 2, 1]), {}
    if kind == "index_everything":
        return x, w, np.array([0, 4, -100, 3]), dict(
            linear_bias=rng.normal(size=c), weight=rng.uniform(0.5, 2, size=c),
            label_smoothing=0.2)
    if kind == "ignore_real_class":
        return x, w, np.array([2, 4, 2, 1]), dict(ignore_index=2, weight=rng.uniform(0.5, 2, c))
    if kind == "probability":
        p = rng.uniform(size=(n, c))
        return x, w, p / p.sum(1, keepdims=True), dict(
            linear_bias=rng.normal(size=c), weight=rng.uniform(0.5, 2, c), label_smoothing=0.1)
    if kind == "unbatched":
        return x[0], w, np.array(3), dict(linear_bias=rng.normal(size=c))
    if kind == "unbatched_probability":
        p = rng.uniform(size=c)
        return x[0], w, p / p.sum(), {}
    if kind == "kdim":
        wk = rng.normal(size=(c, 2, 3, d))
        t = rng.integers(0, c, size=(n, 2, 3))
        t[0, 0, 0] = -100
        return x, wk, t, dict(linear_bias=rng.normal(size=(c, 2, 3)),
                              weight=rng.uniform(0.5, 2, c))
    if kind == "kdim_probability":
        wk = rng.normal(size=(c, 2, d))
        p = rng.uniform(size=(n, c, 2))
        return x, wk, p / p.sum(1, keepdims=True), dict(label_smoothing=0.3)
    raise ValueError(kind)


KINDS = ["index", "index_everything", "ignore_real_class", "probability", "unbatched",
         "unbatched_probability", "kdim", "kdim_probability"]


def _torch_reference(x, w, t, reduction, kwargs, requires_grad=False):
    tx = torch.tensor(x, requires_grad=requires_grad)
    tw = torch.tensor(w, requires_grad=requires_grad)
    tt = torch.tensor(t)
    kw = {k: torch.tensor(v, requires_grad=requires_grad and k == "linear_bias")
          if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    return F.linear_cross_entropy(tx, tw, tt, reduction=reduction, options=None, **kw), tx, tw, kw


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("kind", KINDS)
def test_finite_differences(kind, reduction):
    rng = np.random.default_rng(RNG_SEED)
    x, w, t, kwargs = _case(kind, rng)
    out = reference.linear_cross_entropy(x, w, t, reduction=reduction, **kwargs)
    g = rng.uniform(-2, 2, size=out.shape)
    gi, gw, gb = reference.linear_cross_entropy_backward(g, x, w, t, reduction=reduction,
                                                         **kwargs)

    def f(**change):
        args = {"input": x, "linear_weight": w, "target": t, **kwargs, **change}
        return float(np.sum(g * reference.linear_cross_entropy(reduction=reduction, **args)))

    wrt = {"input": (x, gi), "linear_weight": (w, gw)}
    if "linear_bias" in kwargs:
        wrt["linear_bias"] = (kwargs["linear_bias"], gb)
    else:
        assert gb is None
    if t.dtype.kind == "f":
        wrt["target"] = (t, reference.linear_cross_entropy_target_backward(
            g, x, w, t, reduction=reduction, **kwargs))
    for name, (value, grad) in wrt.items():
        assert grad.shape == value.shape, name
        v = rng.normal(size=value.shape)
        numeric = (f(**{name: value + FD_STEP * v}) - f(**{name: value - FD_STEP * v})) / (
            2 * FD_STEP)
        analytic = float(np.sum(grad * v))
        assert analytic == pytest.approx(numeric, rel=FD_RTOL, abs=FD_RTOL), name


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_torch_float64_reference_path(kind, reduction):
    """torch's ``options=None`` path is linear then cross_entropy; in float64 it must agree with
    the reference to rounding (a few float64 ulps of the magnitudes involved)."""
    rng = np.random.default_rng(RNG_SEED + 1)
    x, w, t, kwargs = _case(kind, rng)
    out, tx, tw, kw = _torch_reference(x, w, t, reduction, kwargs, requires_grad=True)
    expected = reference.linear_cross_entropy(x, w, t, reduction=reduction, **kwargs)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-13, atol=1e-13)
    g = rng.uniform(-2, 2, size=expected.shape)
    leaves = [tx, tw] + ([kw["linear_bias"]] if "linear_bias" in kw else [])
    got = torch.autograd.grad(out, leaves, torch.tensor(g))
    want = reference.linear_cross_entropy_backward(g, x, w, t, reduction=reduction, **kwargs)
    for a, e in zip(got, want):
        np.testing.assert_allclose(a.numpy(), e, rtol=1e-12, atol=1e-13)


def test_equals_cross_entropy_of_the_logits():
    """The identity the reference is built on, checked against an independent einsum."""
    rng = np.random.default_rng(RNG_SEED + 2)
    x, w, t, kwargs = _case("kdim", rng)
    z = np.einsum("ni,cabi->ncab", x, w) + kwargs["linear_bias"]
    expected = reference.cross_entropy(z, t, weight=kwargs["weight"], reduction="sum")
    got = reference.linear_cross_entropy(x, w, t, reduction="sum", **kwargs)
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_ignore_index_none_means_minus_100():
    rng = np.random.default_rng(RNG_SEED + 3)
    x, w, _, _ = _case("index", rng)
    t = np.array([0, -100, 2, 1])
    a = reference.linear_cross_entropy(x, w, t)
    b = reference.linear_cross_entropy(x, w, t, ignore_index=-100)
    assert a == b
    # Ignoring one row of four is the mean over the other three.
    np.testing.assert_allclose(a, reference.linear_cross_entropy(x[[0, 2, 3]], w, t[[0, 2, 3]]))


def test_zero_in_features_gives_the_bias_logits():
    """``in = 0``: the matmul is empty, the logits are the bias (a uniform row without it)."""
    t = np.array([0, 1])
    x = np.zeros((2, 0))
    w = np.zeros((3, 0))
    np.testing.assert_allclose(reference.linear_cross_entropy(x, w, t), np.log(3.0))
    b = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(reference.linear_cross_entropy(x, w, t, linear_bias=b),
                               reference.cross_entropy(np.stack([b, b]), t))


# -- rejected input ------------------------------------------------------------------------------
def _bad_cases():
    x = np.ones((2, 3))
    w = np.ones((4, 3))
    t = np.array([0, 1])
    p = np.full((2, 4), 0.25)
    return [
        ("0-d input", (x[0, 0], w, t), {}, RuntimeError, "input"),
        ("3-d input", (x[None], w, t), {}, RuntimeError, "input"),
        ("1-d weight", (x, w[0], t), {}, RuntimeError, "linear_weight"),
        ("in_features", (x, w[:, :2], t), {}, RuntimeError, "in_features"),
        ("bias shape", (x, w, t), {"linear_bias": np.ones(3)}, RuntimeError, "linear_bias"),
        ("kdim bias (C,)", (x, np.ones((4, 2, 3)), np.zeros((2, 2), np.int64)),
         {"linear_bias": np.ones(4)}, RuntimeError, "linear_bias"),
        ("kdim unbatched", (x[0], np.ones((4, 2, 3)), np.zeros(2, np.int64)), {}, RuntimeError,
         "unbatched"),
        ("prob + ignore_index", (x, w, p), {"ignore_index": -100}, RuntimeError,
         "ignore_index"),
        ("weight dtype", (x, w.astype(np.float32), t), {}, RuntimeError, "linear_weight"),
        ("bias dtype", (x, w, t), {"linear_bias": np.ones(4, np.float32)}, RuntimeError,
         "linear_bias"),
        ("integer input", (x.astype(np.int64), w.astype(np.int64), t), {}, NotImplementedError,
         "input"),
        ("target out of bounds", (x, w, np.array([0, 4])), {}, IndexError, "Target 4"),
        ("negative target", (x, w, np.array([0, -3])), {}, IndexError, "Target -3"),
        ("int32 target", (x, w, t.astype(np.int32)), {}, RuntimeError, "target dtype"),
        ("batch mismatch", (x, w, np.array([0, 1, 2])), {}, ValueError, "batch_size"),
        ("class weight size", (x, w, t), {"weight": np.ones(3)}, RuntimeError, "weight"),
        ("class weight dtype", (x, w, t), {"weight": np.ones(4, np.float32)}, RuntimeError,
         "weight dtype"),
        ("reduction", (x, w, t), {"reduction": "avg"}, ValueError, "reduction"),
        ("label_smoothing > 1", (x, w, t), {"label_smoothing": 1.5}, RuntimeError,
         "label_smoothing"),
        ("float ignore_index", (x, w, t), {"ignore_index": 1.0}, TypeError, "ignore_index"),
        ("integer prob target", (x, w, p.astype(np.int64)), {}, RuntimeError, "floating"),
    ]


@pytest.mark.parametrize("name,args,kwargs,exc,word", _bad_cases(), ids=lambda v: v
                         if isinstance(v, str) else None)
def test_rejects_as_torch_does(name, args, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        reference.linear_cross_entropy(*args, **kwargs)
    targs = [torch.from_numpy(np.array(a)) for a in args]
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with pytest.raises(exc):
        F.linear_cross_entropy(*targs, **tkw)


def test_target_gradient_needs_probability_targets():
    rng = np.random.default_rng(RNG_SEED + 4)
    x, w, t, _ = _case("index", rng)
    with pytest.raises(TypeError, match="class-index target"):
        reference.linear_cross_entropy_target_backward(np.array(1.0), x, w, t)


def test_grad_output_shape_is_checked():
    rng = np.random.default_rng(RNG_SEED + 5)
    x, w, t, _ = _case("index", rng)
    with pytest.raises(ValueError, match="grad_output"):
        reference.linear_cross_entropy_backward(np.ones(3), x, w, t, reduction="none")


# -- the reference against the exact oracle ------------------------------------------------------
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("kind", KINDS)
def test_reference_agrees_with_the_exact_oracle(kind, reduction):
    """The float64 reference is within the float64 bound of the exact (mpmath) value, for the
    loss and the three gradients, at the linear error scales."""
    from lossproofs.cases import Case
    from lossproofs.checks import compare

    rng = np.random.default_rng(RNG_SEED + 6)
    x, w, t, kwargs = _case(kind, rng)
    case = Case("linear_cross_entropy", (x, w, t), {**kwargs, "reduction": reduction})
    ref = reference.linear_cross_entropy(x, w, t, reduction=reduction, **kwargs)
    exact = oracle_linear.linear_cross_entropy(x, w, t, reduction=reduction, **kwargs)
    scales = linear_error_scales(case)
    c = compare(ref, exact, "float64", "forward", scales["forward"])
    assert c.ok, c.message("reference forward vs oracle", ref, exact)
    g = rng.uniform(-2, 2, size=np.shape(ref))
    got = reference.linear_cross_entropy_backward(g, x, w, t, reduction=reduction, **kwargs)
    want = oracle_linear.linear_cross_entropy_backward(g, x, w, t, reduction=reduction, **kwargs)
    scales = linear_error_scales(case, g)
    for name, a, e in zip(("input", "linear_weight", "linear_bias"), got, want):
        if e is None:
            assert a is None
            continue
        c = compare(a, e, "float64", "gradient", scales[name])
        assert c.ok, c.message(f"reference {name} gradient vs oracle", a, e)


def test_oracle_rejects_what_the_reference_rejects():
    x, w = np.ones((2, 3)), np.ones((4, 3))
    with pytest.raises(IndexError, match="Target 4"):
        oracle_linear.linear_cross_entropy(x, w, np.array([0, 4]))
    with pytest.raises(RuntimeError, match="in_features"):
        oracle_linear.linear_cross_entropy(x, w[:, :2], np.array([0, 1]))
