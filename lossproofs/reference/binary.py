"""binary_cross_entropy and binary_cross_entropy_with_logits: values, gradients, target
gradients and the Hessian-vector product."""

from __future__ import annotations

import numpy as np

from lossproofs import _validation as v
from lossproofs.reference._kernels import (
    _ERRSTATE,
    _expected_output_shape,
    _log_sigmoid,
    _reduce,
    _sigmoid,
    _upstream,
)
from lossproofs.reference.constants import BCE_EPSILON, BCE_LOG_CLAMP


def _bce_plan(input, target, weight, reduction):
    reduction = v.check_reduction(reduction)
    x = v.as_array(input, "input")
    y = v.as_array(target, "target")
    weight = v.check_bce(x, y, weight)
    w = np.ones(()) if weight is None else weight.astype(np.float64)
    return dict(shape=x.shape, p=x.astype(np.float64), y=y.astype(np.float64), w=w,
                reduction=reduction, denominator=np.float64(x.size))


def _bce_upstream(plan, grad_output) -> np.ndarray:
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    return _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])


def binary_cross_entropy(input, target, weight=None, reduction="mean") -> np.ndarray:
    """``ℓ = w·[(y−1)·max(log1p(−p), −100) − y·max(log p, −100)]``, reduced; float64.

    Mirrors ``torch.nn.functional.binary_cross_entropy``. ``input`` p and ``target`` y have
    the same shape and dtype, values in [0, 1]; ``weight`` broadcasts to that shape without
    enlarging it. ``"none"``: input's shape; ``"sum"``; ``"mean"`` divides by numel (0-d).
    Special values: the −100 clamp keeps p = 0 or 1 finite (loss 100 per wrong-side element);
    an empty input gives mean NaN, sum 0. Errors: values outside [0, 1] or NaN, shape or
    dtype mismatch, weights that enlarge the output — torch's types.
    """
    plan = _bce_plan(input, target, weight, reduction)
    p, y = plan["p"], plan["y"]
    with np.errstate(**_ERRSTATE):
        # log(1 − p) = log1p(−p) keeps accuracy for small p; torch clamps both logs at −100.
        log_one_minus_p = np.maximum(np.log1p(-p), BCE_LOG_CLAMP)
        log_p = np.maximum(np.log(p), BCE_LOG_CLAMP)
        loss = ((y - 1.0) * log_one_minus_p - y * log_p) * plan["w"]
    return _reduce(loss, plan["reduction"], plan["denominator"])


def binary_cross_entropy_backward(grad_output, input, target, weight=None,
                                  reduction="mean") -> np.ndarray:
    """∂/∂input of binary_cross_entropy: ``(p − y)/max((1−p)·p, ε)·w·s``; float64.

    ε = float32(1e-12) = 9.999999960041972e-13 as in torch's kernel. This is not the derivative
    of the clamped forward: at p = 0 or 1 it is the finite (p − y)/ε (about ∓1e12 for y ≠ p),
    and 0 where p = y. ``s`` = g (none, input's shape), g (sum) or g/numel (mean). Result has
    the input's shape.
    """
    plan = _bce_plan(input, target, weight, reduction)
    upstream = _bce_upstream(plan, grad_output)
    p, y = plan["p"], plan["y"]
    with np.errstate(**_ERRSTATE):
        # d/dp [−y log p − (1−y) log(1−p)] = (p − y) / (p(1−p)); the floor ε avoids 0/0 at p∈{0,1}.
        return (p - y) / np.maximum((1.0 - p) * p, BCE_EPSILON) * upstream * plan["w"]


def binary_cross_entropy_target_backward(grad_output, input, target, weight=None,
                                         reduction="mean") -> np.ndarray:
    """∂/∂target of binary_cross_entropy: ``−logit(p)·w·s = −(log p − log1p(−p))·w·s``; float64.

    No clamp, as torch: p = 0 gives +inf·s and p = 1 gives −inf·s. Result has the target's
    shape; ``s`` as in :func:`binary_cross_entropy_backward`.
    """
    plan = _bce_plan(input, target, weight, reduction)
    upstream = _bce_upstream(plan, grad_output)
    p = plan["p"]
    with np.errstate(**_ERRSTATE):
        # logit(p) = log p − log1p(−p): accurate near 0 and 1, exactly ±inf at the ends.
        return -(np.log(p) - np.log1p(-p)) * upstream * plan["w"]


# =============================================================================================
# binary_cross_entropy_with_logits
# =============================================================================================

