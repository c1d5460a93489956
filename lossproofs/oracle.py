"""The exact oracle: the loss functions of :mod:`lossproofs.reference`, evaluated in arbitrary
precision with mpmath and correctly rounded to float64.

Same names and arguments as :mod:`lossproofs.reference` (``torch.nn.functional`` names), and
``<name>_backward(grad_output, <same args>)`` for the gradient with respect to ``input``. Inputs
are taken as exact binary numbers (a float16 or bfloat16 input should be passed already rounded
to that dtype and cast back to float64, which is exact); outputs are float64 arrays.

How many digits, and why
------------------------
Every value is computed at a working precision of ``p = 160`` bits (48 decimal digits) and again
at ``2p``; if the two results round to the same float64 everywhere, that float64 is returned,
otherwise ``p`` is doubled, up to :data:`MAX_PRECISION_BITS` (Ziv's strategy). 160 bits is the
53 of float64 plus 107 guard bits. The formulas below are arranged so that the only roundings
are of sums of *same-sign* terms, of ``exp``/``log1p`` of *exact* arguments, and of products and
quotients, so their relative error is at most ``(n + 8)·2⁻ᵖ`` for a row of ``n ≤ 2¹⁷`` classes:
below ``2⁻¹³⁰``. The float64 rounding can then only be wrong when the exact value lies within
``2⁻⁷⁷`` ulp of a rounding midpoint, and the ``2p`` recomputation detects exactly that case.
Where a formula must subtract (gradients with mixed-sign ``grad_output``, ``logsumexp`` with a
negative maximum, targets outside [0, 1]) the recomputation at ``2p`` is what detects the
cancellation, and precision grows until the results agree.

Rows with more than :data:`LARGE_ROW` elements (the ``C = 10⁵`` strata) are evaluated once at
``p = 128`` without the recomputation, to keep the cost to about a second per row: by the bound
above their relative error is below ``2⁻¹¹⁰``, so the returned float64 is within
``0.5 + 2⁻⁵⁷`` ulp of the exact value (it may differ from the correctly rounded one only when
the exact value is within ``2⁻⁵⁷`` ulp of a midpoint).

Key rearrangements (each exact in real arithmetic):

- ``d_j = x_j − max`` is formed exactly (``fsub(..., exact=True)``), so ``exp(d_j)`` has an
  exact argument; ``S = Σ exp(d_j) = 1 + T`` where ``T`` sums all but one maximal term, and
  ``log S = log1p(T)`` keeps the tiny ``T`` of a dominant class.
- ``1 − softmax_j = (S − e_j)/S`` with ``S − e_j = T`` (for the max) or ``1 + (T − e_j)``.
- ``binary_cross_entropy_with_logits = (1−y)·softplus(x) + pw·y·softplus(−x)``: two
  non-negative terms for ``y ∈ [0, 1]``, where torch's ``(1−y)·x − lw·logsigmoid(x)`` cancels.

Special values follow torch's definitions (see ``/work/shared/TORCH_SEMANTICS.md``): a softmax
row that is all −inf, or holds +inf or NaN, is all NaN; a partial −inf row gives exact zeros
(softmax) and −inf (log_softmax). mpmath has no signed zero: zeros are returned as ``+0.0``
(:func:`ulp_distance` treats ``±0`` as equal).

:func:`ulp_distance` measures an implementation's result against the oracle in units in the last
place of any of float64, float32, float16 and bfloat16.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np
from mpmath import mp

START_PRECISION_BITS = 160
MAX_PRECISION_BITS = 5120
LARGE_ROW = 4096
LARGE_ROW_PRECISION_BITS = 128

# The float32 value of 1e-12 that torch's BCE gradient uses as the floor of (1−p)·p.
BCE_GRAD_EPS = float(np.float32(1e-12))
REDUCTIONS = ("none", "mean", "sum")


class OracleError(ArithmeticError):
    """The precision cap was reached before two evaluations agreed."""


# ----------------------------------------------------------------------------- rounding


def round_to_float64(v: Any) -> float:
    """Round an mpf to the nearest float64 (ties to even), with gradual underflow and overflow.

    ``float(mpf)`` truncates in mpmath, so the rounding is done here on the exact
    mantissa/exponent pair.
    """
    if not isinstance(v, mpmath.mpf):
        return float(v)
    if mpmath.isnan(v):
        return math.nan
    if mpmath.isinf(v):
        return math.inf if v > 0 else -math.inf
    sign, man, exp, bc = v._mpf_
    if man == 0:
        return 0.0
    top = exp + bc - 1  # floor(log2 |v|)
    if top < -1076:  # below half the smallest subnormal (2⁻¹⁰⁷⁵): rounds to zero
        return -0.0 if sign else 0.0
    if top > 1024:
        return -math.inf if sign else math.inf
    quantum = max(top - 52, -1074)  # exponent of the last kept bit (subnormals: 2⁻¹⁰⁷⁴)
    if exp < quantum:
        shift = quantum - exp
        kept, rest = man >> shift, man & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rest > half or (rest == half and kept & 1):
            kept += 1
        man, exp = kept, quantum
    try:
        out = math.ldexp(man, exp)
    except OverflowError:
        out = math.inf
    return -out if sign else out


def _to_float64_array(values: np.ndarray) -> np.ndarray:
    flat = [round_to_float64(v) for v in values.ravel()]
    return np.array(flat, dtype=np.float64).reshape(values.shape)


def _evaluate(compute: Callable[[], np.ndarray], size: int) -> np.ndarray:
    """Run ``compute`` (which returns an object array of mpf) under Ziv's strategy."""
    if size > LARGE_ROW:
        with mp.workprec(LARGE_ROW_PRECISION_BITS):
            return _to_float64_array(compute())
    prec = START_PRECISION_BITS
    with mp.workprec(prec):
        previous = _to_float64_array(compute())
    while prec < MAX_PRECISION_BITS:
        prec *= 2
        with mp.workprec(prec):
            current = _to_float64_array(compute())
        if np.array_equal(previous, current, equal_nan=True):
            return current
        previous = current
    raise OracleError(f"no agreement up to {MAX_PRECISION_BITS} bits")


