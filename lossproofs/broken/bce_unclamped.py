"""binary_cross_entropy without torch's clamp of the logs at −100.

Bug: ``ℓ = −(y·log p + (1−y)·log(1−p))`` as written on paper: at ``p = 0`` or ``1`` a log is
−inf, so the loss is +inf (or NaN from ``0·(−inf)`` when the target agrees), where torch clamps
each log at −100 (documented in ``BCELoss``) and returns 100 or 0.
Modelled on: kuangliu/pytorch-retinanet#17 ("pt.log() would be -inf when pt value is going to
zero") and pytorch/pytorch#751 (BCELoss on sigmoid outputs is numerically unstable).
Should be caught by: the special value "p at 0 and 1, log clamped at −100" and the forward
property for binary_cross_entropy (its strategy includes the endpoints 0 and 1).
"""

import torch

from lossproofs.broken._common import check_bce_shapes, check_reduction, reduce
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = "broken"


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    check_reduction(reduction)
    check_bce_shapes(input, target, weight)
    for name, t in (("input", input), ("target", target)):
        if bool(((t < 0) | (t > 1) | torch.isnan(t)).any()):
            raise RuntimeError(f"all elements of {name} should be between 0 and 1")
    loss = -(target * torch.log(input) + (1 - target) * torch.log1p(-input))  # BUG: no clamp
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction)
