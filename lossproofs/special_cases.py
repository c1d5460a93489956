"""Special values, as data: NaN, ±inf logits, masked classes, the BCE clamp, all-ignored targets.

Each :class:`SpecialCase` states the answer the mathematics (or torch's documented convention,
said in ``why``) gives, written by hand from the formula, never copied from an implementation.
One generic test runs each through the implementation under test and the reference.

Special values where torch's answer differs from the mathematics are entries of the divergence
ledger (``lossproofs/ledger/torch.py``), with the mathematical value as ``expected``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# BCE's gradient denominator is clamped at float32(1e-12), as stored in float64.
from lossproofs.declarations import call_families
from lossproofs.dtypes import BCE_EPSILON as BCE_GRAD_EPS

INF = math.inf
NAN = math.nan


@dataclass(frozen=True)
class SpecialCase:
    """``function(*args, **kwargs)`` equals ``expected`` exactly (NaN equal to NaN).

    ``expected_grad``, when given, is the gradient of ``sum(output · 1)`` w.r.t. the input.
    Inputs are float64; ``why`` derives the expected value. ``families`` names the parameter
    families it exercises beyond its keyword arguments (``"clamp"``: torch's documented clamp), so
    that a target declaring another convention there is not held to it (:func:`declared_out`).
    """

    name: str
    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    expected: Any = None
    expected_grad: Any = None
    why: str = ""
    upstream: str = ""
    families: tuple[str, ...] = ()


def declared_out(target, case: SpecialCase) -> str | None:
    """Why ``case`` is outside what ``target`` declares it provides (an argument it does not
    take, or a family where it follows another convention), or None."""
    return target.excluded_arguments(case.function, case.kwargs) or target.excluded_families(
        case.function, call_families(case.function, case.args, case.kwargs) | set(case.families))


def _a(*values):
    return np.array(values, dtype=np.float64)


_LSE_0_1 = math.log1p(math.e)  # log(e^0 + e^1)

SPECIAL_CASES: tuple[SpecialCase, ...] = (
    # -- softmax family -------------------------------------------------------------------------
    SpecialCase("partial -inf row", "softmax", (_a(-INF, 0.0), 0), expected=_a(0.0, 1.0),
                expected_grad=_a(0.0, 0.0),
                why="exp(−inf) = 0 exactly; Σ softmax = 1 so the gradient of Σ·1 is 0"),
    SpecialCase("partial -inf row", "log_softmax", (_a(-INF, 0.0), 0), expected=_a(-INF, 0.0),
                why="log 0 = −inf for the masked class, log 1 = 0 for the other"),
    SpecialCase("all -inf row", "softmax", (_a(-INF, -INF), 0), expected=_a(NAN, NAN),
                why="0/0: no class has mass; torch and JAX return NaN"),
    SpecialCase("all -inf row", "log_softmax", (_a(-INF, -INF), 0), expected=_a(NAN, NAN),
                why="−inf − (−inf) is undefined"),
    SpecialCase("+inf logit", "softmax", (_a(INF, 0.0), 0), expected=_a(NAN, NAN),
                why="inf − inf in the max shift; +inf is not a real logit, NaN is the convention"),
    SpecialCase("NaN logit", "softmax", (_a(NAN, 0.0), 0), expected=_a(NAN, NAN),
                why="NaN propagates to the whole row through the normaliser"),
    SpecialCase("NaN logit", "log_softmax", (_a(NAN, 0.0), 0), expected=_a(NAN, NAN),
                why="NaN propagates to the whole row through the normaliser"),
    SpecialCase("all -inf", "logsumexp", (_a(-INF, -INF), 0), expected=np.float64(-INF),
                why="log Σ 0 = log 0 = −inf (no inf − inf: the shift is skipped)"),
    SpecialCase("+inf element", "logsumexp", (_a(INF, 0.0), 0), expected=np.float64(INF),
                why="log(∞ + 1) = ∞"),
    SpecialCase("+inf and -inf", "logsumexp", (_a(INF, -INF), 0), expected=np.float64(INF),
                why="log(∞ + 0) = ∞"),
    SpecialCase("NaN element", "logsumexp", (_a(NAN, 0.0), 0), expected=np.float64(NAN),
                why="NaN propagates"),
    # -- cross_entropy / nll_loss --------------------------------------------------------------
    SpecialCase("masked class, target elsewhere", "cross_entropy",
                (np.array([[-INF, 0.0, 1.0]]), np.array([1])), expected=np.float64(_LSE_0_1),
                expected_grad=np.array([[0.0, 1 / (1 + math.e) - 1, math.e / (1 + math.e)]]),
                why="−log(e⁰ / (e⁰ + e¹)) = log(1 + e); the masked class has p = 0 and gradient 0"),
    SpecialCase("masked target class", "cross_entropy",
                (np.array([[-INF, 0.0, 1.0]]), np.array([0])), expected=np.float64(INF),
                why="−log p = −log 0 = +inf"),
    SpecialCase("masked class with label smoothing", "cross_entropy",
                (np.array([[-INF, 0.0, 1.0]]), np.array([1])), {"label_smoothing": 0.5},
                expected=np.float64(INF),
                why="the smoothing term puts mass ε/C on the masked class: −(ε/C)·log 0 = +inf"),
    SpecialCase("NaN logit", "cross_entropy", (np.array([[NAN, 0.0, 1.0]]), np.array([1])),
                expected=np.float64(NAN), why="NaN propagates through the normaliser"),
    SpecialCase("all targets ignored, mean", "nll_loss",
                (np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([-100, -100])),
                expected=np.float64(NAN), expected_grad=np.zeros((2, 2)),
                why="0/0: the weighted mean over no kept targets; gradients are exactly 0"),
    SpecialCase("all targets ignored, sum", "nll_loss",
                (np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([-100, -100])),
                {"reduction": "sum"}, expected=np.float64(0.0), expected_grad=np.zeros((2, 2)),
                why="an empty sum is 0"),
    SpecialCase("all targets ignored, none", "cross_entropy",
                (np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1, 1])),
                {"reduction": "none", "ignore_index": 1, "label_smoothing": 0.3},
                expected=_a(0.0, 0.0), expected_grad=np.zeros((2, 2)),
                why="ignored elements are exactly 0, smoothing term included"),
    SpecialCase("empty batch, mean", "cross_entropy",
                (np.zeros((0, 3)), np.zeros((0,), dtype=np.int64)), expected=np.float64(NAN),
                why="0/0: a mean over no elements"),
    SpecialCase("empty batch, sum", "cross_entropy",
                (np.zeros((0, 3)), np.zeros((0,), dtype=np.int64)), {"reduction": "sum"},
                expected=np.float64(0.0), why="an empty sum is 0"),
    # -- binary cross-entropy ------------------------------------------------------------------
    SpecialCase("p at 0 and 1, log clamped at -100", "binary_cross_entropy",
                (_a(0.0, 1.0, 0.0, 1.0), _a(1.0, 0.0, 0.0, 1.0)), {"reduction": "none"},
                expected=_a(100.0, 100.0, 0.0, 0.0),
                expected_grad=_a(-1 / BCE_GRAD_EPS, 1 / BCE_GRAD_EPS, 0.0, 0.0),
                why="torch clamps log at −100 (docs of BCELoss) and the gradient's denominator "
                    "p(1−p) at float32(1e-12)", families=("clamp",)),
    SpecialCase("saturated logits, finite", "binary_cross_entropy_with_logits",
                (_a(1000.0, -1000.0, 1000.0, -1000.0), _a(1.0, 0.0, 0.0, 1.0)),
                {"reduction": "none"}, expected=_a(0.0, 0.0, 1000.0, 1000.0),
                expected_grad=_a(0.0, 0.0, 1.0, -1.0),
                why="log(1 + e^−1000) rounds to 0; the wrong side costs |x|; σ − y is 0 or ±1"),
    SpecialCase("+inf logit, target 0", "binary_cross_entropy_with_logits",
                (_a(INF), _a(0.0)), {"reduction": "none"}, expected=_a(INF),
                why="(1 − y)·x = +inf and −log σ(+inf) = 0"),
    # -- linear_cross_entropy (gradients: lossproofs/suite/test_linear_cross_entropy.py) --------
    SpecialCase("empty batch, mean", "linear_cross_entropy",
                (np.zeros((0, 3)), np.ones((4, 3)), np.zeros((0,), dtype=np.int64)),
                expected=np.float64(NAN), why="0/0: a mean over no rows"),
    SpecialCase("empty batch, sum", "linear_cross_entropy",
                (np.zeros((0, 3)), np.ones((4, 3)), np.zeros((0,), dtype=np.int64)),
                {"reduction": "sum"}, expected=np.float64(0.0), why="an empty sum is 0"),
    SpecialCase("empty batch, none", "linear_cross_entropy",
                (np.zeros((0, 3)), np.ones((4, 3)), np.zeros((0,), dtype=np.int64)),
                {"reduction": "none"}, expected=np.zeros((0,)),
                why="one loss per row, and there are none"),
    SpecialCase("all targets ignored, mean", "linear_cross_entropy",
                (np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([[1.0, 0.5], [-0.5, 0.25]]),
                 np.array([-100, -100])),
                expected=np.float64(NAN), why="0/0: the weighted mean over no kept targets"),
    SpecialCase("all targets ignored, sum", "linear_cross_entropy",
                (np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([[1.0, 0.5], [-0.5, 0.25]]),
                 np.array([-100, -100])), {"reduction": "sum"},
                expected=np.float64(0.0), why="an empty sum is 0"),
    SpecialCase("all targets ignored, none", "linear_cross_entropy",
                (np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([[1.0, 0.5], [-0.5, 0.25]]),
                 np.array([1, 1])), {"reduction": "none", "ignore_index": 1},
                expected=_a(0.0, 0.0), why="ignored rows are exactly 0"),
)
