"""chunked linear_cross_entropy whose chunk loop drops the remainder rows.

Bug: the loop runs over ``N // CHUNK`` full chunks (CHUNK = 2), so when N is odd the last row
contributes neither loss nor gradient, while ``mean`` still divides by every kept target.
Modelled on: chunk-boundary mistakes in chunked sequence code — NX-AI/mlstm_kernels PR #3 (a
chunking bug for inputs shorter than the largest chunk size) and eth-easl/mixtera PR #55
("return incomplete chunk at the end of chunking, so we won't lose any data").
Should be caught by:
``test_linear_cross_entropy.py::test_values_and_gradients_match_reference``,
on any odd batch (an unbatched input is one row: all of it is the tail); usually also by
``::test_is_cross_entropy_of_linear`` (not a listed catcher: its 25 derandomized draws do not
always include such a case).
"""

from lossproofs.broken._common import version
from lossproofs.broken._linear_chunked import with_bug
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


linear_cross_entropy = with_bug("drop tail")  # BUG
