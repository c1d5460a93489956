"""Extreme-input strata for the accuracy work: where naive loss formulas break.

Strata, not caps: each :class:`Stratum` describes one region of input space (logits near the
exp overflow threshold of the dtype, magnitudes up to the dtype's max, huge gaps, ties, −inf
masks, subnormals, large C, probabilities a few ulp from 0 and 1, huge BCE logits with
``pos_weight``, large low-precision reductions). A stratum is written once, against a tiny
:class:`Draw` interface, and runs two ways:

- :func:`sample` with a seeded ``numpy.random.Generator``: the fixed input sets of the accuracy
  report (``python -m lossproofs accuracy``);
- :func:`strategy`: a hypothesis strategy, so properties shrink and ``hypothesis.target`` can
  steer the drawn floats toward the largest ulp error.

A drawn problem is a :class:`~lossproofs.cases.Case`: ``arrays`` are the input (float64, already
rounded to ``dtype``) and, for losses, the target; ``params`` the keyword arguments (weights
rounded too); ``grad_output`` the incoming gradient; its one tag, ``stratum:<name>``, names the
stratum it was drawn from (:func:`stratum_of`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossproofs import oracle
from lossproofs.cases import Case
from lossproofs.declarations import case_families
from lossproofs.dtypes import DTYPES, eps, max_finite, smallest_subnormal, tiny  # noqa: F401

SOFTMAX_FAMILY = ("softmax", "log_softmax", "logsumexp")
INDEX_LOSSES = ("cross_entropy", "nll_loss")


dtype_max = max_finite  # the names this module has always used
dtype_tiny = smallest_subnormal  # note: the smallest *subnormal*, not finfo's tiny


def overflow_threshold(dtype: str) -> float:
    """``log(max)``: exp overflows above it (≈ 709.78 float64, 88.72 float32 and bfloat16,
    11.09 float16)."""
    return math.log(max_finite(dtype))


def round_to(x: Any, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (nearest-even, saturating to ±inf) and back, exactly."""
    return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(
        getattr(torch, dtype)).double().numpy()


def _clip_finite(x: np.ndarray, dtype: str) -> np.ndarray:
    """Clip to ±max of ``dtype`` (so rounding cannot overflow), keeping intended −inf masks."""
    top = max_finite(dtype)
    return np.where(np.isneginf(x), x, np.clip(x, -top, top))


class Draw:
    """What a stratum may ask for; implemented by numpy and by hypothesis."""

    def uniform(self, lo: float, hi: float, size: int) -> np.ndarray:
        raise NotImplementedError

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, options: Sequence[Any]) -> Any:
        raise NotImplementedError


class NumpyDraw(Draw):
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def uniform(self, lo, hi, size):
        return self.rng.uniform(lo, hi, size)

    def integer(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]


class HypothesisDraw(Draw):
    def __init__(self, draw):
        self.draw = draw

    def uniform(self, lo, hi, size):
        return self.draw(hnp.arrays(np.float64, size, elements=st.floats(
            lo, hi, allow_nan=False, allow_infinity=False)))

    def integer(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, options):
        return self.draw(st.sampled_from(list(options)))


def _log_uniform_magnitudes(d: Draw, lo_exp: float, hi_exp: float, size: int) -> np.ndarray:
    signs = np.where(d.uniform(-1, 1, size) < 0, -1.0, 1.0)
    with np.errstate(over="ignore"):
        magnitudes = 10.0 ** d.uniform(lo_exp, hi_exp, size)
    # 10^log10(max) may round past the float64 max: keep magnitudes finite (not a −inf mask).
    return signs * np.minimum(magnitudes, max_finite("float64"))


# ---------------------------------------------------------------------------- logit strata
# Each returns a (rows, C) float64 array (not yet rounded).

def _benign(d: Draw, dtype: str, rows: int, c: int) -> np.ndarray:
    return d.uniform(-10, 10, rows * c).reshape(rows, c)


def _near_overflow(d: Draw, dtype: str, rows: int, c: int) -> np.ndarray:
    x = overflow_threshold(dtype)
    near = d.uniform(x - 3, x + 3, rows * c)
    spread = d.uniform(-x, 2 * x, rows * c)
    pick = d.uniform(0, 1, rows * c) < 0.6
    return np.where(pick, near, spread).reshape(rows, c)


def _huge(d: Draw, dtype: str, rows: int, c: int) -> np.ndarray:
    top = math.log10(max_finite(dtype))
    return _log_uniform_magnitudes(d, 0, top, rows * c).reshape(rows, c)


def _large_gap(d: Draw, dtype: str, rows: int, c: int) -> np.ndarray:
    hi, lo = d.choice([(0.0, -200.0), (1e4, -1e4), (50.0, -50.0)])
    high = d.uniform(0, 1, rows * c) < 0.3
    noise = d.uniform(-1, 1, rows * c)
    return (np.where(high, hi, lo) + noise).reshape(rows, c)


