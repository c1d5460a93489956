"""torch's departures from the mathematics that only inputs of realistic size show (found by
the size tier, ``lossproofs/suite/test_large.py``, torch 2.13 CPU; no upstream issue found for
any). Each ``affected`` predicate marks what the mechanism touches; each near miss is the same
case cut to an ordinary size (4 rows, at most 100 classes) with unit weights, which torch gets
right.
"""

from __future__ import annotations

import numpy as np

from lossproofs import reference
from lossproofs.cases import Case
from lossproofs.dtypes import max_finite, tiny
from lossproofs.ledger.record import TORCH, TORCH_EAGER, Divergence
from lossproofs.ledger.torch import bce_logits_gradient_cancels
from lossproofs.tolerances import eps, tolerance

ANY_TORCH = frozenset({TORCH})
EAGER = frozenset({TORCH_EAGER})


def _index_target(case: Case) -> bool:
    return (case.function in ("nll_loss", "cross_entropy")
            and case.arrays[1].shape != case.arrays[0].shape)


def _reference_sum(case: Case) -> float:
    """|Σ w·ℓ| over the batch, in float64: the sum a mean divides."""
    arrays, params = case.reference_args()
    with np.errstate(all="ignore"):
        total = getattr(reference, case.function)(*arrays, **{**params, "reduction": "sum"})
    return abs(float(total))


def _total_weight(case: Case) -> float:
    (x, t), params = case.reference_args()
    c = x.shape[0 if x.ndim == 1 else 1]
    kept = (t != params.get("ignore_index", -100)) & (t >= 0) & (t < c)
    w = params.get("weight")
    return float(np.sum(w[t[kept]])) if w is not None else float(np.sum(kept))


def _index_mean_sum_overflow(case: Case, direction: str) -> bool:
    return (direction == "forward" and case.function in ("nll_loss", "cross_entropy")
            and case.params.get("reduction", "mean") == "mean" and case.dtype != "float64"
            and (case.dtype == "float16" or _index_target(case))
            and _reference_sum(case) > max_finite(case.dtype))


def _index_mean_total_weight_overflow(case: Case, direction: str) -> bool:
    return (_index_target(case) and case.dtype != "float64"
            and case.params.get("reduction", "mean") == "mean"
            and _total_weight(case) > max_finite(case.dtype))


def _bce_mean_sum_overflow(case: Case, direction: str) -> bool:
    return (direction == "forward" and case.function.startswith("binary_cross_entropy")
            and case.params.get("reduction", "mean") == "mean"
            and case.dtype in ("float32", "bfloat16")
            and _reference_sum(case) > max_finite(case.dtype))


def _smoothing_row_sum_overflow(case: Case, direction: str) -> bool:
    """torch forms the smoothing term Σ_c w_c·log p_c per row, and for sum and mean its total
    over the kept rows, in the dtype before multiplying by ε/C."""
    if not (direction == "forward" and case.function == "cross_entropy" and _index_target(case)
            and case.dtype != "float64" and case.params.get("label_smoothing")):
        return False
    (x, t), params = case.reference_args()
    cd = 0 if x.ndim == 1 else 1
    w = params.get("weight")
    w = np.ones(x.shape[cd]) if w is None else w
    shape = [1] * x.ndim
    shape[cd] = -1
    row_sums = np.abs(np.sum(reference.log_softmax(x, cd) * w.reshape(shape), axis=cd))
    row_sums = np.where(t != params.get("ignore_index", -100), row_sums, 0.0)
    top = max_finite(case.dtype)
    if params.get("reduction", "mean") in ("sum", "mean") and np.sum(row_sums) > top:
        return True
    return bool(np.any(row_sums > top))


def _logsumexp_half_sum_overflow(case: Case, direction: str) -> bool:
    if not (case.function == "logsumexp" and case.dtype == "float16"):
        return False
    (x,), params = case.reference_args()
    dims = params["dim"] if isinstance(params["dim"], tuple) else (params["dim"],)
    lse = reference.logsumexp(x, dims, keepdim=True)
    # Σ exp(x − max) = exp(lse − max) ≤ the number of terms.
    if x.size == 0 or x.ndim == 0:  # no sum of several terms to overflow
        return False
    return bool(np.any(np.exp(lse - np.max(x, axis=dims, keepdims=True))
                       > max_finite(case.dtype)))


