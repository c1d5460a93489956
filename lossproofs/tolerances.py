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
        16 * _EPS["float64"], 16 * _EPS["float64"],
        "a few roundings per term and sums of ≤ 135 terms; worst seen 1.4 ε (nll_loss sum)"),
    ("float64", "gradient"): Tolerance(
        16 * _EPS["float64"], 16 * _EPS["float64"],
        "softmax, weights and 1/denominator, ≤ 1 ε each; worst seen 2.6 ε (cross_entropy)"),
    ("float32", "forward"): Tolerance(
        16 * _EPS["float32"], 16 * _EPS["float32"],
        "float32 arithmetic, float64's operation count; worst seen 4.0 ε (BCE-logits)"),
    ("float32", "gradient"): Tolerance(
        16 * _EPS["float32"], 16 * _EPS["float32"],
        "float32 arithmetic, float64's operation count; worst seen 4.6 ε (BCE-logits)"),
    ("float16", "forward"): Tolerance(
        4 * _EPS["float16"], 4 * _EPS["float16"],
        "float32 internally, rounded to float16 (½ ε) once or twice; worst seen 1.4 ε"),
    ("float16", "gradient"): Tolerance(
        4 * _EPS["float16"], 4 * _EPS["float16"],
        "float16 grad_output times a float32-computed factor, rounded; worst seen 1.7 ε"),
    ("bfloat16", "forward"): Tolerance(
        4 * _EPS["bfloat16"], 4 * _EPS["bfloat16"],
        "float32 internally, rounded to bfloat16 (½ ε) once or twice; worst seen 1.4 ε"),
    ("bfloat16", "gradient"): Tolerance(
        4 * _EPS["bfloat16"], 4 * _EPS["bfloat16"],
        "bfloat16 grad_output times a float32-computed factor, rounded; worst seen 2.1 ε"),
}
# "worst seen": max of |actual − expected| / (ε·(scale + |expected|)) over 400 draws per
# function × dtype of the ordinary strategies, torch 2.13 CPU (scripted sweep, 2026-11-27).


def tolerance(dtype: str, kind: str = "forward") -> Tolerance:
    """The bound for results computed in ``dtype`` (``"float64"``, ``"float32"``, ``"float16"``,
    ``"bfloat16"``); ``kind`` is ``"forward"`` or ``"gradient"``."""
    return TOLERANCES[(str(dtype).removeprefix("torch."), kind)]


