"""nll_loss that clamps out-of-range class indices instead of rejecting them.

Bug: targets outside ``[0, C)`` (other than ``ignore_index``) are clamped into range, as a
kernel without a bounds check effectively does, so a label bug in the data silently trains on
the wrong class where torch raises ``IndexError: Target 4 is out of bounds``.
Modelled on: pytorch/pytorch#5296 ("reduce=False → No error for invalid labels": garbage losses
instead of an error) and tensorflow/tensorflow#3739 (sparse softmax cross entropy returns a loss
for out-of-range labels).
Should be caught by: the error cases "target out of bounds" and "negative target that is not
ignore_index" for nll_loss.
"""

import torch
import torch.nn.functional as F

from lossproofs.broken._common import class_dim, control, version
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    if input.dim() >= 1 and target.dtype in (torch.int64, torch.uint8) and not control():
        c = input.shape[class_dim(input)]
        clamped = target.clamp(0, max(c - 1, 0))  # BUG: no bounds check
        target = torch.where(target == ignore_index, target, clamped)
    # .contiguous(): torch's 4-D nll_loss backward rejects permuted inputs (a known torch issue)
    return F.nll_loss(input.contiguous(), target, weight=weight, ignore_index=ignore_index,
                      reduction=reduction)
