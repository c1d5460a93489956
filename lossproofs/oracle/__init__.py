"""The exact oracle: the loss functions of :mod:`lossproofs.reference`, evaluated in arbitrary
precision with mpmath and correctly rounded to float64.

Same names and arguments as :mod:`lossproofs.reference` (``torch.nn.functional`` names), and
``<name>_backward(grad_output, <same args>)`` for the gradient with respect to ``input``. Inputs
are taken as exact binary numbers (a float16 or bfloat16 input should be passed already rounded
to that dtype and cast back to float64, which is exact); outputs are float64 arrays.

How many digits, and why
------------------------
Every value is computed at a working precision of ``p = 160`` bits (48 decimal digits) and again
at ``2p``; if the two results round to the same float64 everywhere, that float64 is returned,
otherwise ``p`` is doubled, up to :data:`MAX_PRECISION_BITS` (Ziv's strategy). 160 bits is the
53 of float64 plus 107 guard bits. The formulas below are arranged so that the only roundings
are of sums of *same-sign* terms, of ``exp``/``log1p`` of *exact* arguments, and of products and
quotients, so their relative error is at most ``(n + 8)·2⁻ᵖ`` for a row of ``n ≤ 2¹⁷`` classes:
below ``2⁻¹³⁰``. The float64 rounding can then only be wrong when the exact value lies within
``2⁻⁷⁷`` ulp of a rounding midpoint, and the ``2p`` recomputation detects exactly that case.
Where a formula must subtract (gradients with mixed-sign ``grad_output``, ``logsumexp`` with a
negative maximum, targets outside [0, 1]) the recomputation at ``2p`` is what detects the
cancellation, and precision grows until the results agree.

Rows with more than :data:`LARGE_ROW` elements (the ``C = 10⁵`` strata) are evaluated once at
``p = 128`` without the recomputation, to keep the cost to about a second per row: by the bound
above their relative error is below ``2⁻¹¹⁰``, so the returned float64 is within
``0.5 + 2⁻⁵⁷`` ulp of the exact value (it may differ from the correctly rounded one only when
the exact value is within ``2⁻⁵⁷`` ulp of a midpoint).

Key rearrangements (each exact in real arithmetic):

- ``d_j = x_j − max`` is formed exactly (``fsub(..., exact=True)``), so ``exp(d_j)`` has an
  exact argument; ``S = Σ exp(d_j) = 1 + T`` where ``T`` sums all but one maximal term, and
  ``log S = log1p(T)`` keeps the tiny ``T`` of a dominant class.
- ``1 − softmax_j = (S − e_j)/S`` with ``S − e_j = T`` (for the max) or ``1 + (T − e_j)``.
- ``binary_cross_entropy_with_logits = (1−y)·softplus(x) + pw·y·softplus(−x)``: two
  non-negative terms for ``y ∈ [0, 1]``, where torch's ``(1−y)·x − lw·logsigmoid(x)`` cancels.

Special values follow torch's definitions (see ``/work/shared/TORCH_SEMANTICS.md``): a softmax
row that is all −inf, or holds +inf or NaN, is all NaN; a partial −inf row gives exact zeros
(softmax) and −inf (log_softmax). mpmath has no signed zero: zeros are returned as ``+0.0``
(:func:`ulp_distance` treats ``±0`` as equal).

:func:`ulp_distance` measures an implementation's result against the oracle in units in the last
place of any of float64, float32, float16 and bfloat16.

Modules: :mod:`._precision` (working precision, Ziv's loop, rounding to float64, exact sums),
:mod:`._rows` (the softmax row kernel and shared argument checks), :mod:`.softmax`,
:mod:`.cross_entropy` (``nll_loss`` too), :mod:`.binary` (both BCEs) and :mod:`.ulps`.
"""

from __future__ import annotations

# One line per module (the names mirror lossproofs.reference's, the oracle being its exact twin).
# isort: off
from lossproofs.oracle._precision import (LARGE_ROW, LARGE_ROW_PRECISION_BITS, MAX_PRECISION_BITS,
                                          START_PRECISION_BITS, OracleError, round_to_float64,
                                          round_to_float64_array, ziv)
from lossproofs.oracle.softmax import (log_softmax, log_softmax_backward, logsumexp,
                                       logsumexp_backward, softmax, softmax_backward)
from lossproofs.oracle.cross_entropy import (cross_entropy, cross_entropy_backward, nll_loss,
                                             nll_loss_backward)
from lossproofs.oracle.binary import (BCE_GRAD_EPS, binary_cross_entropy,
                                      binary_cross_entropy_backward,
                                      binary_cross_entropy_with_logits,
                                      binary_cross_entropy_with_logits_backward)
from lossproofs.oracle.ulps import representable, ulp_distance, ulp_position, ulp_size
# isort: on

__all__ = [
    "BCE_GRAD_EPS", "LARGE_ROW", "LARGE_ROW_PRECISION_BITS", "MAX_PRECISION_BITS",
    "START_PRECISION_BITS", "OracleError", "binary_cross_entropy",
    "binary_cross_entropy_backward", "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward", "cross_entropy", "cross_entropy_backward",
    "log_softmax", "log_softmax_backward", "logsumexp", "logsumexp_backward", "nll_loss",
    "nll_loss_backward", "representable", "round_to_float64", "round_to_float64_array",
    "softmax", "softmax_backward", "ulp_distance", "ulp_position", "ulp_size", "ziv",
]
