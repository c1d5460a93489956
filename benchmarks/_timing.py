"""Interleaved timing with ``torch.utils.benchmark``, robust summaries and paired ratio intervals.

Method: each variant gets a ``Timer`` (explicit ``num_threads``; the Timer's clock synchronises
CUDA before reading the time). A short ``blocked_autorange`` warms it up and fixes how many calls
make one block (about ``block_s`` seconds). Then ``rounds`` rounds run one block of every variant,
in an order rotated each round, so slow drift (frequency scaling, other tenants, thermal) falls on
all variants alike and block ``r`` of variant A is paired with block ``r`` of variant B.

Each block gives one per-call time; a variant's figure is the median of its blocks with the
interquartile range. A ratio A/B is the geometric mean of the paired block ratios, with a
Student-t 95 % interval computed on the log ratios (``exp(mean ± t·sd/√n)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.benchmark import Timer

# Student t 97.5 % quantiles (two-sided 95 %) for 1..20 degrees of freedom, from the standard
# tables; used when scipy is absent (the GPU machine may lack it). Beyond 20, a Cornish-Fisher
# expansion around the normal quantile is accurate to ~1e-4.
_T975 = (12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
         2.364624252, 2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
         2.160368656, 2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
         2.093024054, 2.085963447)
_Z975 = 1.959963984540054


def t_quantile(probability: float, df: int) -> float:
    """Student-t quantile: scipy's where installed, else the 0.975 table / expansion."""
    try:
        from scipy import stats
    except ImportError:
        if not math.isclose(probability, 0.975):
            raise ValueError(f"without scipy only the 0.975 quantile is available, got "
                             f"probability={probability}") from None
        if df <= len(_T975):
            return _T975[df - 1]
        z = _Z975  # Cornish-Fisher: t ≈ z + (z³+z)/(4ν) + (5z⁵+16z³+3z)/(96ν²)
        return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    return float(stats.t.ppf(probability, df))


@dataclass(frozen=True)
class TimingPlan:
    """How long to measure: blocks of ``block_s`` seconds, ``rounds_min..rounds_max`` rounds,
    as many as fit in ``case_budget_s`` seconds for all variants of one case together."""

    block_s: float
    rounds_min: int
    rounds_max: int
    case_budget_s: float

    def __post_init__(self) -> None:
        if self.block_s <= 0 or self.case_budget_s <= 0:
            raise ValueError(f"block_s and case_budget_s must be positive, got {self}")
        if not 2 <= self.rounds_min <= self.rounds_max:
            raise ValueError(f"need 2 <= rounds_min <= rounds_max, got {self}")


@dataclass(frozen=True)
class Summary:
    """Median and quartiles of per-call times (seconds) over ``blocks`` blocks."""

    median_s: float
    q1_s: float
    q3_s: float
    blocks: int
    calls_per_block: int

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s


def summarize(times: list[float], calls_per_block: int) -> Summary:
    """Median and quartiles (NumPy's linear interpolation) of block times."""
    if not times:
        raise ValueError("summarize needs at least one block time")
    q1, med, q3 = np.percentile(np.asarray(times, dtype=float), [25, 50, 75])
    return Summary(float(med), float(q1), float(q3), len(times), calls_per_block)


@dataclass(frozen=True)
class RatioInterval:
    """Geometric-mean ratio of paired blocks and its confidence interval."""

    ratio: float
    low: float
    high: float
    pairs: int
    confidence: float = 0.95


def paired_ratio(numerator: list[float], denominator: list[float],
                 confidence: float = 0.95) -> RatioInterval:
    """``exp(mean(log a_r − log b_r))`` with a t-interval on the log ratios.

    Working on logs makes the interval multiplicative (a ratio can't go negative) and the
    pairing removes the drift common to both blocks of a round. Needs ≥ 2 positive pairs.
    """
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"need two equally long series of >= 2 blocks, got {a.size} and {b.size}")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("block times must be positive to form log ratios")
    logs = np.log(a) - np.log(b)  # log(a/b) = log a − log b, paired per round
    mean, sd, n = float(logs.mean()), float(logs.std(ddof=1)), logs.size
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return RatioInterval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n,
                         confidence)


def _timer(fn: Callable[[], Any], threads: int) -> Timer:
    return Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)


def interleaved(calls: dict[str, Callable[[], Any]], plan: TimingPlan, threads: int,
                ) -> dict[str, tuple[list[float], int]]:
    """Per variant: (per-call time of each block, calls per block), measured in rotated rounds.

    Warm-up: ``blocked_autorange`` with ``min_run_time=block_s`` per variant (discarded except
    to size the blocks).
    """
    names = list(calls)
    timers = {name: _timer(fn, threads) for name, fn in calls.items()}
    per_call: dict[str, float] = {}
    numbers: dict[str, int] = {}
    for name in names:
        warm = timers[name].blocked_autorange(min_run_time=plan.block_s)
        per_call[name] = max(warm.median, 1e-9)
        numbers[name] = max(1, int(plan.block_s / per_call[name]))
    round_cost = sum(per_call[n] * numbers[n] for n in names)
    rounds = int(min(plan.rounds_max, max(plan.rounds_min, plan.case_budget_s // max(
        round_cost, 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:  # rotate: each variant leads equally often
            m = timers[name].timeit(numbers[name])
            times[name].append(m.median)  # one block: its mean per-call time
    return {name: (times[name], numbers[name]) for name in names}


def bandwidth(device: str, threads: int, nbytes: int, min_run_time: float = 0.5,
              ) -> dict[str, Any]:
    """Measured memory bandwidth of plain kernels on ``device`` (GB/s = 1e9 B/s).

    read: ``src.sum()`` moves ``nbytes`` (reads once); copy: ``dst.copy_(src)`` moves
    ``2·nbytes`` (reads and writes once). ``nbytes`` should exceed the last-level cache.
    """
    n = nbytes // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    read = _timer(lambda: src.sum(), threads).blocked_autorange(min_run_time=min_run_time)
    copy = _timer(lambda: dst.copy_(src), threads).blocked_autorange(min_run_time=min_run_time)
    nbytes = n * 4
    out = {
        "buffer_bytes": nbytes,
        "read_gbps": nbytes / read.median / 1e9,
        "copy_gbps": 2 * nbytes / copy.median / 1e9,
        "read_iqr_s": read.iqr, "copy_iqr_s": copy.iqr,
        "method": "read: src.sum() over buffer_bytes; copy: dst.copy_(src), 2·buffer_bytes; "
                  "torch.utils.benchmark blocked_autorange median",
    }
    return out
