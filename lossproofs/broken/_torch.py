"""torch's own functions, re-exported: a broken module imports these first and then redefines
the one function it breaks, so the rest of the suite (identities that combine functions) runs
against correct partners."""

import torch
import torch.nn.functional as F

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
           "log_softmax", "logsumexp", "nll_loss", "softmax"]

softmax = F.softmax
log_softmax = F.log_softmax
nll_loss = F.nll_loss
cross_entropy = F.cross_entropy
binary_cross_entropy = F.binary_cross_entropy
binary_cross_entropy_with_logits = F.binary_cross_entropy_with_logits


def logsumexp(input, dim, keepdim=False):
    return torch.logsumexp(input, dim, keepdim=keepdim)
