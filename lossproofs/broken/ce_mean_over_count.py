"""cross_entropy whose ``mean`` divides by the number of targets.

Bug: ``reduction="mean"`` is computed as ``loss.sum() / loss.numel()``: ignored targets
(``ignore_index``) and class weights are left out of the denominator, which torch defines as
``Σ_i m_i·w[t_i]`` (a weighted mean over the kept targets).
Modelled on: eladhoffer/utils.pytorch#4 (smoothed CE averaged over all tokens, padding
included), EleutherAI/bergson#344 (weighted branch divides by a length, not by the valid-token
count), and the ``n_non_ignore`` denominator of Liger-Kernel's kernel (linkedin/
Liger-Kernel#420 for weights).
Should be caught by: the forward property for cross_entropy (weighted or ignored ``mean``).
"""

import torch

from lossproofs.broken._common import (
    check_reduction,
    control,
    is_index_target,
    long_target,
    target_weights,
    torch_cross_entropy,
    version,
)
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    check_reduction(reduction)
    if reduction != "mean":
        return torch_cross_entropy(input, target, weight, ignore_index, reduction,
                                   label_smoothing)
    loss = torch_cross_entropy(input, target, weight, ignore_index, "none", label_smoothing)
    if control() and is_index_target(input, target):
        total = target_weights(input, long_target(target, input), weight, ignore_index)[1].sum()
        # torch reduces the target term and the smoothing term each by Σ w[t]: when that is 0
        # the target term is 0/0, so the mean is NaN whatever the smoothing term adds.
        return torch.where(total != 0, loss.sum() / total, torch.nan)
    return loss.sum() / loss.numel()  # BUG: not Σ w[t_i] over the kept targets
