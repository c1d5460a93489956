"""float64 NumPy references for torch's loss functions, their gradients and two HVPs.

Each public function mirrors the ``torch.nn.functional`` function of the same name (names,
argument names, defaults, result shapes, special values and the exception *types* torch 2.13
raises), computes in float64 whatever the input dtype, and depends on NumPy only. Argument
checking lives in :mod:`lossproofs._validation`; this module holds the mathematics.

Conventions used throughout:

- ``cd`` is the class dimension: 1, or 0 for an unbatched ``(C,)`` input. Internally class-dim
  inputs are laid out as rows ``(M, C)`` (class dimension last, every other dimension
  flattened into M) and laid back out at the end.
- ``lp = log_softmax(x, cd)``, ``p = softmax(x, cd)``, ``w`` the class weights (ones if absent),
  ``m_i = [t_i != ignore_index]`` for class-index targets, ``g`` the grad_output.
- Results are always ``np.ndarray`` of dtype float64; a ``"sum"``/``"mean"`` reduction (and
  ``"none"`` on an unbatched ``(C,)`` input) returns a **0-d array**, never a Python float.
- ``*_backward(grad_output, ...)`` returns ∂/∂input of ``Σ grad_output ⊙ forward(...)`` (the
  vector-Jacobian product autograd computes) in closed form, with the input's shape;
  ``*_target_backward`` the same with respect to a floating target; ``*_hvp(vector, ...)`` is
  d/dε of the input gradient at ``input + ε·vector``.
- Gradients follow torch's chain through ``log_softmax`` (``grad_x = g_lp − p·Σ_c g_lp``), so a
  NaN row stays NaN even where its upstream gradient is 0 (an ignored all −inf row), as in torch.
"""

from __future__ import annotations

from lossproofs.reference.binary import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_target_backward,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_hvp,
    binary_cross_entropy_with_logits_target_backward,
)
from lossproofs.reference.constants import (
    BCE_EPSILON,
    BCE_LOG_CLAMP,
)
from lossproofs.reference.cross_entropy import (
    cross_entropy,
    cross_entropy_backward,
    cross_entropy_hvp,
    cross_entropy_target_backward,
    nll_loss,
    nll_loss_backward,
)
from lossproofs.reference.linear import (
    linear_cross_entropy,
    linear_cross_entropy_backward,
    linear_cross_entropy_logits_backward,
    linear_cross_entropy_target_backward,
)
from lossproofs.reference.softmax import (
    log_softmax,
    log_softmax_backward,
    logsumexp,
    logsumexp_backward,
    softmax,
    softmax_backward,
)

__all__ = [
    "BCE_EPSILON",
    "BCE_LOG_CLAMP",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_target_backward",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_hvp",
    "binary_cross_entropy_with_logits_target_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_hvp",
    "cross_entropy_target_backward",
    "linear_cross_entropy",
    "linear_cross_entropy_backward",
    "linear_cross_entropy_logits_backward",
    "linear_cross_entropy_target_backward",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "nll_loss",
    "nll_loss_backward",
    "softmax",
    "softmax_backward",
]
