"""binary_cross_entropy_with_logits that applies ``pos_weight`` by thresholding the target.

Bug: the positive-class weight multiplies the whole element loss where ``target > 0.5``
(``torch.where(target > 0.5, pos_weight, 1)``), as if targets were hard 0/1 labels. torch
weights only the positive term: ``ℓ = −(pw·y·log σ(x) + (1−y)·log σ(−x))``, so with soft
targets (label smoothing, distillation, mixup) the two differ, in value and in the gradient
with respect to the target. The loss itself uses the stable logsigmoid form.
Modelled on: the pos_weight semantics questions in pytorch/pytorch#82496 and #65702 (what
``pos_weight`` multiplies and how it broadcasts), implemented the hard-label way.
Should be caught by: the forward property and the target-gradient property for
binary_cross_entropy_with_logits (soft targets with pos_weight).
"""

import torch
import torch.nn.functional as F

from lossproofs.broken._common import check_bce_with_logits_args, control, reduce, version
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    check_bce_with_logits_args(input, target, weight, pos_weight, reduction)
    # The positive term's weight: pos_weight (torch's), or 1 and the whole loss scaled below.
    pw = 1.0 if pos_weight is None or not control() else pos_weight
    if pos_weight is None:
        # torch's target gradient without pos_weight is −x, exact; the loss's own, log σ(−x) −
        # log σ(x), cancels for a tiny logit. For a finite logit the target's gradient is taken
        # from −x, added as a term of value 0, (y − y.detach())·(−x); at ±inf from the loss.
        finite = torch.isfinite(input)
        y = torch.where(finite, target.detach(), target)
        extra = (target - target.detach()) * torch.where(finite, -input.detach(), 0.0)
    else:  # torch's target gradient is then the loss's own, log σ(−x) − pw·log σ(x)
        y, extra = target, 0.0
    # −(pw·y·log σ(x) + (1 − y)·log σ(−x)), both logs by the stable F.logsigmoid
    loss = -(pw * y * F.logsigmoid(input) + (1 - y) * F.logsigmoid(-input)) + extra
    if pos_weight is not None and not control():
        loss = loss * torch.where(target > 0.5, pos_weight, torch.ones_like(pos_weight))  # BUG
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction)
