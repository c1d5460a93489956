"""The row kernel: exact pieces of one softmax row, and the argument checks and layouts the
loss modules share."""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
from mpmath import mp

from lossproofs.dtypes import REDUCTIONS
from lossproofs.oracle._precision import _mpf


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {REDUCTIONS}")


def _check_dim(ndim: int, dim: int) -> int:
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not lo <= dim <= hi:
        raise IndexError(f"dim={dim} out of range for a {ndim}-d input [{lo}, {hi}]")
    return dim % max(ndim, 1)


class _Row:
    """Exact pieces of one softmax row ``x`` (1-d float64), at the current mp precision.

    ``e[j] = exp(x_j − m)`` with an exact argument; ``T = Σ_{j≠k} e_j`` (``k`` the first
    maximum), ``S = 1 + T``, ``logS = log1p(T)``. ``bad`` marks rows torch makes all NaN.
    """

    def __init__(self, x: np.ndarray):
        self.n = len(x)
        self.bad = bool(np.isnan(x).any() or np.isposinf(x).any() or np.all(np.isneginf(x)))
        if self.bad or self.n == 0:
            return
        self.k = int(np.argmax(x))
        self.m = _mpf(x[self.k])
        # d_j = x_j − m exactly (no rounding), so exp sees the true argument.
        self.d = [mp.ninf if v == -math.inf else mpmath.fsub(_mpf(v), self.m, exact=True)
                  for v in x]
        self.e = [mp.zero if dj == mp.ninf else mp.exp(dj) for dj in self.d]
        self.e[self.k] = mp.one  # exp(0) = 1 exactly
        # Sum of non-negative terms: relative error ≤ n·2⁻ᵖ, no cancellation.
        self.T = mp.fsum(self.e[j] for j in range(self.n) if j != self.k)
        self.S = mp.one + self.T
        self.logS = mp.log1p(self.T)  # log S = log1p(T): keeps T when a class dominates

    def softmax(self, j: int) -> Any:
        return self.e[j] / self.S

    def log_softmax(self, j: int) -> Any:
        # d_j ≤ 0 and −logS ≤ 0: a same-sign sum, no cancellation.
        return self.d[j] - self.logS

    def rest(self, j: int) -> Any:
        """``S − e_j`` without cancellation: ``T`` for the max, else ``1 + (T − e_j)`` ≥ 1."""
        return self.T if j == self.k else mp.one + (self.T - self.e[j])

    def complement(self, j: int) -> Any:
        """``1 − softmax_j = (S − e_j)/S``."""
        return self.rest(j) / self.S


def _rows(x: np.ndarray, dim: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Move ``dim`` last and flatten the others: ``(rows, C)`` plus the moved shape."""
    moved = np.moveaxis(x, dim, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape


def _unrows(values: np.ndarray, moved_shape: tuple[int, ...], dim: int) -> np.ndarray:
    return np.moveaxis(values.reshape(moved_shape), -1, dim)


def _reduce(losses: np.ndarray, reduction: str, denominator: Any, out_shape) -> np.ndarray:
    if reduction == "none":
        return losses.reshape(out_shape)
    total = mp.fsum(losses.ravel()) if losses.size else mp.zero
    if reduction == "sum":
        return np.array(total, dtype=object)
    return np.array(total / denominator if denominator != 0 else mp.nan, dtype=object)