def _mpf(x: float) -> Any:
    return mp.mpf(float(x))  # exact: a float64 has 53 bits, the working precision ≥ 128


def _exact_sum(values: np.ndarray) -> Any:
    """The exact sum of float64 values as an mpf (integer arithmetic on the 2⁻¹⁰⁷⁴ grid)."""
    total = 0
    special = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        if not math.isfinite(v):
            special.append(float(v))
            continue
        num, den = float(v).as_integer_ratio()  # den is a power of two ≤ 2¹⁰⁷⁴
        total += num * ((1 << 1074) // den)  # exact: every finite float64 is k·2⁻¹⁰⁷⁴
    if special:
        return mp.mpf(math.fsum(special)) if len(set(special)) == 1 else mp.nan
    return mp.make_mpf(mpmath.libmp.from_man_exp(total, -1074))  # no rounding: prec=0


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is not one of {REDUCTIONS}")


def _check_dim(ndim: int, dim: int) -> int:
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not lo <= dim <= hi:
        raise IndexError(f"dim={dim} out of range for a {ndim}-d input [{lo}, {hi}]")
    return dim % max(ndim, 1)


# ----------------------------------------------------------------------------- row kernel


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


def _as_array(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------- softmax family


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


def _broadcast_grad(grad_output: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(_as_array(grad_output), shape)


def softmax_backward(grad_output: Any, input: Any, dim: int) -> np.ndarray:
    """Exact ``y ⊙ (g − Σ g⊙y)``, with ``y = softmax(x)``.

    Evaluated as ``y_i · ((g_i − c) − Σ_j y_j (g_j − c))`` with ``c = g_k`` at the row's
    maximum and exact differences ``g_j − c`` (equal because ``Σ y = 1``), so a constant ``g``
    gives exact zeros rather than rounding noise.
    """
    x = _as_array(input)
    g = _broadcast_grad(grad_output, x.shape)
    if x.ndim == 0:
        return np.zeros((), dtype=np.float64) * g
    dim = _check_dim(x.ndim, dim)
    grows, _ = _rows(np.ascontiguousarray(g), dim)
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
    g = _broadcast_grad(grad_output, x.shape)
    if x.ndim == 0:
        return np.zeros((), dtype=np.float64) * g
    dim = _check_dim(x.ndim, dim)
    grows, _ = _rows(np.ascontiguousarray(g), dim)
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


# ----------------------------------------------------------------------------- nll / CE


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


def _reduce(losses: np.ndarray, reduction: str, denominator: Any, out_shape) -> np.ndarray:
    if reduction == "none":
        return losses.reshape(out_shape)
    total = mp.fsum(losses.ravel()) if losses.size else mp.zero
    if reduction == "sum":
        return np.array(total, dtype=object)
    return np.array(total / denominator if denominator != 0 else mp.nan, dtype=object)


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


# ----------------------------------------------------------------------------- BCE


def _bce_layout(input, target, weight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, y = _as_array(input), _as_array(target)
    if p.shape != y.shape:
        raise ValueError(f"target size {y.shape} must be the same as input size {p.shape}")
    w = np.ones_like(p) if weight is None else np.broadcast_to(_as_array(weight), p.shape)
    return p, y, w


def _elementwise(shape, reduction: str, term: Callable[[int], Any],
                 grad_output: Any = None) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))

    def compute() -> np.ndarray:
        vals = np.empty(n, dtype=object)
        for i in range(n):
            vals[i] = term(i)
        if grad_output is None:
            return _reduce(vals, reduction, mp.mpf(n), shape)
        g = _as_array(grad_output)
        g_flat = (np.broadcast_to(g, shape).reshape(-1) if reduction == "none"
                  else np.full(n, float(g)))
        den = mp.mpf(n) if reduction == "mean" else mp.one
        return np.array([vals[i] * _mpf(g_flat[i]) / den for i in range(n)],
                        dtype=object).reshape(shape)

    return _evaluate(compute, 0)


def binary_cross_entropy(input: Any, target: Any, weight: Any = None,
                         reduction: str = "mean") -> np.ndarray:
    """Exact ``ℓ = w·[(y−1)·max(log1p(−p), −100) − y·max(log p, −100)]``.

    The −100 clamps are part of torch's definition, so the oracle keeps them.
    """
    _check_reduction(reduction)
    p, y, w = _bce_layout(input, target, weight)
    pf, yf, wf = p.ravel(), y.ravel(), w.ravel()
    clamp = -100

    def term(i: int) -> Any:
        pi, yi = _mpf(pf[i]), _mpf(yf[i])
        log_q = max(mp.log1p(-pi), clamp)  # log(1 − p) with p exact: log1p, no cancellation
        log_p = max(mp.log(pi), clamp)
        return _mpf(wf[i]) * ((yi - 1) * log_q - yi * log_p)

    return _elementwise(p.shape, reduction, term)


def binary_cross_entropy_backward(grad_output: Any, input: Any, target: Any,
                                  weight: Any = None, reduction: str = "mean") -> np.ndarray:
    """Exact ``g·w·(p − y) / max((1 − p)·p, ε)`` with ε = float32(1e-12), as torch defines it."""
    _check_reduction(reduction)
    p, y, w = _bce_layout(input, target, weight)
    pf, yf, wf = p.ravel(), y.ravel(), w.ravel()

    def term(i: int) -> Any:
        pi = _mpf(pf[i])
        diff = mpmath.fsub(pi, _mpf(yf[i]), exact=True)  # p − y exactly
        den = max(mpmath.fsub(1, pi, exact=True) * pi, _mpf(BCE_GRAD_EPS))
        return _mpf(wf[i]) * diff / den

    return _elementwise(p.shape, reduction, term, grad_output)


def _bcel_layout(input, target, weight, pos_weight):
    x, y, w = _bce_layout(input, target, weight)
    pw = (np.ones_like(x) if pos_weight is None
          else np.broadcast_to(_as_array(pos_weight), x.shape))
    return x, y, w, pw


def _softplus(v: Any) -> Any:
    return mp.log1p(mp.exp(v))  # log(1 + eˣ) with an exact argument: no cancellation


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean",
                                     pos_weight: Any = None) -> np.ndarray:
    """Exact ``ℓ = w·[(1−y)·x − lw·logsigmoid(x)]``, ``lw = (pw − 1)·y + 1``.

    Evaluated as ``w·[(1−y)·softplus(x) + pw·y·softplus(−x)]`` (equal, since
    ``x = softplus(x) − softplus(−x)``): two non-negative terms for ``y ∈ [0,1]``, ``pw ≥ 0``.
    For infinite ``x`` torch's formula is used literally, so ``0·∞`` gives NaN as in torch
    (pytorch#102894).
    """
    _check_reduction(reduction)
    x, y, w, pw = _bcel_layout(input, target, weight, pos_weight)
    xf, yf, wf, pf = x.ravel(), y.ravel(), w.ravel(), pw.ravel()

    def term(i: int) -> Any:
        xi, yi, pwi = _mpf(xf[i]), _mpf(yf[i]), _mpf(pf[i])
        if mpmath.isinf(xi):
            lw = (pwi - 1) * yi + 1
            logsig = min(xi, 0) - mp.log1p(mp.exp(-abs(xi)))
            return _mpf(wf[i]) * ((1 - yi) * xi - lw * logsig)
        return _mpf(wf[i]) * ((1 - yi) * _softplus(xi) + pwi * yi * _softplus(-xi))

    return _elementwise(x.shape, reduction, term)


def binary_cross_entropy_with_logits_backward(grad_output: Any, input: Any, target: Any,
                                              weight: Any = None, reduction: str = "mean",
                                              pos_weight: Any = None) -> np.ndarray:
    """Exact ``g·w·((pw·y + 1 − y)·σ(x) − pw·y)``, evaluated as
    ``g·w·((1 − y)·σ(x) − pw·y·σ(−x))`` (using ``1 − σ(x) = σ(−x)``)."""
    _check_reduction(reduction)
    x, y, w, pw = _bcel_layout(input, target, weight, pos_weight)
    xf, yf, wf, pf = x.ravel(), y.ravel(), w.ravel(), pw.ravel()

    def term(i: int) -> Any:
        xi, yi, pwi = _mpf(xf[i]), _mpf(yf[i]), _mpf(pf[i])
        sig_pos = 1 / (1 + mp.exp(-xi))  # σ(x)
        sig_neg = 1 / (1 + mp.exp(xi))  # σ(−x) = 1 − σ(x), formed without cancellation
        return _mpf(wf[i]) * (mpmath.fsub(1, yi, exact=True) * sig_pos - pwi * yi * sig_neg)

    return _elementwise(x.shape, reduction, term, grad_output)


# ----------------------------------------------------------------------------- ULPs


_GRIDS = {"float64": np.float64, "float32": np.float32, "float16": np.float16}
_INT_OF = {np.float64: np.int64, np.float32: np.int32, np.float16: np.int16}
_UINT_OF = {np.float64: np.uint64, np.float32: np.uint32, np.float16: np.uint16}


def _ordered_key(v: np.ndarray, ftype: type) -> np.ndarray:
    """Integer ``k`` with ``k(next representable) = k + 1``; ``k(±0) = 0``; monotone."""
    itype = _INT_OF[ftype]
    bits = v.astype(ftype).view(itype).astype(np.int64)
    mag = bits & np.int64(np.iinfo(itype).max)  # drop the sign bit
    return np.where(bits < 0, -mag, mag)


def _from_key(k: np.ndarray, ftype: type) -> np.ndarray:
    itype = _INT_OF[ftype]
    utype = _UINT_OF[ftype]
    width = np.iinfo(itype).bits
    mag = np.abs(k).astype(np.uint64)
    bits = np.where(k < 0, mag | (np.uint64(1) << np.uint64(width - 1)), mag)
    return bits.astype(utype).view(ftype).astype(np.float64)


def _floor_key(x: np.ndarray, dtype: str) -> np.ndarray:
    """Key of the largest ``dtype`` value ≤ x (x finite float64)."""
    if dtype == "bfloat16":
        # bfloat16 values are the float32 values whose low 16 bits are zero, and its binades are
        # float32's, so the floor key is the float32 floor key // 2¹⁶ (arithmetic shift floors).
        return _floor_key(x, "float32") >> 16
    ftype = _GRIDS[dtype]
    with np.errstate(over="ignore"):
        r = x.astype(ftype)  # nearest; may be above x
    k = _ordered_key(r, ftype)
    above = r.astype(np.float64) > x
    return np.where(above, k - 1, k)


def _key_value(k: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return _from_key(k << 16, np.float32)
    return _from_key(k, _GRIDS[dtype])


def _grid_position(x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``(key, fraction)``: x lies ``fraction`` of the way from the ``dtype`` value with integer
    key ``key`` to the next one (keys of consecutive representable values differ by 1, ``±0``
    has key 0). Finite inputs; beyond the largest finite value the top spacing continues."""
    k = _floor_key(x, dtype)
    top = np.finfo(np.float32 if dtype == "bfloat16" else _GRIDS[dtype]).max
    top_key = _floor_key(np.array(float(top)), dtype)
    k = np.clip(k, -top_key, top_key)
    a = _key_value(k, dtype)
    step_key = np.where(k == top_key, k - 1, k)
    gap = np.abs(_key_value(step_key + 1, dtype) - _key_value(step_key, dtype))
    # x − a is exact in float64 for the narrower grids and 0 for float64 itself.
    return k, (x - a) / gap


def ulp_size(x: Any, dtype: str) -> np.ndarray:
    """The spacing of ``dtype``'s grid at ``|x|`` (the gap from the largest value ≤ |x| to the
    next one; the top gap beyond the largest finite value; the subnormal spacing at 0)."""
    dtype = _dtype_name(dtype)
    mag = np.abs(_as_array(x))
    k, _ = _grid_position(np.where(np.isfinite(mag), mag, 0.0), dtype)
    top = np.finfo(np.float32 if dtype == "bfloat16" else _GRIDS[dtype]).max
    top_key = _floor_key(np.array(float(top)), dtype)
    k = np.where(k == top_key, k - 1, k)
    return _key_value(k + 1, dtype) - _key_value(k, dtype)


def ulp_position(x: Any, dtype: str) -> np.ndarray:
    """A continuous coordinate in units of ``dtype``'s spacing (see :func:`_grid_position`);
    float64 keys beyond 2⁵³ lose integer resolution here, use :func:`ulp_distance` to compare."""
    k, frac = _grid_position(_as_array(x), _dtype_name(dtype))
    return k.astype(np.float64) + frac


def _dtype_name(dtype: Any) -> str:
    name = str(dtype).removeprefix("torch.")
    if name not in (*_GRIDS, "bfloat16"):
        raise ValueError(f"dtype={dtype!r} is not one of float64, float32, float16, bfloat16")
    return name


def ulp_distance(actual: Any, exact: Any, dtype: str) -> np.ndarray:
    """Distance from ``actual`` to ``exact``, in ulps of ``dtype`` (elementwise, float64).

    Convention: positions on the ``dtype`` grid as in :func:`ulp_position`, so a correctly
    rounded result is at most 0.5 away, ``±0`` are equal, subnormals are counted at their
    (uniform) spacing and a value crossing a power of two counts each binade's own spacing.
    Non-finite values: NaN vs NaN and an infinity vs the same infinity are 0; any other pairing
    with a NaN or infinity is ``inf``. ``exact`` is the float64 oracle value (its own rounding
    error is at most 2⁻²⁹ ulp of float32 and below for the smaller dtypes).
    """
    a = np.asarray(_as_array(actual), dtype=np.float64)
    e = np.asarray(_as_array(exact), dtype=np.float64)
    a, e = np.broadcast_arrays(a, e)
    finite = np.isfinite(a) & np.isfinite(e)
    out = np.full(a.shape, np.inf)
    same_special = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e))
    out[same_special] = 0.0
    if finite.any():
        dtype = _dtype_name(dtype)
        ka, fa = _grid_position(a[finite], dtype)
        ke, fe = _grid_position(e[finite], dtype)
        # Integer key difference first (exact in int64), then the fractional parts.
        out[finite] = np.abs((ka - ke).astype(np.float64) + (fa - fe))
    return out


def representable(exact: Any, dtype: str) -> np.ndarray:
    """True where ``exact`` is finite and rounds to a finite value of ``dtype``."""
    e = _as_array(exact)
    top = float(np.finfo(np.float32).max) if dtype == "bfloat16" else float(
        np.finfo(_GRIDS[dtype]).max)
    if dtype == "bfloat16":
        top = float(_key_value(_floor_key(np.array(top), "bfloat16"), "bfloat16"))
    return np.isfinite(e) & (np.abs(e) <= top)


def round_to_dtype(x: Any, dtype: str) -> np.ndarray:
    """Round float64 values to ``dtype`` (nearest-even, via torch for bfloat16) and back."""
    import torch

    t = torch.as_tensor(_as_array(x))
    return t.to(getattr(torch, str(dtype).removeprefix("torch."))).double().numpy()
