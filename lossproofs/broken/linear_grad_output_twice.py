"""chunked linear_cross_entropy whose sum/mean backward applies ``grad_output`` twice.

Bug: the gradients precomputed in the forward are scaled by the upstream gradient, and the
scaled result is scaled again (a second ``element_mul`` after one already folded in): right
for ``grad_output = ±1``, wrong for any other upstream gradient (a loss scale, gradient
accumulation's 1/k).
Modelled on: the grad_output handling of fused linear CE backwards (linkedin/Liger-Kernel
PR #1298 and PR #1222 rewrote it).
Should be caught by:
``test_linear_cross_entropy.py::test_values_and_gradients_match_reference`` and
``::test_is_cross_entropy_of_linear`` (both draw a random ``grad_output``), for sum and mean.
"""

from lossproofs.broken._common import buggy, version
from lossproofs.broken._linear_chunked import chunked_linear_cross_entropy
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0):
    return chunked_linear_cross_entropy(
        input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
        label_smoothing, bugs=buggy("grad_output twice"))  # BUG
