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

from lossproofs.dtypes import DTYPES, eps


@dataclass(frozen=True)
class Tolerance:
    """``|actual − expected| ≤ atol + rtol·|expected|``, elementwise; ``why`` justifies it."""

    rtol: float
    atol: float
    why: str


_EPS = {dtype: eps(dtype) for dtype in DTYPES}  # 2⁻⁵², 2⁻²³, 2⁻¹⁰, 2⁻⁷

# Scale: ``atol`` multiplies the case's error scale, so a bound in units of ε covers
# cancellation in x − logsumexp(x) and in sums of terms of either sign. Reduced outputs: one
# scale, Σ|ℓ_i| (lossproofs.checks.error_scale, never below 1). Unreduced outputs and gradients:
# one scale per element (checks.forward_scale, checks.gradient_scale), the error model's floor
# for that element (lossproofs.error_model.floors: the magnitudes of the terms its formula
# combines), capped at the whole-result scale max|expected| (≥ 1; 1 for elementwise gradients),
# so a small element is bounded by its own terms, not by the largest element's.
# Representability floor: checks.compare never takes the scale below the dtype's smallest normal
# (lossproofs.dtypes.tiny): there the spacing stops shrinking at the subnormal step tiny·ε, which
# a correctly rounded result may miss by half, so atol·tiny allows atol/ε such steps.
TOLERANCES: dict[tuple[str, str], Tolerance] = {
    ("float64", "forward"): Tolerance(
        16 * _EPS["float64"], 16 * _EPS["float64"],
        "a few roundings per term and sums of ≤ 135 terms; worst seen 1.9 ε (BCE-logits)"),
    ("float64", "gradient"): Tolerance(
        16 * _EPS["float64"], 16 * _EPS["float64"],
        "softmax, weights and 1/denominator, ≤ 1 ε each; worst seen 2.7 ε (logsumexp)"),
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
        "float16 grad_output times a float32-computed factor, rounded; worst seen 2.0 ε"),
    ("bfloat16", "forward"): Tolerance(
        4 * _EPS["bfloat16"], 4 * _EPS["bfloat16"],
        "float32 internally, rounded to bfloat16 (½ ε) once or twice; worst seen 1.4 ε"),
    ("bfloat16", "gradient"): Tolerance(
        4 * _EPS["bfloat16"], 4 * _EPS["bfloat16"],
        "bfloat16 grad_output times a float32-computed factor, rounded; worst seen 2.1 ε"),
}
# "worst seen": max of |actual − expected| / (ε·(scale + |expected|)) over 400 draws per
# function × dtype of the ordinary strategies, torch 2.13 CPU (scripted sweep, 2026-11-27);
# raised where the per-element scales give more (100 draws per function × dtype, 2026-11-29:
# float64 forward 1.9, gradient 2.7; float16 gradient 2.0; the rest at most the values above).


def tolerance(dtype: str, kind: str = "forward") -> Tolerance:
    """The bound for results computed in ``dtype`` (``"float64"``, ``"float32"``, ``"float16"``,
    ``"bfloat16"``); ``kind`` is ``"forward"`` or ``"gradient"``."""
    return TOLERANCES[(str(dtype).removeprefix("torch."), kind)]


