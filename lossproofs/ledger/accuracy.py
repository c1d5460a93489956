"""torch's departures from its ULP bounds against the exact oracle.

Each entry's example carries its ``grad_output`` and runs through
:func:`lossproofs.error_model.check_accuracy`: ``floored`` counts ulps above the fair floor of
torch's documented formula (a backward-stable evaluation stays within it); raw ulps (``floored``
False) are for results whose relative accuracy the mathematics keeps (a tiny loss is not 0).
None is drawn by the ordinary properties; the accuracy properties skip intermediate overflow
(``lossproofs.error_model.intermediate_overflow``) and pin it here.
"""

from __future__ import annotations

import numpy as np

from lossproofs.cases import Case
from lossproofs.declarations import DECLARABLE
from lossproofs.ledger.record import TORCH, Divergence
from lossproofs.strategies import extreme

ANY_TORCH = frozenset({TORCH})
LOG_VS_LOG1P = "https://github.com/pytorch/pytorch/issues/113708"


def _large_vocabulary_case() -> Case:
    # The accuracy report's own seeded large-C problem, so the ledger and the report agree
    # (the report seeds with the function's place in its list, the registry's order, which
    # lossproofs.registry checks is DECLARABLE's).
    function, dtype = "log_softmax", "float32"
    rng = np.random.default_rng([20240601, tuple(DECLARABLE).index(function),
                                 extreme.DTYPES.index(dtype),
                                 extreme.strata_for(function).index("large_C")])
    return extreme.sample(rng, function, "large_C", dtype, max_classes=100_000)


ENTRIES: tuple[Divergence, ...] = (
    Divergence(
        "log_softmax loses relative accuracy for a dominant class", "log_softmax", "accuracy",
        Case("log_softmax", (np.array([[0.0, -40.0]]),), {"dim": 1},
             grad_output=np.array([[1.0, 1.0]])),
        "log_softmax computes (x − m) − log(Σ exp(x − m)) with log, not log1p: when one class "
        "dominates, Σ rounds to 1 and the dominant log-probability is returned as exactly 0 "
        "instead of −Σ_{j≠k} exp(x_j − m) (here −4.2e-18)", LOG_VS_LOG1P, ANY_TORCH,
        floored=False),
    Divergence(
        "cross_entropy of a confident correct prediction is 0", "cross_entropy", "accuracy",
        Case("cross_entropy", (np.array([[40.0, 0.0]]), np.array([0])), {"reduction": "sum"},
             grad_output=np.array(1.0)),
        "the loss is −log_softmax at the target, which rounds to exactly 0 (the loss "
        "e^{−40} ≈ 4.2e-18 is representable): the log-vs-log1p cause of pytorch#113708 in the "
        "fused loss", LOG_VS_LOG1P, ANY_TORCH, floored=False),
    Divergence(
        "binary_cross_entropy_with_logits of a confidently right logit is 0",
        "binary_cross_entropy_with_logits", "accuracy",
        Case("binary_cross_entropy_with_logits", (np.array([-40.0]), np.array([0.0])),
             {"reduction": "none"}, grad_output=np.array([1.0])),
        "evaluates (1 − y)·x − lw·logsigmoid(x): for y = 0 and x = −40, x and logsigmoid(x) = "
        "x − 4.2e-18 cancel and the loss softplus(x) = 4.2e-18 is returned as 0 (softplus(x) "
        "has no cancellation)", families=ANY_TORCH, floored=False),
    Divergence(
        "sigmoid gradient flushes subnormal results to 0", "binary_cross_entropy_with_logits",
        "accuracy",
        Case("binary_cross_entropy_with_logits", (np.array([-720.0]), np.array([0.0])),
             {"reduction": "sum"}, grad_output=np.array(1.0)),
        "σ(x) = 1/(1 + exp(−x)): below x ≈ −709.8 (float64; −88.7 float32) exp(−x) overflows "
        "and σ(x), hence the BCE-with-logits gradient, is flushed to 0, although e^x is still a "
        "representable subnormal (here 2.0e-313)", families=ANY_TORCH, direction="gradient",
        floored=False),
    Divergence(
        "float32 log_softmax over a large vocabulary sums inaccurately", "log_softmax",
        "accuracy", _large_vocabulary_case(),
        "the CPU float32 log_softmax over a long row (C = 88,247 here) is ~4.5 ulps off: its "
        "Σ exp(x − m) is less accurate than pairwise summation allows (2 ulps of "
        "1 + |d| + log C + ⌈log₂ C⌉ + 1), while NumPy and scipy stay within it",
        families=ANY_TORCH),
    Divergence(
        "float16 nll_loss mean overflows an intermediate sum", "nll_loss", "accuracy",
        Case("nll_loss", (np.array([[-30000.0, -1.0]] * 3), np.array([0, 0, 0])),
             {"reduction": "mean", "weight": np.array([2.0, 1.0])}, dtype="float16",
             grad_output=np.array(1.0)),
        "'mean' in float16 forms Σ w[t]·ℓ in float16 before dividing by Σ w[t]: 3 × 2 × 30000 "
        "overflows to inf though the mean, 30000, is representable", families=ANY_TORCH),
    Divergence(
        "float16 label smoothing overflows an intermediate sum", "cross_entropy", "accuracy",
        Case("cross_entropy", (np.array([[1e4, -1e4, -1e4, -1e4, -1e4]]), np.array([0])),
             {"reduction": "sum", "label_smoothing": 0.1}, dtype="float16",
             grad_output=np.array(1.0)),
        "label smoothing in float16 forms Σ_c w_c·(−lp_c) in float16 before multiplying by "
        "ε/C: 4 × 20000 overflows to inf, so the loss is inf though its exact value (≈ 1.8e4) "
        "is representable", families=ANY_TORCH),
    Divergence(
        "float16 binary_cross_entropy mean gradient overflows an intermediate",
        "binary_cross_entropy", "accuracy",
        Case("binary_cross_entropy", (np.full(2048, 1e-3), np.ones(2048)),
             {"reduction": "mean", "weight": np.full(2048, 1000.0)}, dtype="float16",
             grad_output=np.array(1.0)),
        "the backward in float16 forms w·(p − y)/max(p(1 − p), ε) per element before the 1/N "
        "of 'mean': 1000 × 999 overflows to −inf though the gradient, ≈ −488, is "
        "representable", families=ANY_TORCH, direction="gradient"),
)
