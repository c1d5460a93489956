"""binary_cross_entropy_with_logits computed as BCE of ``sigmoid(x)``.

Bug: ``ℓ = −(pw·y·log σ(x) + (1−y)·log(1 − σ(x)))``: ``σ(x)`` rounds to exactly 1 for
``x ≳ 17`` in float32 (37 in float64), so ``log(1 − σ)`` is −inf and the loss +inf (or NaN)
where the exact loss is about ``x``; well before that, ``1 − σ(x)`` cancels and loses digits.
torch uses ``(1−y)·x − lw·logsigmoid(x)`` with a stable logsigmoid.
Modelled on: pytorch/pytorch#751 (the request that created BCEWithLogitsLoss: sigmoid + BCE
overflows in GAN training) and pytorch/pytorch#2221 (a sign slip in the logsumexp of the first
BCEWithLogits gave inf for input −100).
Should be caught by: the forward property for binary_cross_entropy_with_logits (logits up to
±20) and the special value "saturated logits, finite".
"""

import torch
import torch.nn.functional as F

from lossproofs.broken._common import check_bce_with_logits_args, control, reduce, version
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    check_bce_with_logits_args(input, target, weight, pos_weight, reduction)
    if control():  # log σ(x) and log(1 − σ(x)) = log σ(−x), both by the stable logsigmoid
        log_p, log_1mp = F.logsigmoid(input), F.logsigmoid(-input)
    else:
        p = torch.sigmoid(input)
        log_p, log_1mp = torch.log(p), torch.log(1 - p)  # BUG: unstable
    pw = 1.0 if pos_weight is None else pos_weight
    loss = -(pw * target * log_p + (1 - target) * log_1mp)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction)
