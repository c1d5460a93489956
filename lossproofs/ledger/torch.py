"""torch's departures from the mathematics in values, gradients, special values and rejections.

Each entry was found or confirmed by this suite (torch 2.13 CPU unless it says otherwise); the
accuracy-bound entries live in :mod:`lossproofs.ledger.accuracy`. ``affected`` predicates
return the affected elements (a mask broadcastable to the checked result) or a bool for the
whole case, and each has a ``near_miss`` just outside it where the check exposes it.
"""

from __future__ import annotations

import math

import numpy as np

from lossproofs.cases import Case
from lossproofs.dtypes import eps, max_finite, smallest_subnormal, tiny
from lossproofs.ledger.record import TORCH, TORCH_COMPILE, TORCH_CUDA, TORCH_EAGER, Divergence
from lossproofs.tolerances import tolerance

EAGER = frozenset({TORCH_EAGER})
ANY_TORCH = frozenset({TORCH})
INF = math.inf
_LSE_0_1 = math.log1p(math.e)  # log(e^0 + e^1)

_X = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.25, -0.5, 3.0], [0.0, 0.0, 1.0, -2.0]])
_T = np.array([0, 3, 1])


def _is_index_case(case: Case) -> bool:
    return (case.function in ("nll_loss", "cross_entropy") and len(case.arrays) > 1
            and case.arrays[1].dtype.kind in "iu" and case.arrays[1].shape != case.arrays[0].shape)


# -- predicates ------------------------------------------------------------------------------------
def _nll_4d_permuted(case: Case, direction: str) -> bool:
    return (direction == "gradient" and case.function == "nll_loss"
            and case.arrays[0].ndim == 4 and case.layout == "transposed")


def _uint8_smoothed_weighted_mean(case: Case, direction: str) -> bool:
    return (case.function == "cross_entropy" and len(case.arrays) > 1
            and case.arrays[1].dtype == np.uint8 and case.params.get("weight") is not None
            and bool(case.params.get("label_smoothing")) and case.params.get("reduction") == "mean")


def _compiled_uint8_target(case: Case, direction: str) -> bool:
    return (case.function in ("nll_loss", "cross_entropy") and len(case.arrays) > 1
            and case.arrays[1].dtype == np.uint8)


def _cuda_unbatched_all_ignored_mean(case: Case, direction: str) -> bool:
    if not (_is_index_case(case) and case.arrays[0].ndim == 1
            and case.params.get("reduction", "mean") == "mean"):
        return False
    return int(case.arrays[1]) == case.params.get("ignore_index", -100)


def _bce_weights(case: Case, y: np.ndarray, key: str) -> np.ndarray:
    v = case.reference_args()[1].get(key)
    return np.ones_like(y) if v is None else np.broadcast_to(v, y.shape)


def _bce_log_weight(case: Case, y: np.ndarray) -> np.ndarray:
    """lw = 1 + (pw − 1)·y, the weight of −log σ(x) in torch's BCE-with-logits."""
    pw = case.reference_args()[1].get("pos_weight")
    return 1.0 + (np.ones_like(y) if pw is None else np.broadcast_to(pw, y.shape) - 1.0) * y


def _exceeds_forward_bound(case: Case, rounding: np.ndarray, loss: np.ndarray,
                           floor: float):
    """Where ``rounding`` exceeds the forward bound at max(``floor``, |loss|) per element, or,
    for ``sum`` and ``mean``, the summed rounding at the summed |loss| (both ÷N for a mean)."""
    tol = tolerance(case.dtype, "forward")
    loss = np.abs(loss)
    reduction = case.params.get("reduction")
    if reduction in ("sum", "mean"):
        denominator = max(loss.size, 1) if reduction == "mean" else 1
        rounding, loss = np.sum(rounding) / denominator, np.sum(loss) / denominator
        return bool(rounding > tol.atol * max(1.0, loss) + tol.rtol * loss)
    return rounding > tol.atol * np.maximum(floor, loss) + tol.rtol * loss


