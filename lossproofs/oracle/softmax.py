"""The softmax family, exactly: ``softmax``, ``log_softmax``, ``logsumexp`` and their
gradients, row by row with :class:`~lossproofs.oracle._rows._Row`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
from mpmath import mp

from lossproofs.oracle._precision import _as_array, _evaluate, _exact_sum, _mpf
from lossproofs.oracle._rows import _check_dim, _Row, _rows, _unrows


def _map_rows(x: np.ndarray, dim: int, row_fn: Callable[[_Row, int, int], Any],
              extra: np.ndarray | None = None) -> np.ndarray:
    """Evaluate ``row_fn(row, i, j)`` for every element, rows along ``dim``."""
    x = _as_array(x)
    scalar = x.ndim == 0
    if scalar:
        x, dim = x.reshape(1), 0
    dim = _check_dim(x.ndim, dim)
    rows, moved = _rows(x, dim)

    def compute() -> np.ndarray:
        out = np.empty(rows.shape, dtype=object)
        for i, r in enumerate(rows):
            row = _Row(r)
            for j in range(len(r)):
                out[i, j] = mp.nan if row.bad else row_fn(row, i, j)
        return out

    values = _evaluate(compute, rows.shape[-1] if rows.size else 0)
    values = _unrows(values, moved, dim)
    return values.reshape(()) if scalar else values


def softmax(input: Any, dim: int) -> np.ndarray:
    """Exact ``exp(x_j − max) / Σ_k exp(x_k − max)`` along ``dim``, rounded to float64."""
    return _map_rows(input, dim, lambda row, i, j: row.softmax(j))


def log_softmax(input: Any, dim: int) -> np.ndarray:
    """Exact ``(x_j − max) − log Σ_k exp(x_k − max)`` along ``dim``, rounded to float64."""
    return _map_rows(input, dim, lambda row, i, j: row.log_softmax(j))


def logsumexp(input: Any, dim: int, keepdim: bool = False) -> np.ndarray:
    """Exact ``max + log1p(Σ_{j≠k} exp(x_j − max))`` along ``dim``.

    An all −inf row gives −inf (torch's value); +inf gives +inf; NaN gives NaN.
    """
    x = _as_array(input)
    if x.ndim == 0:
        return x.copy()
    dim = _check_dim(x.ndim, dim)
    rows, moved = _rows(x, dim)

    def compute() -> np.ndarray:
        out = np.empty(rows.shape[0], dtype=object)
        for i, r in enumerate(rows):
            if len(r) == 0 or np.all(np.isneginf(r)):
                out[i] = mp.ninf
            elif np.isnan(r).any():
                out[i] = mp.nan
            elif np.isposinf(r).any():
                out[i] = mp.inf
            else:
                row = _Row(r)
                out[i] = row.m + row.logS  # the one place with possible cancellation (m < 0)
        return out

    values = _evaluate(compute, rows.shape[-1]).reshape(moved[:-1])
    return np.expand_dims(values, dim) if keepdim else values


def _grad_rows(grad_output: Any, x: np.ndarray, dim: int) -> tuple[int, np.ndarray]:
    """``grad_output`` broadcast to ``x`` and laid out as rows along ``dim`` (``x.ndim ≥ 1``)."""
    dim = _check_dim(x.ndim, dim)
    g = np.broadcast_to(_as_array(grad_output), x.shape)
    grows, _ = _rows(np.ascontiguousarray(g), dim)
    return dim, grows


def _scalar_backward(grad_output: Any) -> np.ndarray:
    # A 0-d softmax is identically 1 (log_softmax 0): its derivative is 0 for any finite g.
    return np.zeros((), dtype=np.float64) * np.broadcast_to(_as_array(grad_output), ())


def softmax_backward(grad_output: Any, input: Any, dim: int) -> np.ndarray:
    """Exact ``y ⊙ (g − Σ g⊙y)``, with ``y = softmax(x)``.

    Evaluated as ``y_i · ((g_i − c) − Σ_j y_j (g_j − c))`` with ``c = g_k`` at the row's
    maximum and exact differences ``g_j − c`` (equal because ``Σ y = 1``), so a constant ``g``
    gives exact zeros rather than rounding noise.
    """
    x = _as_array(input)
    if x.ndim == 0:
        return _scalar_backward(grad_output)
    dim, grows = _grad_rows(grad_output, x, dim)
    cache: dict[int, Any] = {}

    def fn(row: _Row, i: int, j: int) -> Any:
        gi = grows[i]
        if (i, mp.prec) not in cache:
            c = _mpf(gi[row.k])
            diffs = [mpmath.fsub(_mpf(v), c, exact=True) for v in gi]
            cache[(i, mp.prec)] = (diffs, mp.fsum(row.softmax(t) * diffs[t]
                                                  for t in range(row.n)))
        diffs, centred = cache[(i, mp.prec)]
        return row.softmax(j) * (diffs[j] - centred)

    return _map_rows(x, dim, fn)


def log_softmax_backward(grad_output: Any, input: Any, dim: int) -> np.ndarray:
    """Exact ``g − softmax(x)·Σg``, evaluated as ``g_i·(1 − p_i) − p_i·Σ_{j≠i} g_j``.

    The rearranged form keeps a one-hot ``g`` at a dominant class exact (``1 − p_k`` is
    formed without cancellation).
    """
    x = _as_array(input)
    if x.ndim == 0:
        return _scalar_backward(grad_output)
    dim, grows = _grad_rows(grad_output, x, dim)
    totals = [_exact_sum(r) for r in grows]  # exact, independent of the working precision

    def fn(row: _Row, i: int, j: int) -> Any:
        gj = grows[i][j]
        others = totals[i] - _mpf(gj)  # Σ_{t≠j} g_t; exact total, one rounding
        return _mpf(gj) * row.complement(j) - row.softmax(j) * others

    return _map_rows(x, dim, fn)


def logsumexp_backward(grad_output: Any, input: Any, dim: int,
                       keepdim: bool = False) -> np.ndarray:
    """Exact ``g ⊙ softmax(x)`` (``g`` broadcast along ``dim``)."""
    x = _as_array(input)
    if x.ndim == 0:
        return np.broadcast_to(_as_array(grad_output), ()).copy()
    dim = _check_dim(x.ndim, dim)
    g = _as_array(grad_output)
    if not keepdim:
        g = np.expand_dims(g, dim)
    g = np.broadcast_to(g, x.shape)
    grows, _ = _rows(np.ascontiguousarray(g), dim)
    return _map_rows(x, dim, lambda row, i, j: _mpf(grows[i][j]) * row.softmax(j))
