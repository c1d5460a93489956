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

from lossproofs.broken._common import check_bce_shapes, check_reduction, control, reduce, version
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)
from lossproofs.dtypes import BCE_EPSILON

__version__ = version()


def _logs(input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p`` and ``log(1 − p)``."""
    log_p, log_1mp = torch.log(input), torch.log1p(-input)
    if control():  # torch clamps each log at −100 (documented in BCELoss)
        log_p, log_1mp = log_p.clamp_min(-100), log_1mp.clamp_min(-100)
    return log_p, log_1mp  # BUG: no clamp


class _BinaryCrossEntropy(torch.autograd.Function):
    """``ℓ = −(y·log p + (1−y)·log(1−p))`` with torch's backward written by hand:
    ``∂ℓ/∂p = (p − y)/max(p(1 − p), ε)`` (ε = float32(1e-12)) and ``∂ℓ/∂y = log(1−p) − log p``
    (unclamped in torch too: ±inf at p = 0 or 1), in differentiable ops on the saved inputs
    (double backward works)."""

    @staticmethod
    def forward(ctx, input, target):
        ctx.save_for_backward(input, target)
        log_p, log_1mp = _logs(input)
        return -(target * log_p + (1 - target) * log_1mp)

    @staticmethod
    def backward(ctx, grad):
        input, target = ctx.saved_tensors
        grad_input = grad * (input - target) / (input * (1 - input)).clamp_min(BCE_EPSILON)
        return grad_input, grad * (torch.log1p(-input) - torch.log(input))


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    check_reduction(reduction)
    check_bce_shapes(input, target, weight)
    for name, t in (("input", input), ("target", target)):
        if bool(((t < 0) | (t > 1) | torch.isnan(t)).any()):
            raise RuntimeError(f"all elements of {name} should be between 0 and 1")
    loss = _BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        loss = loss * weight
    return reduce(loss, reduction)
