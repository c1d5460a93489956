"""chunked linear_cross_entropy whose sum/mean backward applies ``grad_output`` twice.

Bug: the gradients precomputed in the forward are scaled by the upstream gradient, and the
scaled result is scaled again (a second ``element_mul`` after one already folded in): right
for ``grad_output = ±1``, wrong for any other upstream gradient (a loss scale, gradient
accumulation's 1/k).
Modelled on: the grad_output handling of fused linear CE backwards (linkedin/Liger-Kernel
PR #1298 and PR #1222 rewrote it).
Should be caught by:
``test_linear_cross_entropy.py::test_values_and_gradients_match_reference``,
for sum and mean (a random ``grad_output``); usually also by
``::test_is_cross_entropy_of_linear`` (not a listed catcher: its 25 derandomized draws do not
always include such a case).
"""

from lossproofs.broken._common import version
from lossproofs.broken._linear_chunked import with_bug
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


linear_cross_entropy = with_bug("grad_output twice")  # BUG
