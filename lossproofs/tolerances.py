"""The one tolerance table. Every comparison in the suite takes its bounds from here.

Two kinds of bound:

- ``TOLERANCES[dtype]``: how far torch (computing in ``dtype``) may be from the float64
  reference evaluated on the *same rounded inputs*, as ``|actual − expected| ≤ atol + rtol·|expected|``,
  separately for forward values and gradients. Each row carries a one-line justification.
- ``ULP_BOUNDS``: how many units in the last place of ``dtype`` a result may be from the exact
  (mpmath) answer, per function, dtype and direction; used by the accuracy properties.

A test never invents its own constant: it calls :func:`tolerance` or :func:`ulp_bound`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """``|actual − expected| ≤ atol + rtol·|expected|``, elementwise; ``why`` justifies it."""

    rtol: float
    atol: float
    why: str


# Placeholder rows; replaced with the measured, justified table in the foundation work.
TOLERANCES: dict[tuple[str, str], Tolerance] = {}


def tolerance(dtype: str, kind: str = "forward") -> Tolerance:
    """The bound for results computed in ``dtype`` (``"float64"``, ``"float32"``, ``"float16"``,
    ``"bfloat16"``); ``kind`` is ``"forward"`` or ``"gradient"``."""
    return TOLERANCES[(str(dtype).removeprefix("torch."), kind)]


# ---------------------------------------------------------------------------------------------
# ULP bounds against the exact oracle (owned by the accuracy work, lossproofs.oracle).
# Keys: (function name, dtype name, "forward" | "gradient") -> max ULPs allowed.
ULP_BOUNDS: dict[tuple[str, str, str], float] = {}


def ulp_bound(function: str, dtype: str, direction: str = "forward") -> float:
    """Largest allowed distance, in ULPs of ``dtype``, from the exact answer."""
    return ULP_BOUNDS[(function, str(dtype).removeprefix("torch."), direction)]


def eps(dtype: str) -> float:
    """Machine epsilon of a torch dtype name (bfloat16 included, which NumPy lacks)."""
    name = str(dtype).removeprefix("torch.")
    if name == "bfloat16":
        return 2.0**-7
    return float(np.finfo(name).eps)
