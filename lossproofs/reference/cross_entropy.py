"""nll_loss and cross_entropy (class-index and class-probability targets): values,
gradients, target gradients and the Hessian-vector product."""

from __future__ import annotations

import numpy as np

from lossproofs import _validation as v
from lossproofs.reference._kernels import (
    _ERRSTATE,
    _cross_entropy_grad_log_probs,
    _cross_entropy_plan,
    _expected_output_shape,
    _from_rows,
    _index_rows,
    _log_softmax_rows_backward,
    _nll_rows,
    _reduce,
    _smoothing_rows,
    _to_rows,
    _upstream,
)


def _nll_plan(input, target, weight, ignore_index, reduction):
    reduction = v.check_reduction(reduction)
    ignore_index = v.check_int(ignore_index, "ignore_index")
    x = v.as_array(input, "input")
    t = v.as_array(target, "target")
    weight = v.check_class_index_targets(x, t, weight, ignore_index, "nll_loss_out_frame")
    rows, loss_shape = _to_rows(x.astype(np.float64))
    kept, safe_target, target_weight, _ = _index_rows(t, weight, rows.shape[1], ignore_index)
    return dict(x=x, rows=rows, loss_shape=loss_shape, reduction=reduction, kept=kept,
                safe_target=safe_target, target_weight=target_weight,
                denominator=np.sum(target_weight))


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean") -> np.ndarray:
    """Negative log-likelihood ``ℓ_i = −w[t_i]·input[i, t_i]·m_i``, reduced; float64.

    Mirrors ``torch.nn.functional.nll_loss``. ``input`` holds log-probabilities of shape
    ``(C,)``, ``(N, C)`` or ``(N, C, d1..dk)``; ``target`` int64 or uint8 class indices of shape
    ``()``/``(1,)``, ``(N,)`` or ``(N, d1..dk)``; ``weight`` ``(C,)`` of input's dtype.
    Reduction: ``"none"`` gives shape ``(N, d1..dk)`` (0-d for a ``(C,)`` input); ``"sum"``
    Σℓ; ``"mean"`` the weighted mean ``Σℓ / Σ_i m_i·w[t_i]`` (0-d arrays).
    Special values: ignored elements are exactly 0 (even if input is NaN there); every target
    ignored, or all used weights 0, or an empty batch: mean NaN, sum 0.
    Errors: the types torch raises (see :mod:`lossproofs._validation`).
    """
    plan = _nll_plan(input, target, weight, ignore_index, reduction)
    loss = _nll_rows(plan["rows"], plan["kept"], plan["safe_target"], plan["target_weight"])
    return _reduce(loss.reshape(plan["loss_shape"]), plan["reduction"], plan["denominator"])


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100,
                      reduction="mean") -> np.ndarray:
    """∂/∂input of nll_loss: ``−w[t_i]·g_i`` (÷ Σ m·w[t] for mean) at ``[i, t_i]``, 0 elsewhere.

    Shapes: ``grad_output`` as the forward's output (0-d for sum/mean), result as ``input``;
    float64. Ignored elements get exactly 0, so every target ignored gives zeros; all used
    weights 0 with mean gives NaN at the targets (0·(g/0)), as torch.
    """
    plan = _nll_plan(input, target, weight, ignore_index, reduction)
    g = v.check_grad_output(grad_output,
                            _expected_output_shape(plan["reduction"], plan["loss_shape"]))
    upstream = np.asarray(_upstream(g, plan["reduction"], plan["denominator"],
                                    plan["loss_shape"]), dtype=np.float64).reshape(-1)
    n_rows, n_classes = plan["rows"].shape
    grad = np.zeros((n_rows, n_classes))
    if n_classes:
        with np.errstate(**_ERRSTATE):
            values = np.where(plan["kept"], -(plan["target_weight"] * upstream), 0.0)
        np.put_along_axis(grad, plan["safe_target"][:, None], values[:, None], axis=1)
    return _from_rows(grad, plan["x"].shape)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0) -> np.ndarray:
    """Cross entropy of logits ``input`` against class indices or class probabilities; float64.

    Mirrors ``torch.nn.functional.cross_entropy``. ``input``: logits ``(C,)``, ``(N, C)`` or
    ``(N, C, d1..dk)``; the class dim cd is 1 (0 for ``(C,)``). lp = log_softmax(input, cd).

    *Class-index targets* (``target.shape != input.shape``; int64/uint8, shape of the input
    without cd): ``ℓ_i = (1−ε)·(−w[t_i]·lp[i, t_i]) + (ε/C)·(−Σ_c w_c·lp[i, c])``, 0 where
    ``t_i == ignore_index``; ``"mean"`` divides by ``Σ_i m_i·w[t_i]``.
    *Class-probability targets* (``target.shape == input.shape``, floating): with
    ``T = t·(1−ε) + ε/C`` (T = t when ε = 0), ``ℓ_i = −Σ_c lp[i, c]·T[i, c]·w_c``; ``"mean"``
    divides by ``numel/C`` — the weights do not enter it (pytorch#61309).

    Reduction: ``"none"`` has shape ``(N, d1..dk)`` (0-d for ``(C,)``); sum/mean are 0-d arrays.
    Special values: every target ignored or an empty batch: mean NaN, sum 0; a −inf logit
    with ε > 0 gives +inf; with ε = 1 and the target's logit −inf, NaN (0·inf); a −inf logit
    with a 0 probability target gives NaN (−inf·0), as torch.
    Errors: torch's types; negative or NaN ``label_smoothing`` is a ValueError here while torch
    silently uses 0 (a ledger entry, pytorch#134767).
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    reduction, eps, lp = plan["reduction"], plan["label_smoothing"], plan["log_probs"]
    loss_shape, denominator = plan["loss_shape"], plan["denominator"]
    with np.errstate(**_ERRSTATE):
        if plan["probabilities"]:
            # ℓ = −Σ_c (lp·T)·w, in torch's order of multiplication.
            loss = -np.sum(lp * plan["smoothed"] * plan["class_weight"], axis=1)
            return _reduce(loss.reshape(loss_shape), reduction, denominator)
        nll = _nll_rows(lp, plan["kept"], plan["safe_target"], plan["target_weight"])
        nll = _reduce(nll.reshape(loss_shape), reduction, denominator)
        if eps == 0:
            return nll
        smooth = _smoothing_rows(lp, plan["kept"], plan["class_weight"])
        smooth = _reduce(smooth.reshape(loss_shape), reduction, denominator)
        # torch combines the two already reduced terms: (1−ε)·nll + (ε/C)·smooth.
        return np.asarray((1.0 - eps) * nll + (eps / plan["n_classes"]) * smooth)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0) -> np.ndarray:
    """∂/∂input of cross_entropy, closed form, float64; result has the input's shape.

    Index targets, kept row: ``s_i·[(1−ε)·w[t]·(p − e_t) + (ε/C)·(p·Σ_c w_c − w)]``; probability
    targets: ``s_i·(p·Σ_c T_c w_c − T⊙w)``; ``s_i`` = g_i (none), g (sum) or g/D (mean, D the
    forward's denominator). Computed as torch's chain ``g_lp − p·Σ_c g_lp``, so ignored rows are
    exactly 0 unless p is NaN there (an ignored all −inf row gives NaN, as torch); every target
    ignored gives zeros; all used weights 0 with mean gives NaN (0·(g/0)), as torch.
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    grad_lp = _cross_entropy_grad_log_probs(plan, grad_output)
    return _from_rows(_log_softmax_rows_backward(grad_lp, plan["log_probs"]), plan["x"].shape)


def cross_entropy_target_backward(grad_output, input, target, weight=None, ignore_index=-100,
                                  reduction="mean", label_smoothing=0.0) -> np.ndarray:
    """∂/∂target of cross_entropy with probability targets: ``−lp·w·(1−ε)·s_i``; float64.

    Shapes: result has the target's (= input's) shape; ``s_i`` as in
    :func:`cross_entropy_backward` (mean divides by numel/C). lp = −inf gives ±inf.
    Class-index targets are integers and have no gradient: TypeError.
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    if not plan["probabilities"]:
        raise TypeError(
            "cross_entropy has no gradient with respect to a class-index target "
            f"(target dtype {plan['t'].dtype.name}, shape {plan['t'].shape} differs from "
            f"input shape {plan['x'].shape}); only class-probability targets are differentiable"
        )
    g = v.check_grad_output(grad_output,
                            _expected_output_shape(plan["reduction"], plan["loss_shape"]))
    upstream = np.asarray(_upstream(g, plan["reduction"], plan["denominator"],
                                    plan["loss_shape"]), dtype=np.float64).reshape(-1)
    eps = plan["label_smoothing"]
    with np.errstate(**_ERRSTATE):
        # ∂ℓ_i/∂t_ic = −lp_ic·w_c·∂T/∂t with ∂T/∂t = 1 − ε.
        grad = -(plan["log_probs"] * plan["class_weight"]) * upstream[:, None]
        if eps > 0:
            grad = grad * (1.0 - eps)
    return _from_rows(grad, plan["x"].shape)


def cross_entropy_hvp(vector, grad_output, input, target, weight=None, ignore_index=-100,
                      reduction="mean", label_smoothing=0.0) -> np.ndarray:
    """d/dε of :func:`cross_entropy_backward` at ``input + ε·vector``, closed form, float64.

    Per row: ``(diag(p) − p pᵀ)·v · A_i`` with ``A_i = −Σ_c g_lp[i, c]`` the row's total
    upstream weight: ``s_i·((1−ε)·w[t_i] + (ε/C)·Σ_c w_c)`` for a kept index target (0 if
    ignored), ``s_i·Σ_c T_ic·w_c`` for probability targets. ``vector`` and the result have
    the input's shape. The gradient w.r.t. lp does not depend on the input, so only
    softmax's Jacobian ``diag(p) − p pᵀ`` contributes.
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    direction, _ = _to_rows(v.check_same_shape(vector, plan["x"].shape))
    grad_lp = _cross_entropy_grad_log_probs(plan, grad_output)
    with np.errstate(**_ERRSTATE):
        p = np.exp(plan["log_probs"])
        # (diag(p) − p pᵀ)·v = p⊙v − p·(p·v): the Jacobian of softmax applied to v.
        jvp = p * direction - p * np.sum(p * direction, axis=1, keepdims=True)
        hvp = -jvp * np.sum(grad_lp, axis=1, keepdims=True)
    return _from_rows(hvp, plan["x"].shape)
