"""Bugs in torch that the property suite found or confirmed, as data.

Each :class:`KnownIssue` says which cases it affects (``applies``), gives one representative
case, and explains the torch behaviour with its upstream issue. The generic properties set the
affected cases aside for torch targets only (so one known bug does not mask every other check),
and ``tests/test_known_issues.py`` runs each representative case as a named strict xfail: when
torch fixes the bug, that test fails and asks for the entry to be removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lossproofs.cases import Case
from lossproofs.dtypes import max_finite as _max_finite

TORCH_TARGETS = frozenset({"torch", "nn", "compile", "cuda"})
# Bugs of torch's eager kernels: torch.compile (inductor) generates its own code, which does not
# have them (their strict xfails XPASS under --target compile).
EAGER_TARGETS = TORCH_TARGETS - {"compile"}


@dataclass(frozen=True)
class KnownIssue:
    """A torch divergence: ``applies(case, direction)`` tells whether ``case`` hits it in the
    ``"forward"`` or ``"gradient"`` check; ``example`` reproduces it."""

    name: str
    direction: str
    applies: Callable[[Case, str], bool]
    example: Case
    reason: str
    upstream: str = ""
    targets: frozenset[str] = TORCH_TARGETS
    seed: int = 0  # of the random grad_output, for gradient issues

    @property
    def xfail_reason(self) -> str:
        return f"{self.reason} {self.upstream}".strip()


def _nll_4d_permuted(case: Case, direction: str) -> bool:
    return (direction == "gradient" and case.function == "nll_loss"
            and case.arrays[0].ndim == 4 and case.layout == "transposed")


def _bce_half_clamp(case: Case, direction: str) -> bool:
    if not (direction == "gradient" and case.function == "binary_cross_entropy"
            and case.dtype == "float16"):
        return False
    p = case.rounded(case.arrays[0])
    return bool(((p == 0.0) | (p == 1.0)).any())


def _uint8_smoothed_weighted_mean(case: Case, direction: str) -> bool:
    return (case.function == "cross_entropy" and len(case.arrays) > 1
            and case.arrays[1].dtype == np.uint8 and case.params.get("weight") is not None
            and bool(case.params.get("label_smoothing")) and case.params.get("reduction") == "mean")


def _bce_logits_cancellation(case: Case, direction: str) -> bool:
    """torch evaluates (1 − y)·x − lw·log σ(x), whose two terms nearly cancel when the logit
    agrees with the target: half an ulp of each term can exceed the table's bound."""
    if direction != "forward" or case.function != "binary_cross_entropy_with_logits":
        return False
    from lossproofs.tolerances import eps, tolerance  # local: tolerances imports nothing here

    (x, y), params = case.reference_args()[0], case.reference_args()[1]
    pw = params.get("pos_weight")
    lw = 1.0 + (np.ones_like(y) if pw is None else np.broadcast_to(pw, y.shape) - 1.0) * y
    w = params.get("weight")
    w = np.ones_like(y) if w is None else np.broadcast_to(w, y.shape)
    log_sig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))  # log σ(x)
    terms = np.abs(w) * (np.abs((1 - y) * x) + np.abs(lw * log_sig))
    loss = np.abs(w) * ((1 - y) * x - lw * log_sig)
    if params.get("reduction") in ("sum", "mean"):
        denominator = max(loss.size, 1) if params["reduction"] == "mean" else 1
        terms, loss = np.sum(terms) / denominator, np.sum(np.abs(loss)) / denominator
    tol = tolerance(case.dtype, "forward")
    budget = tol.atol * np.maximum(1.0, loss) + tol.rtol * np.abs(loss)
    return bool(np.any(0.5 * eps(case.dtype) * terms > budget))