def _bce_mean_gradient_divides_last(case: Case, direction: str) -> bool:
    if not (direction == "gradient" and case.function == "binary_cross_entropy"
            and case.params.get("reduction", "mean") == "mean"):
        return False
    (p, y), params = case.reference_args()
    w = params.get("weight")
    w = np.ones_like(p) if w is None else np.broadcast_to(w, p.shape)
    with np.errstate(all="ignore"):
        # grad_output ≤ 2 in magnitude (the suite's draw), before the mean's 1/n.
        unscaled = 2.0 * np.abs(w * (p - y)) / np.maximum(p * (1.0 - p), 1e-12)
    return unscaled > max_finite(case.dtype)


def _bce_logits_gradient_cancellation(case: Case, direction: str):
    """The elements where torch's BCE-with-logits gradient cancels beyond the bound, in every
    dtype: lossproofs/ledger's criterion for the half types (which it covers) with each term
    counted at 2.5 ulps, not half of one: σ(x) = 1/(1 + e⁻ˣ) carries about an ulp (exp, 1 +,
    the division), and so do the coefficient (pw·y + 1) − y and the products with w and g.
    Measured (400 000 random draws each, with weight, pos_weight and grad_output): the error
    is at most 2.15 ε·|w·g| per unit of the terms' magnitude in float32, 1.74 in float64."""
    if not (direction == "gradient" and case.function == "binary_cross_entropy_with_logits"):
        return False
    return bce_logits_gradient_cancels(case, 2.5, tiny(case.dtype))


F16_MAX = "float16's largest finite value 65504"
_ISSUES = (
    (
        "nll_loss mean rounds the sum of losses to the dtype before dividing", "forward",
        _index_mean_sum_overflow,
        Case("cross_entropy", (np.tile([0.0, 10.0], (8000, 1)), np.zeros(8000, np.int64)),
             {"reduction": "mean"}, "float16"),
        "torch's nll_loss/cross_entropy forms reduction='mean' as (Σ w·ℓ in the dtype) / Σ w: "
        f"8000 losses of 10.00005 sum to 80000, beyond {F16_MAX}, so the mean is inf where it "
        "is 10.00005 (likewise float32 and bfloat16 beyond 3.4e38, and float16 probability "
        "targets); BCE's mean, by contrast, divides in float32 (found by this suite's size "
        "tier, torch 2.13 CPU; no upstream issue found)"),
    (
        "nll_loss mean divides by a total weight that overflows the dtype", "forward",
        _index_mean_total_weight_overflow,
        Case("nll_loss", (np.full((70000, 2), -0.25), np.zeros(70000, np.int64)),
             {"reduction": "mean"}, "float16"),
        "torch's nll_loss keeps the total weight Σ w[t_i] (the count of kept targets without a "
        f"weight) in the input's dtype: 70000 targets exceed {F16_MAX}, the total becomes inf "
        "and the mean of 70000 losses of 0.25 comes back 0 (or NaN when the sum overflows too); "
        "float32 and bfloat16 do the same for total weights beyond 3.4e38, and the gradient "
        "−w·g/Σw becomes 0 (found by this suite's size tier, torch 2.13 CPU; no upstream issue "
        "found)"),
    (
        "binary_cross_entropy mean overflows in float32 and bfloat16 before dividing",
        "forward", _bce_mean_sum_overflow,
        Case("binary_cross_entropy_with_logits", (np.zeros(8), np.zeros(8)),
             {"weight": np.full(8, 8.5e37), "reduction": "mean"}, "float32"),
        "torch's binary_cross_entropy(_with_logits) reduction='mean' sums w·ℓ in a float32 "
        "accumulator (bfloat16's range too) before dividing by the count: eight losses of "
        "w·log 2 = 5.9e37 sum beyond float32's 3.4e38 and the mean is inf where it is 5.9e37 "
        "(float16 inputs are summed in float32 and divided before rounding, and are right) "
        "(found by this suite's size tier, torch 2.13 CPU; no upstream issue found)"),
    (
        "cross_entropy label smoothing overflows per row in float16 for large vocabularies",
        "forward", _smoothing_row_sum_overflow,
        Case("cross_entropy", (np.zeros((1, 8192)), np.array([0])),
             {"label_smoothing": 0.1, "reduction": "none"}, "float16"),
        "torch's cross_entropy with label_smoothing forms the smoothing term Σ_c w_c·log p_c "
        "per row in float16 before multiplying by ε/C: with C = 8192 equal logits it is "
        f"8192·log 8192 = 73817, beyond {F16_MAX}, so the loss is inf where it is log 8192 = "
        "9.01; any vocabulary beyond about 5000 classes hits it (GPT-2's 50257 always); "
        "for sum and mean the total of these terms over the batch is formed in the dtype too, "
        "and float32 and bfloat16 overflow likewise when class weights take it beyond 3.4e38 "
        "(found by this suite's size tier, torch 2.13 CPU; no upstream issue found)"),
    (
        "logsumexp in float16 sums exp(x − max) in float16", "forward",
        _logsumexp_half_sum_overflow,
        Case("logsumexp", (np.zeros(70000),), {"dim": 0}, "float16"),
        "torch.logsumexp of a float16 input forms Σ exp(x − max) in float16: for 70000 equal "
        f"values the sum is 70000, beyond {F16_MAX}, so the result is inf where it is "
        "log 70000 = 11.16 (softmax and log_softmax accumulate in float32 and are right) "
        "(found by this suite's size tier, torch 2.13 CPU; no upstream issue found)"),
    (
        "binary_cross_entropy mean gradient divides by the count last", "gradient",
        _bce_mean_gradient_divides_last,
        Case("binary_cross_entropy", (np.full(32768, 0.999), np.zeros(32768)),
             {"weight": np.full(32768, 2048.0), "reduction": "mean"}, "float16"),
        "torch's binary_cross_entropy backward for reduction='mean' forms "
        "grad·w·(p − y)/(p(1 − p)) in float16 and divides by the count last: at p = 0.999, "
        "y = 0, w = 2048 that is 2·10⁶·grad, beyond float16's 65504, so the gradient is ±inf "
        "where it is 64·grad; float32 and bfloat16 likewise with weights near 1e36 (the known "
        "issue 'overflows before the weight multiplies' is the same order of operations without "
        "the mean) (found by this suite's size tier, torch 2.13 CPU; no upstream issue found)"),
    (
        "binary_cross_entropy_with_logits gradient cancels σ(x) − y in float32 and float64",
        "gradient", _bce_logits_gradient_cancellation,
        Case("binary_cross_entropy_with_logits", (np.full(4, 4.0), np.full(4, 0.98)),
             {"weight": np.full(4, 1e14), "reduction": "none"}, "float32"),
        "the known half-precision issue 'low-precision gradient cancels σ(x) − y' in float32 "
        "(and float64: 26 ulps seen at k ≈ 50): "
        "torch forms (pw·y + 1 − y)·σ(x) − pw·y from a rounded σ(x); at x = 4, y = 0.98 the "
        "difference 0.002 keeps 9 fewer bits, 250 ulps of float32 relative to the gradient, "
        "visible once the weight (1e14 here, or a large grad_output) makes the bound all "
        "relative (found by this suite's size tier, torch 2.13 CPU; no upstream issue found)"),
)


