"""cross_entropy with a correct forward and a backward that forgets the ``mean`` denominator.

Bug: the hand-written backward returns ``w[t]·(p − onehot)`` (plus the smoothing term) for
``reduction="mean"`` without dividing by ``Σ_i m_i·w[t_i]``: the loss value is right, the
gradient is too large by the number of (weighted) targets.
Modelled on: linkedin/Liger-Kernel#140 and #230 (reduction support moved the division by
``n_non_ignore`` out of the kernel; "you also need to take care of gradient calculation in the
kernel, or it won't pass the gradient parts in unit tests").
Should be caught by: the input-gradient property for cross_entropy, and the gradient identity
"∂CE/∂x = softmax − onehot, divided by the number of targets for mean".
"""

from lossproofs.broken._common import buggy, version
from lossproofs.broken._fused_ce import fused_cross_entropy
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    return fused_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                               bugs=buggy("no mean scale"))  # BUG