# ---------------------------------------------------------------------------------------------
# ULP bounds against the exact oracle (owned by the accuracy work, lossproofs.oracle).
# Keys: (function name, dtype name, "forward" | "gradient") -> max ULPs allowed.
# Counted by ``lossproofs.accuracy.floored_ulps``: ulps of max(|exact|, floor), where the floor is
# the sum of magnitudes of the terms torch's documented formula combines, times ⌈log₂ n⌉ + 1 for
# an n-term sum (a backward-stable formula's error is a few ulps of that), and subnormal exact
# results are counted in units of the smallest normal. Each bound is the largest value measured
# on the extreme strata (docs/accuracy/accuracy.md, CPU, torch 2.13; C ≤ 1e5, batches ≤ 2048)
# rounded up to a power of two with at least 1.5x headroom. Low precision: torch computes in
# float32 and rounds once, so ≤ 0.5 ulp plus a little.
ULP_BOUNDS: dict[tuple[str, str, str], float] = {
    # softmax exp(d)/S: measured forward 0.88 (f64), 1.6 (f32, C = 88k), 0.12 (half types);
    # gradient y⊙(g − Σg⊙y) 0.33 / 0.33 / 0.07.
    ("softmax", "float64", "forward"): 2, ("softmax", "float64", "gradient"): 2,
    ("softmax", "float32", "forward"): 4, ("softmax", "float32", "gradient"): 2,
    ("softmax", "float16", "forward"): 2, ("softmax", "float16", "gradient"): 2,
    ("softmax", "bfloat16", "forward"): 2, ("softmax", "bfloat16", "gradient"): 2,
    # log_softmax d − log S: measured forward 1.0 (f64, f32 below C ≈ 1e5; f32 at C = 88k is
    # the strict xfail test_large_vocabulary_log_softmax_sums_accurately_in_float32), ≤ 0.53
    # (half types); gradient g − exp(lp)·Σg ≤ 0.5.
    ("log_softmax", "float64", "forward"): 2, ("log_softmax", "float64", "gradient"): 2,
    ("log_softmax", "float32", "forward"): 2, ("log_softmax", "float32", "gradient"): 2,
    ("log_softmax", "float16", "forward"): 2, ("log_softmax", "float16", "gradient"): 2,
    ("log_softmax", "bfloat16", "forward"): 2, ("log_softmax", "bfloat16", "gradient"): 2,
    # logsumexp m + log S: measured forward ≤ 1.0; gradient g·exp(x − lse) ≤ 0.99.
    ("logsumexp", "float64", "forward"): 2, ("logsumexp", "float64", "gradient"): 2,
    ("logsumexp", "float32", "forward"): 2, ("logsumexp", "float32", "gradient"): 2,
    ("logsumexp", "float16", "forward"): 2, ("logsumexp", "float16", "gradient"): 2,
    ("logsumexp", "bfloat16", "forward"): 2, ("logsumexp", "bfloat16", "gradient"): 2,
    # nll_loss −w·x and a weighted sum: measured forward ≤ 1.0; gradient −w·g/Σw 1.23 (f32),
    # 1.67 (bf16: Σw in bfloat16 rounds at 2⁻⁸).
    ("nll_loss", "float64", "forward"): 2, ("nll_loss", "float64", "gradient"): 2,
    ("nll_loss", "float32", "forward"): 2, ("nll_loss", "float32", "gradient"): 2,
    ("nll_loss", "float16", "forward"): 2, ("nll_loss", "float16", "gradient"): 2,
    ("nll_loss", "bfloat16", "forward"): 2, ("nll_loss", "bfloat16", "gradient"): 4,
    # cross_entropy: measured forward 1.0 (f64), 1.39 (f32), 1.19 (f16), 0.82 (bf16); gradient
    # (1−ε)·w_t·(p − e_t) + (ε/C)·(p·Σw − w): 2.0 (f64), 1.91 (f32), ≤ 0.98 (half types).
    ("cross_entropy", "float64", "forward"): 2, ("cross_entropy", "float64", "gradient"): 4,
    ("cross_entropy", "float32", "forward"): 4, ("cross_entropy", "float32", "gradient"): 4,
    ("cross_entropy", "float16", "forward"): 2, ("cross_entropy", "float16", "gradient"): 2,
    ("cross_entropy", "bfloat16", "forward"): 2, ("cross_entropy", "bfloat16", "gradient"): 2,
    # binary_cross_entropy: measured forward ≤ 1.1, 1.4 (bf16); gradient (p − y)/max(p(1−p), ε):
    # 2.0 (f64), 2.77 (f32), 1.29 (f16), 2.58 (bf16).
    ("binary_cross_entropy", "float64", "forward"): 2,
    ("binary_cross_entropy", "float64", "gradient"): 4,
    ("binary_cross_entropy", "float32", "forward"): 2,
    ("binary_cross_entropy", "float32", "gradient"): 8,
    ("binary_cross_entropy", "float16", "forward"): 2,
    ("binary_cross_entropy", "float16", "gradient"): 2,
    ("binary_cross_entropy", "bfloat16", "forward"): 4,
    ("binary_cross_entropy", "bfloat16", "gradient"): 4,
    # binary_cross_entropy_with_logits: measured forward ≤ 1.09; gradient 2.0 (f64), 1.96 (f32),
    # 0.8 (f16), 1.56 (bf16).
    ("binary_cross_entropy_with_logits", "float64", "forward"): 2,
    ("binary_cross_entropy_with_logits", "float64", "gradient"): 4,
    ("binary_cross_entropy_with_logits", "float32", "forward"): 2,
    ("binary_cross_entropy_with_logits", "float32", "gradient"): 4,
    ("binary_cross_entropy_with_logits", "float16", "forward"): 2,
    ("binary_cross_entropy_with_logits", "float16", "gradient"): 2,
    ("binary_cross_entropy_with_logits", "bfloat16", "forward"): 2,
    ("binary_cross_entropy_with_logits", "bfloat16", "gradient"): 4,
    # linear_cross_entropy, against lossproofs.oracle.linear (exact logits), floored at the
    # matmul's first-order error terms (comparison.linear_error_terms); measured by
    # accuracy_linear.ulp_study on its ordinary, extreme-logit and large-vocabulary strata (mean,
    # torch 2.13 CPU), worst in brackets. Reference path (linear, then cross_entropy):
    # forward [0] f64, [0.18] f32, [0.40] f16, [0.56] bf16; gradients [2.0], [3.53], [3.36],
    # [2.01] (three matmul-fed gradients, each a sum over the batch or the vocabulary).
    ("linear_cross_entropy", "float64", "forward"): 2,
    ("linear_cross_entropy", "float64", "gradient"): 4,
    ("linear_cross_entropy", "float32", "forward"): 2,
    ("linear_cross_entropy", "float32", "gradient"): 8,
    ("linear_cross_entropy", "float16", "forward"): 2,
    ("linear_cross_entropy", "float16", "gradient"): 8,
    ("linear_cross_entropy", "bfloat16", "forward"): 2,
    ("linear_cross_entropy", "bfloat16", "gradient"): 4,
    # The chunked path (accurate, balanced, compact; accumulator in the input's dtype): forward
    # [0.5] f64, [0.18] f32, [0.15] f16, [0.75] bf16; gradients [4.5] f64, [6.58] f32 (large
    # vocabulary: per-chunk partial sums), [3.89] f16, [1.55] bf16.
    ("linear_cross_entropy[chunked]", "float64", "forward"): 2,
    ("linear_cross_entropy[chunked]", "float64", "gradient"): 8,
    ("linear_cross_entropy[chunked]", "float32", "forward"): 2,
    ("linear_cross_entropy[chunked]", "float32", "gradient"): 16,
    ("linear_cross_entropy[chunked]", "float16", "forward"): 2,
    ("linear_cross_entropy[chunked]", "float16", "gradient"): 8,
    ("linear_cross_entropy[chunked]", "bfloat16", "forward"): 2,
    ("linear_cross_entropy[chunked]", "bfloat16", "gradient"): 4,
    # The chunked path with a float32 accumulator (acc_dtype=float32, or acc_policy auto, which
    # picks it on CPU for half types): forward [0.10] f16, [0.25] bf16; gradients [3.89] f16
    # (accurate 1.71), [0.84] bf16 (a bound of 2 is the floor every row keeps).
    ("linear_cross_entropy[chunked, float32 accumulator]", "float16", "forward"): 2,
    ("linear_cross_entropy[chunked, float32 accumulator]", "float16", "gradient"): 8,
    ("linear_cross_entropy[chunked, float32 accumulator]", "bfloat16", "forward"): 2,
    ("linear_cross_entropy[chunked, float32 accumulator]", "bfloat16", "gradient"): 2,
}


def ulp_bound(function: str, dtype: str, direction: str = "forward") -> float:
    """Largest allowed distance, in ULPs of ``dtype``, from the exact answer."""
    return ULP_BOUNDS[(function, str(dtype).removeprefix("torch."), direction)]