def _non_last_dim_long_rows(case: Case, direction: str) -> bool:
    """torch's CPU float32 softmax/log_softmax along a dim that is not the last: the whole case
    once the reduced extent reaches 2¹⁵ (below it the error stays within the bound)."""
    if case.function not in ("softmax", "log_softmax") or case.dtype != "float32":
        return False
    x = case.arrays[0]
    dim = case.params.get("dim")
    if x.ndim < 2 or not isinstance(dim, int):
        return False
    axis = dim % x.ndim
    return axis != x.ndim - 1 and x.shape[axis] >= 2**15


def _bce_target_gradient_cancellation(case: Case, direction: str):
    """The elements where w·g·(log(1 − p) − log p), formed from the two rounded logarithms,
    cancels beyond the bound: two roundings of the terms (|grad_output| ≤ 2, the suite's draw)
    against the tolerance at the exact difference."""
    if (direction != "gradient" or case.function != "binary_cross_entropy"
            or case.dtype not in ("float64", "float32")):
        # float16 and bfloat16 form the logarithms in float32 and round the result once
        return False
    (p, _), params = case.reference_args()
    w = params.get("weight")
    w = np.ones_like(p) if w is None else np.broadcast_to(w, p.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p, log_q = np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)
    terms = 2.0 * np.abs(w) * (np.abs(log_p) + np.abs(log_q))
    exact = 2.0 * np.abs(w) * np.abs(log_q - log_p)
    tol = tolerance(case.dtype, "gradient")
    return 2.0 * eps(case.dtype) * terms > tol.atol + tol.rtol * exact


_NON_LAST_X = np.random.default_rng(0).uniform(-10.0, 10.0, (2, 50257, 3))
_HALF_P = np.random.default_rng(1).uniform(0.4, 0.6, 64)
_HALF_Y = np.random.default_rng(2).uniform(0.0, 1.0, 64)