def _bce_logits_cancellation(case: Case, direction: str):
    """torch evaluates (1 − y)·x − lw·log σ(x), whose two terms nearly cancel when the logit
    agrees with the target: half an ulp of each term can exceed the table's bound. The
    elements (or, reduced, the scalar) where that rounding exceeds the bound."""
    if direction != "forward" or case.function != "binary_cross_entropy_with_logits":
        return False
    (x, y), _ = case.reference_args()
    lw = _bce_log_weight(case, y)
    w = np.abs(_bce_weights(case, y, "weight"))
    log_sig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))  # log σ(x)
    terms = w * (np.abs((1 - y) * x) + np.abs(lw * log_sig))
    loss = w * ((1 - y) * x - lw * log_sig)
    return _exceeds_forward_bound(case, 0.5 * eps(case.dtype) * terms, loss, 1.0)


def bce_logits_gradient_cancels(case: Case, ulps_per_term: float, sigmoid_floor: float):
    """The elements where torch's BCE-with-logits input gradient, formed from rounded terms,
    can be off beyond the gradient bound (|grad_output| ≤ 2, the suite's draw).

    Without ``pos_weight`` torch forms σ(x) − y; with it ((pw·y + 1) − y)·σ(x) − pw·y (ATen's
    ``t.add(1).sub(target).mul(input.sigmoid()).sub(t)``, t = pw·y). Each rounded term carries
    ``ulps_per_term`` ulps: σ(x) and y, or σ(x)·(|pw·y + 1| + |y|) (the coefficient's own
    cancellation: for y near 1 and a small pw, pw·y + 1 − y is much smaller than its terms)
    and pw·y. σ(x) is floored at ``sigmoid_floor`` (where the dtype stops resolving it)."""
    (x, y), params = case.reference_args()
    w = np.abs(_bce_weights(case, y, "weight"))
    with np.errstate(over="ignore"):
        sig = 1.0 / (1.0 + np.exp(-x))
    floored = np.maximum(sig, sigmoid_floor)
    if params.get("pos_weight") is None:
        exact = w * np.abs(sig - y)
        terms = floored + np.abs(y)
    else:
        pw_y = _bce_weights(case, y, "pos_weight") * y
        exact = w * np.abs((pw_y + 1.0 - y) * sig - pw_y)
        terms = floored * (np.abs(pw_y + 1.0) + np.abs(y)) + np.abs(pw_y)
    rounding = 2.0 * w * ulps_per_term * eps(case.dtype) * terms
    tol = tolerance(case.dtype, "gradient")
    return rounding > tol.atol + tol.rtol * 2.0 * exact


def _bce_logits_half_weighted_underflow(case: Case, direction: str):
    """float16: torch rounds the unweighted loss (1 − y)·x − log σ(x) to float16 before
    multiplying by the weight, so where it is subnormal (below 2⁻¹⁴) its rounding, up to half
    the subnormal spacing 2⁻²⁴ for each of log σ(x) and the difference, comes back multiplied by
    |w|. The elements (or, reduced, the scalar) where that exceeds the bound at a scale no
    larger than max(2⁻¹⁴, |loss|)."""
    if not (direction == "forward" and case.function == "binary_cross_entropy_with_logits"
            and case.dtype == "float16" and case.params.get("weight") is not None):
        return False
    (x, y), _ = case.reference_args()
    w = np.abs(_bce_weights(case, y, "weight"))
    softplus_neg = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))  # −log σ(x)
    unweighted = np.abs((1 - y) * x + _bce_log_weight(case, y) * softplus_neg)
    rounding = np.where(unweighted < tiny("float16"), w * smallest_subnormal("float16"), 0.0)
    return _exceeds_forward_bound(case, rounding, w * unweighted, tiny("float16"))


def _bce_logits_gradient_cancellation(case: Case, direction: str):
    """Half an ulp of each term, in the half types (which round σ(x) and each product)."""
    if not (direction == "gradient" and case.function == "binary_cross_entropy_with_logits"
            and case.dtype in ("float16", "bfloat16")):
        return False
    return bce_logits_gradient_cancels(case, 0.5, 2.0**-14)


def _bce_logits_pos_weight_coefficient(case: Case, direction: str):
    """float32 and float64 with pos_weight: the shared model at 2.5 ulps per term (as
    lossproofs.ledger.large measured it)."""
    if not (direction == "gradient" and case.function == "binary_cross_entropy_with_logits"
            and case.dtype in ("float32", "float64")
            and case.params.get("pos_weight") is not None):
        return False
    return bce_logits_gradient_cancels(case, 2.5, tiny(case.dtype))


def _bce_half_clamp(case: Case, direction: str):
    if not (direction == "gradient" and case.function == "binary_cross_entropy"
            and case.dtype == "float16"):
        return False
    p = case.rounded(case.arrays[0])
    return (p == 0.0) | (p == 1.0)