def _nll_mean_gradient_overflow(case: Case, direction: str) -> bool:
    if not (direction == "gradient" and case.function in ("nll_loss", "cross_entropy")
            and case.params.get("reduction") == "mean"
            and case.params.get("weight") is not None and case.arrays[1].dtype.kind in "iu"
            and case.arrays[1].shape != case.arrays[0].shape):
        return False
    (x, t), params = case.reference_args()
    c = x.shape[0 if x.ndim == 1 else 1]
    kept = (t != params.get("ignore_index", -100)) & (t >= 0) & (t < c)
    total = float(np.sum(params["weight"][t[kept]]))
    # grad_output is drawn from [−2, 2]; torch forms grad_output / total_weight first.
    return 0 < total and 2.0 / total > _max_finite(case.dtype)


def _bce_logits_gradient_cancellation(case: Case, direction: str) -> bool:
    """torch forms (pw·y + 1 − y)·σ(x) − pw·y from rounded terms: when the two nearly cancel
    (σ(x) ≈ y, or a soft target near the weighted σ) half an ulp of each can exceed the bound."""
    if not (direction == "gradient" and case.function == "binary_cross_entropy_with_logits"
            and case.dtype in ("float16", "bfloat16")):
        return False
    from lossproofs.tolerances import eps, tolerance

    (x, y), params = case.reference_args()
    pw = params.get("pos_weight")
    pw = np.ones_like(y) if pw is None else np.broadcast_to(pw, y.shape)
    w = params.get("weight")
    w = np.ones_like(y) if w is None else np.broadcast_to(w, y.shape)
    with np.errstate(over="ignore"):
        sig = 1.0 / (1.0 + np.exp(-x))
    coeff = pw * y + 1.0 - y
    exact = np.abs(w) * np.abs(coeff * sig - pw * y)
    # |grad_output| ≤ 2 (the suite's draw): half an ulp of each of the two terms, scaled.
    terms = np.abs(coeff) * np.maximum(sig, 2.0**-14) + np.abs(pw * y)
    rounding = 2.0 * np.abs(w) * 0.5 * eps(case.dtype) * terms
    tol = tolerance(case.dtype, "gradient")
    return bool(np.any(rounding > tol.atol + tol.rtol * 2.0 * exact))


def _bce_half_gradient_intermediate_overflow(case: Case, direction: str) -> bool:
    """torch forms (p − y)/max(p(1 − p), ε) in float16 before multiplying by the weight."""
    if not (direction == "gradient" and case.function == "binary_cross_entropy"
            and case.dtype == "float16"):
        return False
    (p, y), _ = case.reference_args()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 2.0 * np.abs(p - y) / np.maximum(p * (1.0 - p), 1e-12)
    return bool(np.any(ratio > 65504.0))


def _compiled_uint8_target(case: Case, direction: str) -> bool:
    return (case.function in ("nll_loss", "cross_entropy") and len(case.arrays) > 1
            and case.arrays[1].dtype == np.uint8)


def _cuda_unbatched_all_ignored_mean(case: Case, direction: str) -> bool:
    if not (case.function in ("nll_loss", "cross_entropy") and case.arrays[0].ndim == 1
            and case.params.get("reduction", "mean") == "mean"
            and case.arrays[1].dtype.kind in "iu" and case.arrays[1].ndim == 0):
        return False
    t = int(case.arrays[1])
    return t == case.params.get("ignore_index", -100)


def _cuda_bce_half_subnormal_numerator(case: Case, direction: str) -> bool:
    if not (direction == "gradient" and case.function == "binary_cross_entropy"
            and case.dtype == "float16"):
        return False
    p, y = (case.rounded(a) for a in case.arrays)
    d = np.abs(p - y)
    # grad_output·(p − y) below float16's smallest normal (2⁻¹⁴) for |grad_output| ≤ 2.
    return bool(np.any((d > 0) & (2.0 * d < 2.0**-14)))


CUDA = frozenset({"cuda"})

KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        "binary_cross_entropy_with_logits low-precision gradient cancels σ(x) − y", "gradient",
        _bce_logits_gradient_cancellation,
        Case("binary_cross_entropy_with_logits", (np.array([5.0]), np.array([1.0])),
             {"weight": np.array(2.0), "pos_weight": np.array([3.875]), "reduction": "none"},
             "float16"),
        "torch's backward forms (pw·y + 1 − y)·σ(x) − pw·y with σ(x) rounded to float16 or "
        "bfloat16: for x = 5, y = 1 the difference σ(x) − 1 = −0.0067 keeps only a few bits "
        "and the gradient comes back 5 % off in float16 (20 % in bfloat16 at x = 4); the "
        "exact form −σ(−x) has no cancellation (found by this suite's thorough profile; no "
        "upstream issue found)", targets=EAGER_TARGETS, seed=4),
    KnownIssue(
        "binary_cross_entropy float16 gradient overflows before the weight multiplies",
        "gradient", _bce_half_gradient_intermediate_overflow,
        Case("binary_cross_entropy", (np.array([0.5, 1e-5]), np.array([1.0, 1.0])),
             {"weight": np.array(0.0), "reduction": "none"}, "float16"),
        "torch forms (p − y)/max(p(1 − p), ε) in float16 before multiplying by weight and "
        "grad_output: at p = 1e-5, y = 1 that is −1e5, beyond float16's 65504, so a zero "
        "weight gives 0·inf = NaN and a small one ±inf, where the gradient is 0 or "
        "representable (found by this suite's thorough profile; the accuracy suite pins the "
        "'mean' twin)", targets=EAGER_TARGETS),
    KnownIssue(
        "nll_loss on CUDA: mean over an ignored unbatched target is 0, not NaN", "forward",
        _cuda_unbatched_all_ignored_mean,
        Case("nll_loss", (np.array([0.0]), np.array(-100)), {"reduction": "mean"}, "bfloat16"),
        "for a (C,) input whose only target is ignored, reduction='mean' is 0/0: torch on CPU "
        "(and on CUDA for batched inputs) returns NaN, torch on CUDA returns 0.0 for the "
        "unbatched input (found by this suite on an H200, torch 2.11.0+cu130; no upstream "
        "issue found)", targets=CUDA),
    KnownIssue(
        "binary_cross_entropy float16 gradient rounds grad·(p − y) to float16 first",
        "gradient", _cuda_bce_half_subnormal_numerator,
        Case("binary_cross_entropy", (np.array([2.0**-23, 0.5]), np.array([0.0, 0.0])),
             {"reduction": "none"}, "float16"),
        "torch forms grad_output·(p − y) in float16 before dividing by p(1 − p): for p = 2⁻²³ "
        "the product is a float16 subnormal and rounds to one subnormal step, so the gradient "
        "comes back 9 % off (0.5 instead of 0.548), on CPU (torch 2.13) and CUDA (H200, torch "
        "2.11) alike (found by this suite; no upstream issue found)"),
    KnownIssue(
        "binary_cross_entropy_with_logits cancels when the logit agrees with the target",
        "forward", _bce_logits_cancellation,
        Case("binary_cross_entropy_with_logits", (np.array([-4.0, -4.0, -4.0]), np.zeros(3)),
             {"reduction": "sum"}, "float16"),
        "torch computes (1 − y)·x − lw·log σ(x); when x agrees with y the two terms cancel, so "
        "in float16 softplus(−4) · 3 = 0.0544 comes back as 0.0586 (7.6 % off): half an ulp of "
        "|x| = 4 is 0.002; in float64, six logits of −10 with target 0 summed are 1.9e-11 "
        "relative off. The exact softplus form (1 − y)·softplus(x) + lw·y·softplus(−x) has no "
        "cancellation (found by this suite's thorough profile)",
        "https://github.com/pytorch/pytorch/issues/195529", targets=EAGER_TARGETS),
    KnownIssue(
        "nll_loss mean gradient overflows for a small total weight", "gradient",
        _nll_mean_gradient_overflow,
        Case("nll_loss", (np.array([[0.0, 1.0]]), np.array([0])),
             {"weight": np.array([2.0**-23, 1.0]), "reduction": "mean"}, "float16"),
        "torch's nll_loss backward divides grad_output by the total weight before multiplying "
        "by w[t]: in float16 with a total weight of 1.2e-7, 0.55/1.2e-7 overflows to inf "
        "(likewise float32 with a subnormal weight of 1.4e-45) although the gradient, "
        "−w·g/Σw = −g, is representable; the forward's Σ w·x underflows to 0 there too, "
        "returning 0 for a mean of −x (found by this suite's thorough profile; ordinary "
        "strategies draw weights ≥ 2⁻¹⁰ since then)", targets=EAGER_TARGETS),
    KnownIssue(
        "cross_entropy rejects a uint8 target with weight, smoothing and mean", "forward",
        _uint8_smoothed_weighted_mean,
        Case("cross_entropy", (np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]]),
                               np.array([0, 2], dtype=np.uint8)),
             {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "mean", "label_smoothing": 0.2}),
        "torch accepts uint8 class-index targets for (C,) and (N, C) inputs, but with a class "
        "weight, label_smoothing > 0 and reduction='mean' its smoothing denominator gathers "
        "weight[target] and raises 'RuntimeError: gather(): Expected dtype int32/int64 for "
        "index' (found by this suite; no upstream issue found)"),
    KnownIssue(
        "nll_loss backward on a permuted 4-D input", "gradient", _nll_4d_permuted,
        Case("nll_loss", (np.arange(24.0).reshape(2, 3, 2, 2) / 10,
                          np.array([[[0, 1], [2, 0]], [[1, 1], [0, 2]]])),
             {"reduction": "mean"}, "float64", "transposed"),
        "torch's nll_loss on a 4-D input whose memory is permuted (channels_last, movedim) "
        "raises 'RuntimeError: grad_input must be contiguous' in backward: the 4-D path "
        "skips the .contiguous() the 3-D and 5-D paths make, so the gradient buffer keeps "
        "the input's strides",
        "https://github.com/pytorch/pytorch/issues/175084", targets=EAGER_TARGETS),
    KnownIssue(
        "binary_cross_entropy float16 gradient at p = 0 or 1", "gradient", _bce_half_clamp,
        Case("binary_cross_entropy", (np.array([0.0, 1.0, 0.25]), np.array([0.0, 1.0, 1.0])),
             {"reduction": "none"}, "float16"),
        "torch clamps BCE's gradient denominator p(1 − p) at 1e-12, which rounds to 0 in "
        "float16: at p = 0 or 1 the gradient is 0/0 = NaN (or ±inf) instead of the "
        "(p − y)/1e-12 that float32 and bfloat16 give (found by this suite; no upstream "
        "issue found)", targets=EAGER_TARGETS),
    KnownIssue(
        "torch.compile rejects uint8 class-index targets", "forward", _compiled_uint8_target,
        Case("nll_loss", (np.log(np.array([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])),
                          np.array([0, 2], dtype=np.uint8)), {"reduction": "mean"}),
        "eager nll_loss and cross_entropy accept uint8 class indices for (C,) and (N, C) "
        "inputs, but under torch.compile the fake-tensor (meta) decomposition gathers with the "
        "target and raises 'RuntimeError: gather(): Expected dtype int32/int64 for index, but "
        "got torch.uint8' (found by this suite with --target compile; no upstream issue found, "
        "related: the meta gather failure of pytorch#155247)",
        "https://github.com/pytorch/pytorch/issues/155247", targets=frozenset({"compile"})),
)


def known_issue(target_name: str, case: Case, direction: str) -> KnownIssue | None:
    """The known torch issue ``case`` runs into under ``target_name``, if any."""
    for issue in KNOWN_ISSUES:
        if target_name in issue.targets and issue.applies(case, direction):
            return issue
    return None
