"""chunked linear_cross_entropy whose ``reduction="none"`` backward scales every row by
``grad_output[0]``.

Bug: the per-token upstream gradient is read as a scalar, so every gradient row is multiplied
by the first token's upstream gradient: correct for ``grad_output = ones``, wrong otherwise.
Modelled on: linkedin/Liger-Kernel PR #1298 ("wrong grad_weight/grad_bias for fused linear
cross entropy with reduction='none'": ``element_mul_kernel`` loads ``grad_output`` as a scalar).
Also linkedin/Liger-Kernel issue #968 (wrong gradients of FusedLinearCrossEntropy with
reduction='none' and a weight mask).
Should be caught by:
``test_linear_cross_entropy.py::test_values_and_gradients_match_reference`` (a random
``grad_output``), on a batched reduction='none' case of the chunked path; also by
``::test_is_cross_entropy_of_linear`` when its 25 draws include such a case, which the
derandomized ones do not always (not a listed catcher).
"""

from lossproofs.broken._common import version
from lossproofs.broken._linear_chunked import with_bug
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


linear_cross_entropy = with_bug("grad_output[0]")  # BUG
