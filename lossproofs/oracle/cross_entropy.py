"""``nll_loss`` and ``cross_entropy`` (class-index and class-probability targets, weights,
``ignore_index``, label smoothing), exactly, and their input gradients."""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np
from mpmath import mp

from lossproofs.oracle._precision import _as_array, _evaluate, _exact_sum, _mpf
from lossproofs.oracle._rows import _check_reduction, _reduce, _Row, _rows, _unrows


def _class_layout(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], int]:
    """``(N, C, d1..)`` or ``(C,)`` input → ``(M, C)`` rows, the moved shape, class dim."""
    if x.ndim == 0:
        raise ValueError("input must have 1 or more dimensions (got 0)")
    cd = 0 if x.ndim == 1 else 1
    rows, moved = _rows(x, cd)
    return rows, moved, cd


def _index_targets(target: Any, rows: int, n_classes: int, ignore_index: int) -> np.ndarray:
    t = np.asarray(target)
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"target must hold integer class indices, got dtype {t.dtype}")
    t = t.reshape(-1).astype(np.int64)
    if t.size != rows:
        raise ValueError(f"target has {t.size} elements, expected {rows} (one per row)")
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"target {int(t[bad][0])} is out of bounds for {n_classes} classes")
    return t


def _weights(weight: Any, n_classes: int) -> np.ndarray:
    if weight is None:
        return np.ones(n_classes, dtype=np.float64)
    w = _as_array(weight)
    if w.shape != (n_classes,):
        raise ValueError(f"weight of shape {w.shape} must have shape ({n_classes},)")
    return w


def _index_ce_parts(input, target, weight, ignore_index, label_smoothing):
    x = _as_array(input)
    rows, moved, cd = _class_layout(x)
    n_classes = rows.shape[1]
    t = _index_targets(target, rows.shape[0], n_classes, ignore_index)
    w = _weights(weight, n_classes)
    kept = t != ignore_index
    out_shape = moved[:-1]
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing={label_smoothing!r} must be between 0.0 and 1.0")
    return x, rows, moved, cd, t, w, kept, out_shape, eps


def _index_denominator(w: np.ndarray, t: np.ndarray, kept: np.ndarray) -> Any:
    return _exact_sum(w[t[kept]]) if kept.any() else mp.zero


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> np.ndarray:
    """Exact ``ℓ_i = −w[t_i]·x[i, t_i]`` (0 where ignored), then none / sum / weighted mean."""
    return cross_entropy(input, target, weight, ignore_index, reduction, 0.0,
                         _log_probabilities_given=True)


def nll_loss_backward(grad_output: Any, input: Any, target: Any, weight: Any = None,
                      ignore_index: int = -100, reduction: str = "mean") -> np.ndarray:
    """Exact ``∂/∂x[i, t_i] = −w[t_i]·g_i`` (÷ Σ kept weights for mean), 0 elsewhere."""
    return cross_entropy_backward(grad_output, input, target, weight, ignore_index, reduction,
                                  0.0, _log_probabilities_given=True)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0,
                  _log_probabilities_given: bool = False) -> np.ndarray:
    """Exact cross-entropy; index targets when ``input.shape != target.shape``, else
    class-probability targets.

    Index targets: ``ℓ_i = (1−ε)·w_t·(−lp_t) + (ε/C)·Σ_c w_c·(−lp_c)`` (smoothing term only when
    ``ε > 0``), ``mean`` divides by ``Σ_kept w[t_i]``. Probability targets:
    ``ℓ = −Σ_c lp_c·T_c·w_c`` with ``T = t(1−ε) + ε/C``, ``mean`` divides by ``numel/C``.
    All terms are non-negative for non-negative weights and targets: no cancellation.
    """
    _check_reduction(reduction)
    x = _as_array(input)
    if not _log_probabilities_given and np.shape(target) == x.shape and x.ndim > 0 \
            and np.issubdtype(np.asarray(target).dtype, np.floating):
        return _prob_ce(x, _as_array(target), weight, reduction, float(label_smoothing))
    x, rows, _moved, _cd, t, w, kept, out_shape, eps = _index_ce_parts(
        x, target, weight, ignore_index, label_smoothing)
    n_classes = rows.shape[1]

    def compute() -> np.ndarray:
        losses = np.empty(rows.shape[0], dtype=object)
        for i, r in enumerate(rows):
            if not kept[i]:
                losses[i] = mp.zero
                continue
            if _log_probabilities_given:
                losses[i] = -_mpf(w[t[i]]) * _mpf(r[t[i]])
                continue
            row = _Row(r)
            if row.bad:
                losses[i] = mp.nan
                continue
            loss = (1 - _mpf(eps)) * _mpf(w[t[i]]) * -row.log_softmax(t[i])
            if eps > 0:
                smooth = mp.fsum(_mpf(w[c]) * -row.log_softmax(c) for c in range(n_classes))
                loss = loss + _mpf(eps) / n_classes * smooth
            losses[i] = loss
        return _reduce(losses, reduction, _index_denominator(w, t, kept), out_shape)

    return _evaluate(compute, n_classes)


