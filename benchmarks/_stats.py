"""The arithmetic of the benchmarks: robust summaries, ratio intervals from independent repeats,
and the run-to-run comparison that measures reproducibility. Pure functions, no timing.

- A **repeat** is one worker process that measured a point (see :mod:`benchmarks._measure`).
  Inside it, ``rounds`` rounds time one block of every variant; the repeat's estimate of A/B is
  ``exp(median_r log(a_r / b_r))`` over its paired rounds, so drift common to a round cancels
  and one disturbed round does not count.
- A ratio's **interval** comes from the k repeats' log estimates, not from the blocks of one
  process: ``exp(m ± t_{k−1}·s/√k)`` with m, s the mean and standard deviation of the k log
  estimates. It therefore includes whatever differs between processes (memory placement,
  thread-pool start-up, allocator state, a neighbour that came and went), which is what a
  reader who reruns the benchmark meets.
- **Reproducibility** of a whole grid: two runs, matched ratio by ratio; the median of
  ``|r₂/r₁ − 1|`` and the share of one run's intervals that contain the other run's estimate.
  For a calibrated 95 % interval that share is about 83 % (the difference of two independent
  estimates has √2 times the standard error of one: P(|Z| < 1.96/√2) ≈ 0.834); for a t-interval
  from k repeats it is P(|T_{k−1}| < t_{k−1}/√2): 0.91 at k = 3, 0.88 at 5, 0.86 at 8.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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
class Summary:
    """Median and quartiles of per-call times (seconds) over ``blocks`` blocks."""

    median_s: float
    q1_s: float
    q3_s: float
    blocks: int

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s


def summarize(times: Sequence[float]) -> Summary:
    """Median and quartiles (NumPy's linear interpolation) of block times."""
    if not len(times):
        raise ValueError("summarize needs at least one block time")
    q1, med, q3 = np.percentile(np.asarray(times, dtype=float), [25, 50, 75])
    return Summary(float(med), float(q1), float(q3), len(times))


def paired_log_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """``median_r log(a_r / b_r)`` over the paired rounds of one repeat (equal, positive series).

    The median, not the mean: a round in which a neighbour descheduled one block is an outlier
    of the round ratios, and one such round must not move the repeat's estimate."""
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if a.shape != b.shape or a.size < 1:
        raise ValueError(f"need two equally long, non-empty series of block times, got "
                         f"{a.size} and {b.size} blocks")
    if np.any(a <= 0) or np.any(b <= 0):
        raise ValueError("block times must be positive to form log ratios")
    return float(np.median(np.log(a) - np.log(b)))  # log(a/b) = log a − log b, per round


@dataclass(frozen=True)
class RatioInterval:
    """A ratio from k repeats: ``exp(mean)`` of their log estimates and its t-interval.

    ``rel_half_width`` is the interval's relative half-width, ``exp(t·s/√k) − 1`` (the
    precision: 0.02 means the interval is the estimate ×/÷ 1.02).
    """

    ratio: float
    low: float
    high: float
    repeats: int
    rel_half_width: float
    confidence: float = 0.95


def repeat_interval(log_ratios: Sequence[float], confidence: float = 0.95) -> RatioInterval:
    """The interval of a ratio from the per-repeat log estimates (at least two).

    Working on logs makes the interval multiplicative (a ratio cannot go negative) and treats
    A/B and B/A alike.
    """
    logs = np.asarray(log_ratios, dtype=float)
    if logs.size < 2:
        raise ValueError(f"an interval needs at least 2 repeats, got {logs.size}")
    if not np.all(np.isfinite(logs)):
        raise ValueError("log ratios must be finite")
    k = logs.size
    mean, sd = float(logs.mean()), float(logs.std(ddof=1))
    half = t_quantile(0.5 + confidence / 2, k - 1) * sd / math.sqrt(k)
    return RatioInterval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), k,
                         math.expm1(half), confidence)


def ratio_key(r: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a ratio across runs: the point's key and the pair."""
    return (r["point"], r["numerator"], r["denominator"])


def compare_runs(ratios_a: Iterable[dict[str, Any]], ratios_b: Iterable[dict[str, Any]],
                 ) -> dict[str, Any]:
    """Run-to-run reproducibility of two lists of ratio records (``ratio``, ``ci_low``,
    ``ci_high``, keyed by :func:`ratio_key`).

    Per matched ratio: ``change = |r_b / r_a − 1|`` and whether each run's interval contains the
    other's estimate. Summary: median and 90th percentile of the change, the share above 5 %,
    the shares of containment each way and pooled, and the count of ratios whose two intervals
    do not overlap at all.
    """
    a = {ratio_key(r): r for r in ratios_a if r.get("ratio") is not None}
    b = {ratio_key(r): r for r in ratios_b if r.get("ratio") is not None}
    keys = [k for k in a if k in b]
    rows = []
    for k in keys:
        ra, rb = a[k], b[k]
        rows.append({
            "point": k[0], "numerator": k[1], "denominator": k[2],
            "ratio_a": ra["ratio"], "ci_a": [ra["ci_low"], ra["ci_high"]],
            "ratio_b": rb["ratio"], "ci_b": [rb["ci_low"], rb["ci_high"]],
            "change": abs(rb["ratio"] / ra["ratio"] - 1.0),
            "a_contains_b": bool(ra["ci_low"] <= rb["ratio"] <= ra["ci_high"]),
            "b_contains_a": bool(rb["ci_low"] <= ra["ratio"] <= rb["ci_high"]),
            "overlap": bool(ra["ci_low"] <= rb["ci_high"] and rb["ci_low"] <= ra["ci_high"]),
            "contended": bool(ra.get("contended") or rb.get("contended")),
        })
    if not rows:
        return {"matched": 0, "only_a": len(a), "only_b": len(b), "rows": []}
    change = np.array([r["change"] for r in rows])
    a_in = np.mean([r["a_contains_b"] for r in rows])
    b_in = np.mean([r["b_contains_a"] for r in rows])
    return {
        "matched": len(rows), "only_a": len(a) - len(rows), "only_b": len(b) - len(rows),
        "median_change": float(np.median(change)),
        "p90_change": float(np.percentile(change, 90)),
        "max_change": float(change.max()),
        "share_change_above_5pct": float(np.mean(change > 0.05)),
        "share_a_contains_b": float(a_in), "share_b_contains_a": float(b_in),
        "share_contains_pooled": float((a_in + b_in) / 2),
        "non_overlapping": int(sum(not r["overlap"] for r in rows)),
        "contended_pairs": int(sum(r["contended"] for r in rows)),
        "rows": rows,
    }