def _bce_logits_plan(input, target, weight, reduction, pos_weight):
    reduction = v.check_reduction(reduction)
    x = v.as_array(input, "input")
    y = v.as_array(target, "target")
    weight, pos_weight = v.check_bce_with_logits(x, y, weight, pos_weight)
    return dict(shape=x.shape, x=x.astype(np.float64), y=y.astype(np.float64),
                w=np.ones(()) if weight is None else weight.astype(np.float64),
                pw=None if pos_weight is None else pos_weight.astype(np.float64),
                reduction=reduction, denominator=np.float64(x.size))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None) -> np.ndarray:
    """``ℓ = w·[(1−y)·x − lw·log σ(x)]`` with ``lw = (pw − 1)·y + 1``, reduced; float64.

    Mirrors ``torch.nn.functional.binary_cross_entropy_with_logits``. ``input`` x (logits) and
    ``target`` y have the same shape (y floating, any value); ``weight`` and ``pos_weight`` pw
    broadcast to that shape without enlarging it (pos_weight ``(C,)`` runs along the last
    dim). Evaluated as ``(1−y)·softplus(x) + pw·y·softplus(−x)`` (the same function, without
    the cancellation of torch's form when x agrees with y). Reduction as BCE.
    Special values, mirroring torch's formula: x = +inf with y = 1 and x = −inf with y ∈ {0, 1}
    give NaN (0·inf or inf − inf; pytorch#102894), x = +inf with y = 0 gives +inf.
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    x, y = plan["x"], plan["y"]
    pw = 1.0 if plan["pw"] is None else plan["pw"]
    with np.errstate(**_ERRSTATE):
        # torch's form, kept for its special values only (NaN from 0·inf and inf − inf).
        torch_form = (1.0 - y) * x - _log_sigmoid(x) * ((pw - 1.0) * y + 1.0)
        # (1−y)·x − lw·log σ(x) = (1−y)·softplus(x) + pw·y·softplus(−x), using
        # x = softplus(x) − softplus(−x) and log σ(x) = −softplus(−x): a sum of non-negative
        # terms (for y in [0, 1], pw ≥ 0), so no cancellation when x agrees with y.
        accurate = (1.0 - y) * -_log_sigmoid(-x) + pw * y * -_log_sigmoid(x)
        loss = np.where(np.isnan(torch_form), np.nan, accurate) * plan["w"]
    return _reduce(loss, plan["reduction"], plan["denominator"])


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None,
                                              reduction="mean", pos_weight=None) -> np.ndarray:
    """∂/∂input: ``((pw·y + 1 − y)·σ(x) − pw·y)·w·s`` (``(σ(x) − y)·w·s`` without pw); float64.

    ``s`` = g (none, input's shape), g (sum) or g/numel (mean); result has the input's shape.
    Finite for x = ±inf (σ = 1 or 0).
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    upstream = _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])
    x, y = plan["x"], plan["y"]
    with np.errstate(**_ERRSTATE):
        if plan["pw"] is None:
            grad = _sigmoid(x) - y
        else:
            pw_y = plan["pw"] * y
            grad = (pw_y + 1.0 - y) * _sigmoid(x) - pw_y
        return np.broadcast_to(grad * upstream * plan["w"], plan["shape"]).copy()


def binary_cross_entropy_with_logits_target_backward(grad_output, input, target, weight=None,
                                                     reduction="mean",
                                                     pos_weight=None) -> np.ndarray:
    """∂/∂target: ``(log σ(−x) − pw·log σ(x))·w·s``, which is ``−x·w·s`` without pw; float64.

    Result has the target's shape; ``s`` as in the input gradient. Without pos_weight torch
    returns −x exactly (so x = ±inf gives ∓inf), and so does this.
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    upstream = _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])
    x = plan["x"]
    with np.errstate(**_ERRSTATE):
        if plan["pw"] is None:
            grad = -x  # log σ(−x) − log σ(x) = −x exactly
        else:
            grad = _log_sigmoid(-x) - plan["pw"] * _log_sigmoid(x)
        return np.broadcast_to(grad * upstream * plan["w"], plan["shape"]).copy()


def binary_cross_entropy_with_logits_hvp(vector, grad_output, input, target, weight=None,
                                         reduction="mean", pos_weight=None) -> np.ndarray:
    """d/dε of the input gradient at ``input + ε·vector``: ``(pw·y + 1 − y)·σ(x)(1−σ(x))·w·s·v``.

    Elementwise (the Hessian is diagonal); ``σ(x)(1−σ(x)) = σ(x)·σ(−x)`` stays accurate in both
    tails. ``vector`` and the result have the input's shape; float64.
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    direction = v.check_same_shape(vector, plan["shape"])
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    upstream = _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])
    x, y = plan["x"], plan["y"]
    with np.errstate(**_ERRSTATE):
        # σ'(x) = σ(x)·(1 − σ(x)) = σ(x)·σ(−x).
        curvature = _sigmoid(x) * _sigmoid(-x)
        if plan["pw"] is not None:
            curvature = curvature * (plan["pw"] * y + 1.0 - y)
        return np.broadcast_to(curvature * upstream * plan["w"] * direction, plan["shape"]).copy()
