"""A hand-written label-smoothed cross entropy for class-index targets, with switches for the
three smoothing bugs of :mod:`ce_smoothing_counts_ignored`, :mod:`ce_smoothing_unweighted` and
:mod:`ce_smoothing_other_classes`. Without a switch it computes torch's formula:

``ℓ_i = (1−ε)·w[t_i]·(−lp[i, t_i]) + (ε/C)·Σ_c w_c·(−lp[i, c])``, 0 where ``t_i`` is ignored;
``mean`` divides by ``Σ_i m_i·w[t_i]``, each of the two terms reduced before they are combined
(torch's order, which decides NaN against inf when that total weight is 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossproofs.broken import _common as common


def smoothed_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                           label_smoothing=0.0, *, mask_ignored=True, weight_smoothing=True,
                           other_classes_only=False):
    common.check_reduction(reduction)
    common.check_label_smoothing(label_smoothing)
    if not (label_smoothing > 0 and common.is_index_target(input, target)):
        return common.torch_cross_entropy(input, target, weight, ignore_index, reduction,
                                   label_smoothing)
    eps = label_smoothing
    target = common.long_target(target, input)
    cd = common.class_dim(input)
    c = input.shape[cd]
    lp = F.log_softmax(input, cd)
    # nll_loss validates the targets (bounds, shapes) and gives w[t]·(−lp_t), 0 where ignored.
    nll = F.nll_loss(lp, target, weight, ignore_index=ignore_index, reduction="none")
    w = common.class_weights(input, weight) if weight_smoothing else 1.0
    smooth = -(lp * w).sum(cd)
    kept, kept_weight = common.target_weights(input, target, weight, ignore_index)
    if mask_ignored:
        smooth = torch.where(kept, smooth, torch.zeros_like(smooth))
    # Each term reduced on its own, then combined, as torch: for mean over a zero total weight
    # both are 0/0 or x/0, and NaN + inf is NaN (reducing the combined loss would give inf).
    total = kept_weight.sum()
    nll, smooth = common.reduce(nll, reduction, total), common.reduce(smooth, reduction, total)
    if other_classes_only:
        # ε/(C−1) on every class but the target: Σ_{c≠t} = Σ_c − the target's own term
        # (C = 1 guarded: that class is the target, and its log-probability is 0 anyway).
        return (1 - eps) * nll + eps / max(c - 1, 1) * (smooth - nll)
    return (1 - eps) * nll + eps / c * smooth
