"""A "fused" cross entropy for class-index targets: the forward is torch's, the backward is the
closed form a kernel writes by hand, with switches for two gradient bugs
(:mod:`ce_backward_unscaled`, :mod:`ce_backward_ignores_grad_output`). Without a switch the
backward is correct:

``∂ℓ_i/∂x_i = (1−ε)·w[t_i]·(p_i − e_{t_i}) + (ε/C)·(p_i·Σ_c w_c − w)``, 0 at ignored targets,
divided by ``Σ_i m_i·w[t_i]`` for ``mean`` and multiplied by the incoming gradient (a scalar
for sum/mean, one value per element for none). The backward uses differentiable torch ops on
the saved input, so double backward works too.
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
        # The target's term, weighted by w[t]; the smoothing term, every class by its own w_c.
        grad = (1 - eps) * kept_weight.unsqueeze(cd) * (p - onehot) + (eps / c) * (
            kept.unsqueeze(cd) * (p * w.sum() - w))
        if reduction == "mean" and "no mean scale" not in bugs:
            total = kept_weight.sum()
            # all targets ignored: torch's gradient is 0, not 0/0
            grad = grad / total if total != 0 else torch.zeros_like(grad)
        if "scalar grad_output" in bugs:
            g = grad_output.reshape(-1)[0]  # the first element, whatever the reduction
        else:
            g = grad_output.unsqueeze(cd) if reduction == "none" else grad_output
        return grad * g, None, None, None, None, None, None


def fused_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                        label_smoothing=0.0, *, bugs: frozenset[str] = frozenset()):
    check_reduction(reduction)
    check_label_smoothing(label_smoothing)
    if not is_index_target(input, target) or input.numel() == 0:
        return torch_cross_entropy(input, target, weight, ignore_index, reduction,
                                   label_smoothing)
    return _FusedCrossEntropy.apply(input, long_target(target, input), weight, ignore_index,
                                    reduction, max(label_smoothing, 0.0), bugs)
