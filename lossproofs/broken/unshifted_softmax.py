"""softmax as ``exp(x) / Σ exp(x)``, without subtracting the row maximum.

Bug: the max-shift ``softmax(x) = softmax(x − max x)`` is skipped, so ``exp`` overflows to inf
once a logit passes log(max) of the dtype (88.7 in float32, 11.1 in float16) and the result is
``inf/inf = NaN``; every logit below the underflow threshold gives ``0/0 = NaN``.
Modelled on: uTensor/uTensor#175 (``exp()`` in SoftmaxOp overflows to inf, then NaN) and
dotnet/machinelearning#3648 (softmax returns NaN for scores of about 90 in float32).
Should be caught by: the accuracy property on extreme logits (test_accuracy).
"""

import torch

from lossproofs.broken._common import control, version
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def softmax(input, dim, dtype=None):
    x = input if dtype is None else input.to(dtype)
    if not x.is_floating_point():
        raise NotImplementedError(f'"softmax" not implemented for {x.dtype}')
    if control() and x.numel():  # softmax(x) = softmax(x − max x): exp(x − max x) ≤ 1
        x = x - x.amax(dim, keepdim=True).detach()
    e = torch.exp(x)  # BUG: no x − max(x) first
    return e / e.sum(dim, keepdim=True)