def _non_last(function: str, last: bool = False) -> Case:
    """float32 ``function`` over GPT-2's 50257 classes along dim 1 of (2, 50257, 3) (``last``:
    the same logits moved to the last dim, the near miss)."""
    if last:
        return Case(function, (np.moveaxis(_NON_LAST_X, 1, -1),), {"dim": -1}, "float32")
    return Case(function, (_NON_LAST_X,), {"dim": 1}, "float32")


def _near_half(dtype: str, weight: float | None = None) -> Case:
    """binary_cross_entropy summed over 64 probabilities in [0.4, 0.6], where log(1 − p) and
    log p nearly cancel; a large uniform ``weight`` makes the gradient's bound purely relative."""
    params = {} if weight is None else {"weight": np.full(64, weight)}
    return Case("binary_cross_entropy", (_HALF_P, _HALF_Y), {**params, "reduction": "sum"},
                dtype)


SEQUENTIAL = (
    "torch's CPU kernel for a dim that is not the last sums exp(x − m) over the classes "
    "sequentially in float32: the relative error grows linearly with C (1.3e-5 at C = 16384, "
    "3.7e-5 ≈ 620 ulps at 50257, uniform logits in [−10, 10]) where a pairwise sum stays near "
    "log₂ C ulps; the last-dim kernel is within the bound at the same C (found by lossproofs "
    "evidence's size-tier draws, torch 2.13 CPU; no upstream issue found)")

OTHER_ENTRIES: tuple[Divergence, ...] = (
    Divergence(
        "float32 softmax along a non-last dim sums sequentially over a large vocabulary",
        "softmax", "forward", _non_last("softmax"), SEQUENTIAL, families=EAGER,
        affected=_non_last_dim_long_rows, near_miss=_non_last("softmax", last=True)),
    Divergence(
        "float32 log_softmax gradient along a non-last dim sums sequentially",
        "log_softmax", "gradient", _non_last("log_softmax"),
        "the gradient g − exp(lp)·Σ g has the same sequential class sum: one element 9 % off "
        "(−2.040 for −2.247's neighbourhood) at C = 50257; " + SEQUENTIAL, families=EAGER,
        direction="gradient", affected=_non_last_dim_long_rows,
        near_miss=_non_last("log_softmax", last=True)),
    Divergence(
        "binary_cross_entropy target gradient cancels log(1 − p) − log p near p = ½",
        "binary_cross_entropy", "gradient", _near_half("float64", 1e300),
        "the gradient with respect to the target, w·g·(log(1 − p) − log p), is formed from the "
        "two rounded logarithms, which cancel near p = ½: 1.25e-14 relative (56 ε) off in "
        "float64, 4.5e-6 (37 ε) in float32, once the weight (1e300 here) makes the bound purely "
        "relative; log1p((1 − 2p)/p) has no cancellation (found by lossproofs evidence's "
        "size-tier draws, torch 2.13 CPU; no upstream issue found)", families=EAGER,
        direction="gradient", affected=_bce_target_gradient_cancellation, wrt_target=True,
        near_miss=_near_half("float64")),
    Divergence(
        "binary_cross_entropy half-precision target gradient cancels near p = ½",
        "binary_cross_entropy", "gradient", _near_half("bfloat16", 1e30),
        "the same cancellation in bfloat16 and float16, where the difference is formed in the "
        "dtype: 18 % off in bfloat16 at a weight of 1e30 (50 % on the size tier's draws), "
        "1.5 % in float16 at 100. Not set aside in the properties: at ordinary weights it stays "
        "within the bound, and a predicate from the rounding bound would also cover elements "
        "torch gets right (found by lossproofs evidence's size-tier draws, torch 2.13 CPU; no "
        "upstream issue found)", families=EAGER, direction="gradient", wrt_target=True),
)


def _ordinary_twin(example: Case) -> Case:
    """The example cut to an ordinary size: 4 rows, at most 100 classes, unit weights."""
    x, t = (*example.arrays, None)[:2]
    if example.function == "cross_entropy" and x.shape[-1] > 100:
        x = x[..., :100]
    params = {k: np.ones(min(v.shape[0], 4)) if isinstance(v, np.ndarray) else v
              for k, v in example.params.items()}
    arrays = (x[:4],) if t is None else (x[:4], t[:4])
    return Case(example.function, arrays, params, example.dtype)


ENTRIES: tuple[Divergence, ...] = tuple(
    Divergence(name, example.function, direction, example, reason, families=EAGER,
               direction=direction, affected=applies, near_miss=_ordinary_twin(example))
    for name, direction, applies, example, reason in _ISSUES) + OTHER_ENTRIES
