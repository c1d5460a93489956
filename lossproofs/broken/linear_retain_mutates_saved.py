"""chunked linear_cross_entropy whose backward scales its saved gradients in place.

Bug: for sum/mean the backward does ``saved.mul_(grad_output)`` and returns ``saved``: one
backward is right, but a second one (``retain_graph=True``) multiplies again — returning
``g₁·g₂``-scaled gradients — and silently changes the tensors the first backward returned.
Modelled on: torch's chunked path, which does the in-place ``mul_`` too and guards it: a second
backward raises unless ``allow_retain_graph=True``, which then copies (pytorch/pytorch PR
#181574, the ``ctx._gi`` review thread); and Dao-AILab/quack PR #209, which reports the same
in-place ``dx.mul_`` in quack's chunked linear cross-entropy (there a second backward fails on
autograd's version counter).
Should be caught by: the retain_graph contract,
``test_linear_cross_entropy.py::test_repeated_backward_leaves_earlier_gradients_right``
(``check_retain_graph``) — and by nothing that runs a single backward, which is the point of
that test.
"""

from lossproofs.broken._common import version
from lossproofs.broken._linear_chunked import with_bug
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


linear_cross_entropy = with_bug("mutate saved")  # BUG