def _bce_half_gradient_intermediate_overflow(case: Case, direction: str):
    """torch forms (p − y)/max(p(1 − p), ε) in float16 before multiplying by the weight."""
    if not (direction == "gradient" and case.function == "binary_cross_entropy"
            and case.dtype == "float16"):
        return False
    (p, y), _ = case.reference_args()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 2.0 * np.abs(p - y) / np.maximum(p * (1.0 - p), 1e-12)
    return ratio > max_finite("float16")


def _bce_subnormal_numerator(case: Case, direction: str):
    if not (direction == "gradient" and case.function == "binary_cross_entropy"):
        return False
    p, y = (case.rounded(a) for a in case.arrays)
    d = np.abs(p - y)
    # grad_output·(p − y) below the dtype's smallest normal: with the check's own grad_output
    # when given (times 1/N for a mean, in either order), else for |grad_output| ≤ 2.
    if case.grad_output is None:
        return (d > 0) & (2.0 * d < tiny(case.dtype))
    g = np.abs(np.broadcast_to(case.grad_output, d.shape)) if np.ndim(case.grad_output) else (
        np.full(d.shape, abs(float(case.grad_output))))
    per_element = g / max(d.size, 1) if case.params.get("reduction", "mean") == "mean" else g
    return (d > 0) & (np.minimum(g, per_element) * d < tiny(case.dtype))


def _nll_mean_gradient_overflow(case: Case, direction: str) -> bool:
    if not (direction == "gradient" and _is_index_case(case)
            and case.params.get("reduction") == "mean" and case.params.get("weight") is not None):
        return False
    (x, t), params = case.reference_args()
    c = x.shape[0 if x.ndim == 1 else 1]
    kept = (t != params.get("ignore_index", -100)) & (t >= 0) & (t < c)
    total = float(np.sum(params["weight"][t[kept]]))
    # grad_output is drawn from [−2, 2]; torch forms grad_output / total_weight first, so every
    # element of the gradient is affected.
    return 0 < total and 2.0 / total > max_finite(case.dtype)