# ---------------------------------------------------------------------------------------------
# ULP bounds against the exact oracle (owned by the accuracy work, lossproofs.oracle).
# Keys: (function name, dtype name, "forward" | "gradient") -> max ULPs allowed.
# Counted by ``lossproofs.accuracy.floored_ulps``: ulps of max(|exact|, floor), where the floor is
# the sum of magnitudes of the terms torch's documented formula combines (a backward-stable
# formula's error is a few ulps of that), and subnormal exact results are counted in units of the
# smallest normal. Values measured on the extreme strata (docs/accuracy.md), rounded up to a
# power of two with at least 1.5x headroom. Low precision: torch computes in float32 and rounds
# once, so ≤ 0.5 ulp plus a little; 2 allows the float32 error to straddle a rounding boundary.
ULP_BOUNDS: dict[tuple[str, str, str], float] = {
    # softmax: exp(x − m)/S; max measured 2.0 (f64) and 3.8 (f32, C = 2000: the class sum S
    # carries ⌈log₂ C⌉+1 roundings); the gradient y⊙(g − Σg⊙y) 1.0 / 1.8.
    ("softmax", "float64", "forward"): 4, ("softmax", "float64", "gradient"): 4,
    ("softmax", "float32", "forward"): 8, ("softmax", "float32", "gradient"): 4,
    ("softmax", "float16", "forward"): 2, ("softmax", "float16", "gradient"): 2,
    ("softmax", "bfloat16", "forward"): 2, ("softmax", "bfloat16", "gradient"): 2,
    # log_softmax: (x − m) − log S; max measured 1.0 (forward) and 1.3 (gradient).
    ("log_softmax", "float64", "forward"): 2, ("log_softmax", "float64", "gradient"): 2,
    ("log_softmax", "float32", "forward"): 2, ("log_softmax", "float32", "gradient"): 2,
    ("log_softmax", "float16", "forward"): 2, ("log_softmax", "float16", "gradient"): 2,
    ("log_softmax", "bfloat16", "forward"): 2, ("log_softmax", "bfloat16", "gradient"): 2,
    # logsumexp: m + log S; max measured 1.0; gradient g·exp(x − lse) 1.25.
    ("logsumexp", "float64", "forward"): 2, ("logsumexp", "float64", "gradient"): 2,
    ("logsumexp", "float32", "forward"): 2, ("logsumexp", "float32", "gradient"): 2,
    ("logsumexp", "float16", "forward"): 2, ("logsumexp", "float16", "gradient"): 2,
    ("logsumexp", "bfloat16", "forward"): 2, ("logsumexp", "bfloat16", "gradient"): 2,
    # nll_loss: −w·x then a (weighted) sum; max measured 1.0 / 1.7 (bf16 gradient: w/Σw).
    ("nll_loss", "float64", "forward"): 2, ("nll_loss", "float64", "gradient"): 2,
    ("nll_loss", "float32", "forward"): 2, ("nll_loss", "float32", "gradient"): 2,
    ("nll_loss", "float16", "forward"): 2, ("nll_loss", "float16", "gradient"): 2,
    ("nll_loss", "bfloat16", "forward"): 2, ("nll_loss", "bfloat16", "gradient"): 4,
    # cross_entropy: forward max 1.4; gradient 5.0 (f64, ties: p − 1 and the smoothing term
    # p·Σw − w each round), 2.6 (half types), and 21 in float32 for the fused kernel with label
    # smoothing at C = 2000 (Σ_c w_c and p·Σw accumulate ⌈log₂ C⌉+1 ≤ 18 roundings at C ≤ 1e5;
    # the composed nll_loss(log_softmax) has no smoothing and stays at 2.0).
    ("cross_entropy", "float64", "forward"): 2, ("cross_entropy", "float64", "gradient"): 8,
    ("cross_entropy", "float32", "forward"): 4, ("cross_entropy", "float32", "gradient"): 32,
    ("cross_entropy", "float16", "forward"): 2, ("cross_entropy", "float16", "gradient"): 4,
    ("cross_entropy", "bfloat16", "forward"): 2, ("cross_entropy", "bfloat16", "gradient"): 4,
    # binary_cross_entropy: forward max 1.4 (bf16); gradient (p − y)/max(p(1−p), ε) 2.0.
    ("binary_cross_entropy", "float64", "forward"): 2,
    ("binary_cross_entropy", "float64", "gradient"): 4,
    ("binary_cross_entropy", "float32", "forward"): 2,
    ("binary_cross_entropy", "float32", "gradient"): 4,
    ("binary_cross_entropy", "float16", "forward"): 2,
    ("binary_cross_entropy", "float16", "gradient"): 2,
    ("binary_cross_entropy", "bfloat16", "forward"): 4,
    ("binary_cross_entropy", "bfloat16", "gradient"): 4,
    # binary_cross_entropy_with_logits: forward max 1.4 (bf16); gradient 1.7.
    ("binary_cross_entropy_with_logits", "float64", "forward"): 2,
    ("binary_cross_entropy_with_logits", "float64", "gradient"): 2,
    ("binary_cross_entropy_with_logits", "float32", "forward"): 2,
    ("binary_cross_entropy_with_logits", "float32", "gradient"): 4,
    ("binary_cross_entropy_with_logits", "float16", "forward"): 2,
    ("binary_cross_entropy_with_logits", "float16", "gradient"): 2,
    ("binary_cross_entropy_with_logits", "bfloat16", "forward"): 4,
    ("binary_cross_entropy_with_logits", "bfloat16", "gradient"): 4,
}


def ulp_bound(function: str, dtype: str, direction: str = "forward") -> float:
    """Largest allowed distance, in ULPs of ``dtype``, from the exact answer."""
    return ULP_BOUNDS[(function, str(dtype).removeprefix("torch."), direction)]


def eps(dtype: str) -> float:
    """Machine epsilon of a torch dtype name (bfloat16 included, which NumPy lacks)."""
    return _EPS[str(dtype).removeprefix("torch.")]