def _prob_ce(x, target, weight, reduction, eps) -> np.ndarray:
    rows, moved, cd = _class_layout(x)
    trows, _ = _rows(target, cd)
    n_classes = rows.shape[1]
    w = _weights(weight, n_classes)

    def smoothed(tc: float) -> Any:
        return _mpf(tc) * (1 - _mpf(eps)) + _mpf(eps) / n_classes if eps > 0 else _mpf(tc)

    def compute() -> np.ndarray:
        losses = np.empty(rows.shape[0], dtype=object)
        for i, r in enumerate(rows):
            row = _Row(r)
            if row.bad:
                losses[i] = mp.nan
                continue
            losses[i] = -mp.fsum(row.log_softmax(c) * smoothed(trows[i][c]) * _mpf(w[c])
                                 for c in range(n_classes))
        return _reduce(losses, reduction, mp.mpf(rows.shape[0]), moved[:-1])

    return _evaluate(compute, n_classes)


def cross_entropy_backward(grad_output: Any, input: Any, target: Any, weight: Any = None,
                           ignore_index: int = -100, reduction: str = "mean",
                           label_smoothing: float = 0.0,
                           _log_probabilities_given: bool = False) -> np.ndarray:
    """Exact gradient of :func:`cross_entropy` with respect to ``input``.

    Index targets, kept sample, class ``c``:
    ``g·[(1−ε)·w_t·(p_c − δ_ct) + (ε/C)·(p_c·W − w_c)]`` with ``W = Σ w``, evaluated as
    ``[(1−ε)·w_t·A_c + (ε/C)·(e_c·(W − w_c) − w_c·(S − e_c))]/S`` where ``A_c = e_c`` or
    ``−(S − e_t)``: equal logits and uniform weights give exact zeros, and a dominant class
    gives exactly ``−w_t·T/S`` rather than ``p − 1`` rounded.
    """
    _check_reduction(reduction)
    x = _as_array(input)
    if not _log_probabilities_given and np.shape(target) == x.shape and x.ndim > 0 \
            and np.issubdtype(np.asarray(target).dtype, np.floating):
        return _prob_ce_backward(grad_output, x, _as_array(target), weight, reduction,
                                 float(label_smoothing))
    x, rows, moved, cd, t, w, kept, out_shape, eps = _index_ce_parts(
        x, target, weight, ignore_index, label_smoothing)
    n_classes = rows.shape[1]
    g = _as_array(grad_output)
    g_rows = (np.broadcast_to(g, out_shape).reshape(-1) if reduction == "none"
              else np.full(rows.shape[0], float(g)))
    w_total = _exact_sum(w)

    def compute() -> np.ndarray:
        den = _index_denominator(w, t, kept) if reduction == "mean" else mp.one
        out = np.empty(rows.shape, dtype=object)
        for i, r in enumerate(rows):
            if not kept[i]:
                out[i, :] = mp.zero
                continue
            scale = _mpf(g_rows[i]) / den if den != 0 else mp.nan
            wt = _mpf(w[t[i]])
            if _log_probabilities_given:
                out[i, :] = mp.zero
                out[i, t[i]] = -wt * scale
                continue
            row = _Row(r)
            for c in range(n_classes):
                if row.bad:
                    out[i, c] = mp.nan
                    continue
                a = -row.rest(c) if c == t[i] else row.e[c]  # S·(p_c − δ_ct), no cancellation
                num = (1 - _mpf(eps)) * wt * a
                if eps > 0:
                    wc = _mpf(w[c])
                    # S·(p_c·W − w_c) = e_c·(W − w_c) − w_c·(S − e_c): exact zero when uniform.
                    num += _mpf(eps) / n_classes * (
                        row.e[c] * mpmath.fsub(w_total, wc, exact=True) - wc * row.rest(c))
                out[i, c] = num / row.S * scale
        return out

    values = _evaluate(compute, n_classes)
    return _unrows(values, moved, cd)


def _prob_ce_backward(grad_output, x, target, weight, reduction, eps) -> np.ndarray:
    rows, moved, cd = _class_layout(x)
    trows, _ = _rows(target, cd)
    n_classes = rows.shape[1]
    w = _weights(weight, n_classes)
    g = _as_array(grad_output)
    g_rows = (np.broadcast_to(g, moved[:-1]).reshape(-1) if reduction == "none"
              else np.full(rows.shape[0], float(g)))

    def compute() -> np.ndarray:
        den = mp.mpf(rows.shape[0]) if reduction == "mean" else mp.one
        out = np.empty(rows.shape, dtype=object)
        for i, r in enumerate(rows):
            row = _Row(r)
            tw = [(_mpf(trows[i][c]) * (1 - _mpf(eps)) + _mpf(eps) / n_classes
                   if eps > 0 else _mpf(trows[i][c])) * _mpf(w[c]) for c in range(n_classes)]
            total = mp.fsum(tw)
            for c in range(n_classes):
                if row.bad:
                    out[i, c] = mp.nan
                    continue
                # S·(p_c·V − T_c w_c) = e_c·(V − T_c w_c) − T_c w_c·(S − e_c).
                num = row.e[c] * (total - tw[c]) - tw[c] * row.rest(c)
                out[i, c] = num / row.S * _mpf(g_rows[i]) / den
        return out

    return _unrows(_evaluate(compute, n_classes), moved, cd)