def _ties(d: Draw, dtype: str, rows: int, c: int) -> np.ndarray:
    v = d.uniform(-overflow_threshold(dtype), overflow_threshold(dtype), rows)
    x = np.repeat(v[:, None], c, axis=1)
    lower = d.uniform(0, 1, rows * c).reshape(rows, c) < 0.3  # some below the tied maximum
    return np.where(lower, x - 5, x)


def _masked(d: Draw, dtype: str, rows: int, c: int) -> np.ndarray:
    x = d.uniform(-20, 20, rows * c).reshape(rows, c)
    mask = d.uniform(0, 1, rows * c).reshape(rows, c) < 0.5
    mask[:, 0] = False  # partial masks only: a full −inf row has no finite exact answer
    return np.where(mask, -np.inf, x)


def _subnormal(d: Draw, dtype: str, rows: int, c: int) -> np.ndarray:
    step = smallest_subnormal(dtype)
    normal = tiny(dtype)
    k = d.uniform(-normal, normal, rows * c)
    zero = d.uniform(0, 1, rows * c) < 0.2
    return np.where(zero, 0.0, np.round(k / step) * step).reshape(rows, c)


@dataclass(frozen=True)
class Stratum:
    name: str
    logits: Callable[[Draw, str, int, int], np.ndarray]
    max_classes: int = 8
    min_classes: int = 2
    max_rows: int = 3
    why: str = ""


LOGIT_STRATA: dict[str, Stratum] = {s.name: s for s in (
    Stratum("benign", _benign, why="ordinary logits in [-10, 10]"),
    Stratum("near_overflow", _near_overflow,
            why="logits within ±3 of log(max) (the exp overflow threshold) and up to 2x past it"),
    Stratum("huge", _huge, why="log-uniform magnitudes up to the dtype's max"),
    Stratum("large_gap", _large_gap, why="gaps 0 vs −200, 1e4 vs −1e4, 50 vs −50"),
    Stratum("ties", _ties, why="exactly tied maxima"),
    Stratum("masked", _masked, why="partial −inf masks"),
    Stratum("subnormal", _subnormal, why="subnormal logits and zeros"),
    Stratum("large_C", _benign, max_classes=100_000, min_classes=1000, max_rows=1,
            why="C from 1e3 to 1e5"),
)}


def _classes(d: Draw, s: Stratum, max_classes: int | None) -> int:
    top = min(s.max_classes, max_classes or s.max_classes)
    return d.integer(min(s.min_classes, top), top)


def stratum_tag(stratum: str) -> frozenset[str]:
    """The tags of a problem drawn from ``stratum``."""
    return frozenset({f"stratum:{stratum}"})


def stratum_of(case: Case) -> str | None:
    """The stratum a problem was drawn from (``pinned`` for the report's pinned cases)."""
    names = [t.removeprefix("stratum:") for t in case.tags if t.startswith("stratum:")]
    return names[0] if names else None


def draw_problem(d: Draw, function: str, stratum: str, dtype: str,
                 max_classes: int | None = None, max_batch: int = 2048) -> Case:
    """One problem for ``function`` from ``stratum`` in ``dtype`` (inputs rounded to it)."""
    if function in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        return _draw_binary(d, function, stratum, dtype, max_batch)
    s = LOGIT_STRATA[stratum]
    c = _classes(d, s, max_classes)
    rows = d.integer(1, s.max_rows)
    x = round_to(_clip_finite(s.logits(d, dtype, rows, c), dtype), dtype)
    if function in SOFTMAX_FAMILY:
        out_shape = (rows,) if function == "logsumexp" else x.shape
        grad = round_to(d.uniform(-1, 1, int(np.prod(out_shape))).reshape(out_shape), dtype)
        return Case(function, (x,), {"dim": 1}, dtype=dtype, tags=stratum_tag(stratum),
                    grad_output=grad)
    finite = np.isfinite(x)
    choices = [np.flatnonzero(finite[i]) for i in range(rows)]
    t = np.array([ch[d.integer(0, len(ch) - 1)] for ch in choices], dtype=np.int64)
    kwargs: dict[str, Any] = {"reduction": d.choice(["mean", "sum", "none"])}
    if d.uniform(0, 1, 1)[0] < 0.5:
        kwargs["weight"] = round_to(d.uniform(0.1, 10, c), dtype)
    if function == "nll_loss":
        # nll_loss takes log-probabilities: feed it the exact log_softmax rounded to dtype.
        x = round_to(np.where(finite, oracle.log_softmax(x, 1), -np.inf), dtype)
        # A -inf log-probability at the target is a legitimate +inf loss: keep targets finite.
    elif d.uniform(0, 1, 1)[0] < 0.3 and finite.all():
        kwargs["label_smoothing"] = 0.1
    grad = (round_to(d.uniform(0.5, 2, rows), dtype) if kwargs["reduction"] == "none"
            else np.array(1.0))
    return Case(function, (x, t), kwargs, dtype=dtype, tags=stratum_tag(stratum),
                grad_output=grad)


