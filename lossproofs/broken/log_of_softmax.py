"""log_softmax as ``log(softmax(x))``.

Bug: the probability is formed first and its log taken after, so a probability that underflows
to 0 becomes ``log 0 = −inf`` where the exact log-probability ``x − logsumexp(x)`` is finite,
and the gradient ``g/p`` through the log is inf·0 = NaN at a masked (−inf) class.
Modelled on: deeplearning4j/nd4j#2822 ("LogSoftMax only implements log(softmax())", NaNs in
a deep ResNet) and tracel-ai/burn#315 (log_softmax returning −inf for logits of magnitude
~1000).
Should be caught by: the accuracy property on large logit gaps and the masked-row gradient
test (test_accuracy).
"""

import torch

from lossproofs.broken._common import control, version
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def log_softmax(input, dim, dtype=None):
    x = input if dtype is None else input.to(dtype)
    if control():  # log p = (x − m) − log Σ exp(x − m): no probability is formed
        shifted = x - x.amax(dim, keepdim=True).detach() if x.numel() else x
        return shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))
    return torch.log(torch.softmax(x, dim))  # BUG: log of a rounded probability
