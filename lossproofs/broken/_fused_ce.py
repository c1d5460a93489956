"""A "fused" cross entropy for class-index targets: the forward is torch's, the backward is the
closed form a kernel writes by hand, with switches for two gradient bugs
(:mod:`ce_backward_unscaled`, :mod:`ce_backward_ignores_grad_output`). Without a switch the
backward is correct, torch's gradient to the last NaN:

``∂ℓ/∂lp_i = −s_i·m_i·[(1−ε)·w[t_i]·e_{t_i} + (ε/C)·w]`` and ``∂ℓ/∂x_i = ∂ℓ/∂lp_i −
p_i·Σ_c ∂ℓ/∂lp_ic``, i.e. ``s_i·[(1−ε)·w[t_i]·(p_i − e_{t_i}) + (ε/C)·(p_i·Σ_c w_c − w)]`` on
a kept row and exactly 0 on an ignored one. The upstream factor ``s_i`` is the incoming
gradient (one value per element for none, a scalar for sum) divided, for mean, by
``Σ_i m_i·w[t_i]``, and that division comes first, as torch's: when the total weight is 0 the
factor is inf or NaN, so every target ignored gives zeros (nothing is kept) while kept targets
of weight 0 give NaN rows (0·inf), as torch and the reference. The backward uses
differentiable torch ops on the saved input, so double backward works too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossproofs.broken._common import (
    check_label_smoothing,
    check_reduction,
    class_dim,
    class_weights,
    is_index_target,
    long_target,
    target_weights,
    torch_cross_entropy,
)


class _FusedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, target, weight, ignore_index, reduction, label_smoothing, bugs):
        ctx.save_for_backward(input, target, weight)
        ctx.params = (ignore_index, reduction, label_smoothing, bugs)
        return F.cross_entropy(input, target, weight=weight, ignore_index=ignore_index,
                               reduction=reduction, label_smoothing=label_smoothing)

    @staticmethod
    def backward(ctx, grad_output):
        input, target, weight = ctx.saved_tensors
        ignore_index, reduction, eps, bugs = ctx.params
        cd = class_dim(input)
        c = input.shape[cd]
        p = torch.softmax(input, cd)
        kept, kept_weight = target_weights(input, target, weight, ignore_index)
        safe = torch.where(kept, target, torch.zeros_like(target))
        onehot = torch.movedim(F.one_hot(safe, c).to(input.dtype), -1, cd)
        w = class_weights(input, weight)
        if "scalar grad_output" in bugs:
            s = grad_output.reshape(-1)[0]  # the first element, whatever the reduction
        else:
            s = grad_output.unsqueeze(cd) if reduction == "none" else grad_output
        if reduction == "mean" and "no mean scale" not in bugs:
            s = s / kept_weight.sum()  # inf or NaN for a zero total weight, as torch
        # ∂ℓ/∂lp: the target's term, weighted by w[t]; the smoothing term, every class by its own
        # w_c; exactly 0 on an ignored row, whatever s is (torch writes only the kept rows).
        grad_lp = torch.where(kept.unsqueeze(cd), -s * (
            (1 - eps) * kept_weight.unsqueeze(cd) * onehot + (eps / c) * w),
            torch.zeros_like(p))
        # through log_softmax: ∂ℓ/∂x = ∂ℓ/∂lp − p·Σ_c ∂ℓ/∂lp
        grad = grad_lp - p * grad_lp.sum(cd, keepdim=True)
        return grad, None, None, None, None, None, None


def fused_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                        label_smoothing=0.0, *, bugs: frozenset[str] = frozenset()):
    check_reduction(reduction)
    check_label_smoothing(label_smoothing)
    if not is_index_target(input, target) or input.numel() == 0:
        return torch_cross_entropy(input, target, weight, ignore_index, reduction,
                                   label_smoothing)
    return _FusedCrossEntropy.apply(input, long_target(target, input), weight, ignore_index,
                                    reduction, max(label_smoothing, 0.0), bugs)
