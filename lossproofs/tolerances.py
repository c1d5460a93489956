"""The one tolerance table. Every comparison in the suite takes its bounds from here.

Two kinds of bound:

- ``TOLERANCES[dtype]``: how far torch (computing in ``dtype``) may be from the float64
  reference evaluated on the *same rounded inputs*, as
  ``|actual − expected| ≤ atol·scale + rtol·|expected|``,
  separately for forward values and gradients. Each row carries a one-line justification.
- ``ULP_BOUNDS``: how many units in the last place of ``dtype`` a result may be from the exact
  (mpmath) answer, per function, dtype and direction; used by the accuracy properties.

A test never invents its own constant: it calls :func:`tolerance` or :func:`ulp_bound`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """``|actual − expected| ≤ atol + rtol·|expected|``, elementwise; ``why`` justifies it."""

    rtol: float
    atol: float
    why: str


_EPS = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}

# Scale: ``atol`` multiplies the case's error scale (lossproofs.checks.error_scale: Σ|ℓ_i| for
# reductions, max|expected| otherwise, never below 1), so a bound in units of ε covers
# cancellation in x − logsumexp(x) and in sums of terms of either sign.
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("float64", "forward"): Tolerance(
        64 * _EPS["float64"], 64 * _EPS["float64"],
        "float64 throughout: a handful of roundings per term plus ≤ 64-term sums, ≤ 1 ε each"),
    ("float64", "gradient"): Tolerance(
        64 * _EPS["float64"], 64 * _EPS["float64"],
        "float64 throughout: softmax, scaling by weights and 1/denominator, ≤ 1 ε each"),
    ("float32", "forward"): Tolerance(
        64 * _EPS["float32"], 64 * _EPS["float32"],
        "float32 arithmetic on float32-rounded inputs: same operation count as float64"),
    ("float32", "gradient"): Tolerance(
        64 * _EPS["float32"], 64 * _EPS["float32"],
        "float32 arithmetic on float32-rounded inputs: same operation count as float64"),
    ("float16", "forward"): Tolerance(
        4 * _EPS["float16"], 4 * _EPS["float16"],
        "computed in float32 and rounded once to float16 (½ ε), plus float16 reductions"),
    ("float16", "gradient"): Tolerance(
        4 * _EPS["float16"], 4 * _EPS["float16"],
        "float16 grad_output times a float32-computed factor, rounded to float16"),
    ("bfloat16", "forward"): Tolerance(
        4 * _EPS["bfloat16"], 4 * _EPS["bfloat16"],
        "computed in float32 and rounded once to bfloat16 (½ ε), plus bfloat16 reductions"),
    ("bfloat16", "gradient"): Tolerance(
        4 * _EPS["bfloat16"], 4 * _EPS["bfloat16"],
        "bfloat16 grad_output times a float32-computed factor, rounded to bfloat16"),
}


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
    return _EPS[str(dtype).removeprefix("torch.")]