# -- entries ---------------------------------------------------------------------------------------
ENTRIES: tuple[Divergence, ...] = (
    Divergence(
        "nll_loss backward on a permuted 4-D input", "nll_loss", "gradient",
        Case("nll_loss", (np.arange(24.0).reshape(2, 3, 2, 2) / 10,
                          np.array([[[0, 1], [2, 0]], [[1, 1], [0, 2]]])),
             {"reduction": "mean"}, "float64", "transposed"),
        "nll_loss on a 4-D input whose memory is permuted (channels_last, movedim) raises "
        "'RuntimeError: grad_input must be contiguous' in backward: the 4-D path skips the "
        ".contiguous() the 3-D and 5-D paths make, so the gradient buffer keeps the input's "
        "strides", "https://github.com/pytorch/pytorch/issues/175084", EAGER,
        raises=RuntimeError, direction="gradient", affected=_nll_4d_permuted,
        near_miss=Case("nll_loss", (np.arange(24.0).reshape(2, 3, 2, 2) / 10,
                                    np.array([[[0, 1], [2, 0]], [[1, 1], [0, 2]]])),
                       {"reduction": "mean"}, "float64", "contiguous")),
    Divergence(
        "cross_entropy rejects a uint8 target with weight, smoothing and mean", "cross_entropy",
        "forward",
        Case("cross_entropy", (np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]]),
                               np.array([0, 2], dtype=np.uint8)),
             {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "mean", "label_smoothing": 0.2}),
        "torch accepts uint8 class-index targets for (C,) and (N, C) inputs, but with a class "
        "weight, label_smoothing > 0 and reduction='mean' its smoothing denominator gathers "
        "weight[target] and raises 'RuntimeError: gather(): Expected dtype int32/int64 for "
        "index' (found by this suite)", families=ANY_TORCH, raises=RuntimeError,
        affected=_uint8_smoothed_weighted_mean,
        near_miss=Case("cross_entropy", (np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]]),
                                         np.array([0, 2], dtype=np.uint8)),
                       {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "sum",
                        "label_smoothing": 0.2})),
    Divergence(
        "torch.compile rejects uint8 class-index targets", "nll_loss", "forward",
        Case("nll_loss", (np.log(np.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])),
                          np.array([0, 2], dtype=np.uint8)), {"reduction": "mean"}),
        "eager nll_loss and cross_entropy accept uint8 class indices for (C,) and (N, C) "
        "inputs, but under torch.compile the fake-tensor (meta) decomposition gathers with the "
        "target and raises 'RuntimeError: gather(): Expected dtype int32/int64 for index, but "
        "got torch.uint8' (found with --target compile; related: the meta gather failure of "
        "pytorch#155247)", "https://github.com/pytorch/pytorch/issues/155247",
        frozenset({TORCH_COMPILE}), raises=RuntimeError, affected=_compiled_uint8_target,
        near_miss=Case("nll_loss", (np.log(np.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])),
                                    np.array([0, 2])), {"reduction": "mean"})),
    Divergence(
        "nll_loss on CUDA: mean over an ignored unbatched target is 0, not NaN", "nll_loss",
        "forward",
        Case("nll_loss", (np.array([0.0]), np.array(-100)), {"reduction": "mean"}, "bfloat16"),
        "for a (C,) input whose only target is ignored, reduction='mean' is 0/0: torch on CPU "
        "(and on CUDA for batched inputs) returns NaN, torch on CUDA returns 0.0 for the "
        "unbatched input (found on an H200, torch 2.11.0+cu130)", families=frozenset({TORCH_CUDA}),
        affected=_cuda_unbatched_all_ignored_mean,
        near_miss=Case("nll_loss", (np.array([[0.0]]), np.array([-100])), {"reduction": "mean"},
                       "bfloat16")),
    Divergence(
        "binary_cross_entropy_with_logits cancels when the logit agrees with the target",
        "binary_cross_entropy_with_logits", "forward",
        Case("binary_cross_entropy_with_logits", (np.array([-4.0, -4.0, -4.0]), np.zeros(3)),
             {"reduction": "sum"}, "float16"),
        "torch computes (1 − y)·x − lw·log σ(x); when x agrees with y the two terms cancel, so "
        "in float16 softplus(−4)·3 = 0.0544 comes back as 0.0586 (7.6 % off): half an ulp of "
        "|x| = 4 is 0.002; in float64, six logits of −10 with target 0 summed are 1.9e-11 "
        "relative off. The softplus form (1 − y)·softplus(x) + lw·y·softplus(−x) has no "
        "cancellation", "https://github.com/pytorch/pytorch/issues/195529", EAGER,
        affected=_bce_logits_cancellation,
        near_miss=Case("binary_cross_entropy_with_logits",
                       (np.array([4.0, 4.0, 4.0]), np.zeros(3)), {"reduction": "sum"},
                       "float16")),
    Divergence(
        "binary_cross_entropy_with_logits float16 loss underflows before the weight multiplies",
        "binary_cross_entropy_with_logits", "forward",
        Case("binary_cross_entropy_with_logits", (np.array([15.7421875]), np.array([1.0])),
             {"weight": np.array([292.5]), "reduction": "none"}, "float16"),
        "torch forms (1 − y)·x − log σ(x) in float16 and multiplies by the weight last: at "
        "x = 15.74, y = 1 the unweighted loss softplus(−x) = 1.46e-7 is subnormal in float16 "
        "and rounds to 1.19e-7, so with weight 292.5 the loss is 3.49e-5 where it is 4.26e-5 "
        "(18 % off; found by the size tier's total-weight stratum, torch 2.13 CPU; float32 "
        "inputs would need a loss below 1.2e-38; no upstream issue found)", families=EAGER,
        affected=_bce_logits_half_weighted_underflow,
        near_miss=Case("binary_cross_entropy_with_logits", (np.array([15.7421875]),
                                                            np.array([1.0])),
                       {"weight": np.array([1.0]), "reduction": "none"}, "float16")),
    Divergence(
        "binary_cross_entropy_with_logits low-precision gradient cancels σ(x) − y",
        "binary_cross_entropy_with_logits", "gradient",
        Case("binary_cross_entropy_with_logits", (np.array([5.0]), np.array([1.0])),
             {"weight": np.array(2.0), "pos_weight": np.array([3.875]), "reduction": "none"},
             "float16"),
        "torch's backward forms (pw·y + 1 − y)·σ(x) − pw·y with σ(x) rounded to float16 or "
        "bfloat16: for x = 5, y = 1 the difference σ(x) − 1 = −0.0067 keeps only a few bits "
        "and the gradient comes back 5 % off in float16 (20 % in bfloat16 at x = 4); the exact "
        "form −σ(−x) has no cancellation (found by the thorough profile)", families=EAGER,
        direction="gradient", affected=_bce_logits_gradient_cancellation, seed=4,
        near_miss=Case("binary_cross_entropy_with_logits", (np.array([-5.0]), np.array([1.0])),
                       {"weight": np.array(2.0), "pos_weight": np.array([3.875]),
                        "reduction": "none"}, "float16")),
    Divergence(
        "binary_cross_entropy_with_logits gradient: pos_weight's coefficient cancels",
        "binary_cross_entropy_with_logits", "gradient",
        Case("binary_cross_entropy_with_logits", (np.array([10.0]), np.array([0.998])),
             {"weight": np.array(3e10), "pos_weight": np.array([0.01]), "reduction": "sum"},
             "float32"),
        "with pos_weight, torch's backward forms the coefficient as (pw·y + 1) − y (ATen's "
        "t.add(1).sub(target), t = pw·y) before multiplying by σ(x) and subtracting pw·y: for y "
        "near 1 and a small pw the coefficient is much smaller than pw·y + 1, whose rounding it "
        "keeps; at x = 10, y = 0.998, pw = 0.01 the float32 gradient is 152 ulps off (float64 "
        "is exact there, but 19 ulps of float32 were found at y = 0.978, pw = 0.072 by the "
        "size tier's weight-range draw). Forming it as pw·y + (1 − y) keeps 1 − y exact "
        "for y ≥ 1/2 (Sterbenz) and removes the cancellation (found by this suite, torch 2.13 "
        "CPU; no upstream issue found)", families=EAGER, direction="gradient",
        affected=_bce_logits_pos_weight_coefficient,
        near_miss=Case("binary_cross_entropy_with_logits", (np.array([10.0]), np.array([0.5])),
                       {"weight": np.array(3e10), "pos_weight": np.array([0.01]),
                        "reduction": "sum"}, "float32")),
    Divergence(
        "binary_cross_entropy float16 gradient at p = 0 or 1", "binary_cross_entropy",
        "gradient",
        Case("binary_cross_entropy", (np.array([0.0, 1.0, 0.25]), np.array([0.0, 1.0, 1.0])),
             {"reduction": "none"}, "float16"),
        "torch clamps BCE's gradient denominator p(1 − p) at 1e-12, which rounds to 0 in "
        "float16: at p = 0 or 1 the gradient is 0/0 = NaN (or ±inf) instead of the "
        "(p − y)/1e-12 that float32 and bfloat16 give (found by this suite)", families=EAGER,
        direction="gradient", affected=_bce_half_clamp,
        near_miss=Case("binary_cross_entropy", (np.array([0.25, 0.75]), np.array([0.0, 1.0])),
                       {"reduction": "none"}, "float16")),
    Divergence(
        "binary_cross_entropy float16 gradient overflows before the weight multiplies",
        "binary_cross_entropy", "gradient",
        Case("binary_cross_entropy", (np.array([0.5, 1e-5]), np.array([1.0, 1.0])),
             {"weight": np.array(0.0), "reduction": "none"}, "float16"),
        "torch forms (p − y)/max(p(1 − p), ε) in float16 before multiplying by weight and "
        "grad_output: at p = 1e-5, y = 1 that is −1e5, beyond float16's 65504, so a zero "
        "weight gives 0·inf = NaN and a small one ±inf, where the gradient is 0 or "
        "representable (found by the thorough profile; the accuracy ledger pins the 'mean' "
        "twin)", families=EAGER, direction="gradient",
        affected=_bce_half_gradient_intermediate_overflow,
        near_miss=Case("binary_cross_entropy", (np.array([0.5, 1e-3]), np.array([1.0, 1.0])),
                       {"weight": np.array(0.0), "reduction": "none"}, "float16")),
    Divergence(
        "binary_cross_entropy float16 gradient rounds grad·(p − y) to float16 first",
        "binary_cross_entropy", "gradient",
        Case("binary_cross_entropy", (np.array([2.0**-23, 0.5]), np.array([0.0, 0.0])),
             {"reduction": "none"}, "float16"),
        "torch forms grad_output·(p − y) in float16 before dividing by p(1 − p): for p = 2⁻²³ "
        "the product is a float16 subnormal and rounds to one subnormal step, so the gradient "
        "comes back 9 % off (0.5 instead of 0.548), on CPU (torch 2.13) and CUDA (H200, "
        "torch 2.11) alike; float32 and bfloat16 do the same below their smallest normal "
        "(p − y ≈ 5e-41: 1e-5 relative off in float32, 88 % in bfloat16; found by this suite, "
        "the float32 case by a seeded dev run)", families=ANY_TORCH, direction="gradient",
        affected=_bce_subnormal_numerator,
        near_miss=Case("binary_cross_entropy", (np.array([2.0**-12, 0.5]), np.array([0.0, 0.0])),
                       {"reduction": "none"}, "float16")),
    Divergence(
        "nll_loss mean gradient overflows for a small total weight", "nll_loss", "gradient",
        Case("nll_loss", (np.array([[0.0, 1.0]]), np.array([0])),
             {"weight": np.array([2.0**-23, 1.0]), "reduction": "mean"}, "float16"),
        "torch's nll_loss backward divides grad_output by the total weight before multiplying "
        "by w[t]: in float16 with a total weight of 1.2e-7, 0.55/1.2e-7 overflows to inf "
        "(likewise float32 with a subnormal weight of 1.4e-45) although the gradient, "
        "−w·g/Σw = −g, is representable; the forward's Σ w·x underflows to 0 there too, "
        "returning 0 for a mean of −x (found by the thorough profile)", families=EAGER,
        direction="gradient", affected=_nll_mean_gradient_overflow,
        near_miss=Case("nll_loss", (np.array([[0.0, 1.0]]), np.array([0])),
                       {"weight": np.array([2.0**-10, 1.0]), "reduction": "mean"}, "float16")),
    # -- special values (expected: the mathematical value, derived in the reason) ---------------
    *(Divergence(
        name, "binary_cross_entropy_with_logits", "special value",
        Case("binary_cross_entropy_with_logits", (np.array([x]), np.array([y])),
             {"reduction": "none"}),
        reason, "https://github.com/pytorch/pytorch/issues/102894", ANY_TORCH,
        expected=np.array([value]))
      for name, x, y, value, reason in (
        ("BCE-with-logits at +inf logit with target 1", INF, 1.0, 0.0,
         "returns NaN: (1 − y)·x = 0·inf; the limit, −log σ(+inf), is 0"),
        ("BCE-with-logits at -inf logit with target 0", -INF, 0.0, 0.0,
         "returns NaN: (1 − y)·x − log σ(x) = −inf + inf; the limit, −log(1 − σ(−inf)), is 0"),
        ("BCE-with-logits at -inf logit with target 1", -INF, 1.0, INF,
         "returns NaN: (1 − y)·x = 0·(−inf); the loss −log σ(−inf) is +inf"),
    )),
    Divergence(
        "cross_entropy with zero probability on a masked class", "cross_entropy",
        "special value",
        Case("cross_entropy", (np.array([[-INF, 0.0, 1.0]]), np.array([[0.0, 0.5, 0.5]]))),
        "returns NaN from t·log p = 0·(−inf); with the convention 0·log 0 = 0 (as for index "
        "targets and scipy.special.xlogy) the loss is finite: −½·log p₁ − ½·log p₂",
        families=ANY_TORCH, expected=np.float64(0.5 * _LSE_0_1 + 0.5 * (_LSE_0_1 - 1.0))),
    Divergence(
        "cross_entropy label_smoothing = 1 with a masked target", "cross_entropy",
        "special value",
        Case("cross_entropy", (np.array([[-INF, 0.0, 1.0]]), np.array([0])),
             {"label_smoothing": 1.0}),
        "returns NaN from (1 − ε)·(−log p_t) = 0·inf; with ε = 1 the loss is the smoothing "
        "term alone, −(1/C)·Σ log p_c = +inf", families=ANY_TORCH, expected=np.float64(INF)),
    # -- invalid input accepted without an error (the reference raises ValueError) --------------
    *(Divergence(
        f"cross_entropy accepts a {what} label_smoothing", "cross_entropy", "rejects",
        Case("cross_entropy", (_X, _T), {"label_smoothing": value}),
        f"treats a {what} label_smoothing as 0 without an error; the reference raises "
        "ValueError naming label_smoothing and its value",
        "https://github.com/pytorch/pytorch/issues/134767", ANY_TORCH)
      for what, value in (("negative", -0.1), ("NaN", float("nan")))),
)
