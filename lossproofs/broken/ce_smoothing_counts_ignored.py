"""cross_entropy whose label-smoothing term is not masked at ignored targets.

Bug: the one-hot part ``(1−ε)·nll`` is 0 at ``ignore_index`` (it comes from nll_loss), but the
uniform part ``(ε/C)·Σ_c w_c·(−lp_c)`` is added for every element, padding included.
Modelled on: pytorch/pytorch#73205 ("Bug in label smoothing with ignored samples": torch itself
shipped this in 1.10) and linkedin/Liger-Kernel#198 (the fused kernel's first label-smoothing
version failed its tests with ignore_index and label_smoothing both on).
Should be caught by: the forward property for cross_entropy, and the special value "all
targets ignored, none" (expected exactly 0 with smoothing 0.3).
"""

from lossproofs.broken._common import control, version
from lossproofs.broken._smoothed_ce import smoothed_cross_entropy
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    return smoothed_cross_entropy(input, target, weight, ignore_index, reduction,
                                  label_smoothing, mask_ignored=control())  # BUG
