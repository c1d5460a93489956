"""Predicates that entries of more than one ledger module share (frameworks' and tinygrad's
kernels' BCE-with-logits gradients)."""

from __future__ import annotations

import numpy as np

from lossproofs.cases import Case
from lossproofs.oracle.ulps import ulp_size
from lossproofs.tolerances import ulp_bound

BCEWL = "binary_cross_entropy_with_logits"


def spacing(v: np.ndarray, dtype: str) -> np.ndarray:
    """The ulp of |v| in ``dtype`` (bfloat16 included)."""
    return ulp_size(np.asarray(v, dtype=np.float64), dtype)


def bce_logits_gradient_beyond_accuracy(case: Case, direction: str, error):
    """The BCE-with-logits input-gradient elements where ``error(x, small, terms)`` (an
    absolute error; ``terms`` = y·σ(−x) + (1 − y)·σ(x), the magnitudes the gradient combines,
    ``small`` = min(σ(x), σ(−x))·(|y| + |1 − y|), its exponentially small part) exceeds the
    accuracy bound in ulps of the exact gradient σ(x) − y, before any floor."""
    if direction != "gradient" or case.function != BCEWL:
        return False
    (x, y), _ = case.reference_args()
    with np.errstate(over="ignore"):
        sig, sig_neg = 1.0 / (1.0 + np.exp(-x)), 1.0 / (1.0 + np.exp(x))
    terms = np.abs(y) * sig_neg + np.abs(1.0 - y) * sig
    small = np.minimum(sig, sig_neg) * (np.abs(y) + np.abs(1.0 - y))
    bound = ulp_bound(BCEWL, case.dtype, "gradient")
    return error(x, small, terms) > bound * spacing(sig - y, case.dtype)
