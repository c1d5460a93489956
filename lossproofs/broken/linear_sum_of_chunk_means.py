"""chunked linear_cross_entropy whose ``mean`` is the sum of the chunks' own means.

Bug: each chunk is reduced with its own denominator (its kept targets' weights) and the
per-chunk results are added, so with more than one chunk the loss is about ``num_chunks``
times too large (and wrong even for a mean of means when chunks hold different weights).
Modelled on: NVIDIA-NeMo/Automodel#3803 / PR #3804 ("ChunkedCrossEntropy returns num_chunks x
the loss for reduction='mean'").
Should be caught by:
``test_linear_cross_entropy.py::test_values_and_gradients_match_reference`` and
``::test_is_cross_entropy_of_linear``, for mean with N > 2.
"""

from lossproofs.broken._common import buggy, version
from lossproofs.broken._linear_chunked import chunked_linear_cross_entropy
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0):
    return chunked_linear_cross_entropy(
        input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
        label_smoothing, bugs=buggy("sum of chunk means"))  # BUG
