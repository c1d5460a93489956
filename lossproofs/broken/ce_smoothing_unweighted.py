"""cross_entropy whose label-smoothing term ignores the class weights.

Bug: with ``weight=w`` the uniform part is computed as ``(ε/C)·Σ_c (−lp_c)`` instead of
torch's ``(ε/C)·Σ_c w_c·(−lp_c)`` (each class weighted by its own w_c): the weight is applied
to the target's term only.
Modelled on: linkedin/Liger-Kernel#420 (adding ``weight`` to the fused kernel needed the
smoothing gradient ``ε·(p·Σw − w)``, a term a first version gets wrong) and
pytorch/pytorch#69339 (weight + label_smoothing + ignore_index failed together in torch 1.10).
Should be caught by: the forward property for cross_entropy (weight with label_smoothing).
"""

from lossproofs.broken._common import control, version
from lossproofs.broken._smoothed_ce import smoothed_cross_entropy
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    return smoothed_cross_entropy(input, target, weight, ignore_index, reduction,
                                  label_smoothing, weight_smoothing=control())  # BUG
