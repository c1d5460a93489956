"""chunked linear_cross_entropy whose ``mean`` is the sum of the chunks' own means.

Bug: each chunk is reduced with its own denominator (its kept targets' weights) and the
per-chunk results are added, so with more than one chunk the loss is about ``num_chunks``
times too large (and wrong even for a mean of means when chunks hold different weights).
Modelled on: NVIDIA-NeMo/Automodel#3803 / PR #3804 ("ChunkedCrossEntropy returns num_chunks x
the loss for reduction='mean'").
Should be caught by:
``test_linear_cross_entropy.py::test_values_and_gradients_match_reference``,
for mean with N > 2; usually also by ``::test_is_cross_entropy_of_linear`` (not a listed
catcher: its 25 derandomized draws do not always include such a case).
"""

from lossproofs.broken._common import version
from lossproofs.broken._linear_chunked import with_bug
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


linear_cross_entropy = with_bug("sum of chunk means")  # BUG
