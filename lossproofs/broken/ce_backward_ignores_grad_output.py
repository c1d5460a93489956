"""cross_entropy whose backward reads one scalar of the incoming gradient.

Bug: the backward multiplies the gradient by ``grad_output[0]`` for every element. That is
right for ``mean``/``sum`` (a scalar) and for an all-ones upstream gradient, and wrong for
``reduction="none"`` with per-token weights or masks: every row gets the first row's factor.
Modelled on: linkedin/Liger-Kernel#968 and #1298 (``element_mul_kernel`` loads
``grad_output`` with a scalar ``tl.load``, so ``reduction="none"`` gradients are silently
wrong) and linkedin/Liger-Kernel#584.
Should be caught by: the input-gradient property for cross_entropy (the suite pushes a random
``grad_output``, never all ones).
"""

from lossproofs.broken._common import buggy, version
from lossproofs.broken._fused_ce import fused_cross_entropy
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    return fused_cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing,
                               bugs=buggy("scalar grad_output"))  # BUG