BINARY_STRATA = {
    "benign": "probabilities in (0, 1), logits in [-10, 10]",
    "near_0_1": "probabilities within a few ulp of 0 and 1 (BCE); logits near ±log(max)",
    "huge_logits": "logits of magnitude 1e3 up to the dtype's max, pos_weight in [0.5, 100]",
    "large_batch": "a large reduction (up to 2048 elements, weights up to 1e3) in the dtype",
}


def _draw_binary(d: Draw, function: str, stratum: str, dtype: str, max_batch: int) -> Case:
    n = d.integer(min(512, max_batch), max_batch) if stratum == "large_batch" else d.integer(1, 8)
    u = eps(dtype)
    sub = smallest_subnormal(dtype)
    kwargs: dict[str, Any] = {"reduction": d.choice(["mean", "sum", "none"])}
    if stratum == "large_batch":
        kwargs["reduction"] = d.choice(["mean", "sum"])
        kwargs["weight"] = round_to(d.uniform(1, 1000, n), dtype)
    y = np.where(d.uniform(0, 1, n) < 0.5, 0.0, 1.0)
    if d.uniform(0, 1, 1)[0] < 0.3:
        y = d.uniform(0, 1, n)
    y = round_to(y, dtype)
    if function == "binary_cross_entropy":
        if stratum == "near_0_1":
            k = np.floor(d.uniform(1, 8, n))
            near_one = d.uniform(0, 1, n) < 0.5
            x = np.where(near_one, 1 - k * u / 2, k * np.where(
                d.uniform(0, 1, n) < 0.5, sub, u))
        else:
            x = d.uniform(1e-3, 1 - 1e-3, n)
    else:
        if stratum == "huge_logits":
            x = _log_uniform_magnitudes(d, 3, math.log10(max_finite(dtype)), n)
            kwargs["pos_weight"] = round_to(d.uniform(0.5, 100, n), dtype)
        elif stratum == "near_0_1":
            thr = overflow_threshold(dtype)
            x = np.where(d.uniform(0, 1, n) < 0.5, -1, 1) * d.uniform(thr - 3, thr + 3, n)
        else:
            x = d.uniform(-10, 10, n)
    x = round_to(_clip_finite(x, dtype), dtype)
    grad = (round_to(d.uniform(0.5, 2, n), dtype) if kwargs["reduction"] == "none"
            else np.array(1.0))
    return Case(function, (x, y), kwargs, dtype=dtype, tags=stratum_tag(stratum),
                grad_output=grad)


def restrict(problem: Case, exclude) -> Case | None:
    """``problem`` without the families in ``exclude`` (what a target declares it does not
    provide): a class or element weight, ``pos_weight`` and label smoothing dropped, a
    declared-out reduction replaced by one provided (with a matching ``grad_output``). None
    where the problem is about the excluded family itself (its inputs carry it)."""
    exclude = frozenset(exclude)
    if not exclude:
        return problem
    params = {k: v for k, v in problem.params.items()
              if not (k in ("weight", "pos_weight", "label_smoothing") and k in exclude)}
    grad = problem.grad_output
    reduction = params.get("reduction")
    if reduction is not None and f"reduction:{reduction}" in exclude:
        kept = [r for r in ("mean", "sum", "none") if f"reduction:{r}" not in exclude]
        if not kept:
            return None
        params["reduction"] = kept[0]
        rows = problem.arrays[0].shape[0]
        # the upstream gradient of a reduced loss is a scalar; of an unreduced one per row
        grad = (np.ones(rows) if kept[0] == "none" and problem.arrays[0].ndim > 1
                else np.ones(problem.arrays[0].shape) if kept[0] == "none" else np.array(1.0))
    restricted = Case(problem.function, problem.arrays, params, problem.dtype, problem.layout,
                      problem.tags, grad)
    return None if case_families(restricted) & exclude else restricted


def strata_for(function: str) -> tuple[str, ...]:
    if function in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        names = ["benign", "near_0_1", "large_batch"]
        if function == "binary_cross_entropy_with_logits":
            names.insert(2, "huge_logits")
        return tuple(names)
    return tuple(LOGIT_STRATA)


def sample(rng: np.random.Generator, function: str, stratum: str, dtype: str,
           **limits: Any) -> Case:
    """A problem drawn with a seeded numpy generator (the report's fixed sets)."""
    return draw_problem(NumpyDraw(rng), function, stratum, dtype, **limits)


@st.composite
def strategy(draw, function: str, dtype: str, strata: Sequence[str] | None = None,
             max_classes: int = 64, max_batch: int = 64) -> Case:
    """A hypothesis strategy of problems for ``function`` in ``dtype`` over ``strata``."""
    stratum = draw(st.sampled_from(list(strata or strata_for(function))))
    return draw_problem(HypothesisDraw(draw), function, stratum, dtype,
                        max_classes=max_classes, max_batch=max_batch)
