"""Private kernels of the references: mathematics only, float64 in and out.

Shared by the function modules of :mod:`lossproofs.reference`; see its docstring for the
conventions (rows ``(M, C)``, ``lp``, ``p``, ``w``, ``m_i``, ``g``).
"""

from __future__ import annotations

import numpy as np

from lossproofs import _validation as v

_ERRSTATE = {"divide": "ignore", "invalid": "ignore", "over": "ignore"}


def _max_shift(x: np.ndarray, axis) -> np.ndarray:
    """The max along ``axis`` kept as a broadcastable dimension; −inf over an empty axis."""
    # initial=−inf makes an empty axis reduce to −inf (instead of raising); NaN propagates.
    return np.max(x, axis=axis, keepdims=True, initial=-np.inf)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(**_ERRSTATE):
        # softmax(x) = exp(x − max) / Σ exp(x − max): the shift keeps exp ≤ 1 (no overflow); a
        # row holding +inf or NaN, or all −inf, gives x − max = NaN somewhere, hence a NaN row.
        shifted_exp = np.exp(x - _max_shift(x, axis))
        return shifted_exp / np.sum(shifted_exp, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(**_ERRSTATE):
        # log_softmax(x) = (x − max) − log Σ exp(x − max); a partial −inf row gives exactly −inf.
        shifted = x - _max_shift(x, axis)
        e = np.exp(shifted)
        total = np.sum(e, axis=axis, keepdims=True)
        if x.shape[axis] == 0:
            return shifted - np.log(total)
        # Σ exp(x − max) = 1 + t with t = Σ over the other classes: log(1 + t) = log1p(t) keeps
        # the relative accuracy of log p for a dominant class (log would round 1 + t to 1).
        others = e.copy()
        np.put_along_axis(others, np.argmax(x, axis=axis, keepdims=True), 0.0, axis=axis)
        t = np.where(np.isnan(total), np.nan, np.sum(others, axis=axis, keepdims=True))
        return shifted - np.log1p(t)


def _logsumexp_keepdims(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    with np.errstate(**_ERRSTATE):
        shift = _max_shift(x, axes)
        # An infinite max cannot be subtracted (inf − inf = NaN): shift by 0 instead, so a row
        # with +inf gives +inf and an all −inf (or empty) row gives log 0 = −inf, as torch does.
        shift = np.where(np.isinf(shift), 0.0, shift)
        # logsumexp(x) = m + log Σ exp(x − m): the max term is factored out to avoid overflow.
        return np.log(np.sum(np.exp(x - shift), axis=axes, keepdims=True)) + shift


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    # log σ(x) = min(x, 0) − log1p(exp(−|x|)): exp never overflows and log1p keeps the tail.
    return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # σ(x) = 1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) for x < 0: the exponent is never
    # positive, so nothing overflows, and each branch has O(1) relative error in its tail
    # (exp(log σ(x)) would amplify the rounding of log σ(x) by |log σ(x)|).
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1]
    with np.errstate(invalid="ignore"):
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _to_rows(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``(C,)`` -> ``(1, C)`` and ``(N, C, d1..dk)`` -> ``(N·d1⋯dk, C)``; also the loss shape."""
    if x.ndim == 1:
        return x.reshape(1, -1), ()
    loss_shape = (x.shape[0], *x.shape[2:])
    n_rows = int(np.prod(loss_shape))  # explicit: reshape(-1, 0) is ambiguous when C = 0
    return np.moveaxis(x, 1, -1).reshape(n_rows, x.shape[1]), loss_shape


def _from_rows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_to_rows` for an array of the input's ``shape``."""
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape(shape[0], *shape[2:], shape[1])
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1))


def _reduce(loss: np.ndarray, reduction: str, denominator) -> np.ndarray:
    with np.errstate(**_ERRSTATE):
        if reduction == "none":
            return np.asarray(loss, dtype=np.float64)
        total = np.sum(loss, dtype=np.float64)
        if reduction == "sum":
            return np.asarray(total)
        # 0/0 = NaN for an empty batch or when every target is ignored, as torch.
        return np.asarray(total / denominator)


def _upstream(grad_output: np.ndarray, reduction: str, denominator, loss_shape) -> np.ndarray:
    """∂(reduced loss)/∂ℓ_i · g for each per-element loss ℓ_i, with the per-element loss shape."""
    with np.errstate(**_ERRSTATE):
        if reduction == "none":
            return grad_output
        if reduction == "sum":
            return np.broadcast_to(grad_output, loss_shape)
        # mean: ∂(Σℓ/D)/∂ℓ_i = 1/D; D = 0 gives ±inf (turned into 0 or NaN by the caller, as torch).
        return np.broadcast_to(grad_output / denominator, loss_shape)


def _expected_output_shape(reduction: str, loss_shape) -> tuple[int, ...]:
    return tuple(loss_shape) if reduction == "none" else ()


# --- class-index targets --------------------------------------------------------------------

def _index_rows(target: np.ndarray, weight, n_classes: int, ignore_index: int):
    """Per row: kept mask m, a safe target (0 where ignored), w[t]·m and the full class weights."""
    flat = target.reshape(-1).astype(np.int64)
    kept = flat != ignore_index
    safe_target = np.where(kept, flat, 0)
    class_weight = (np.ones(n_classes) if weight is None
                    else np.asarray(weight, dtype=np.float64))
    if n_classes == 0:  # only reachable when every target is ignored
        target_weight = np.zeros(flat.shape)
    else:
        target_weight = np.where(kept, class_weight[safe_target], 0.0)
    return kept, safe_target, target_weight, class_weight


def _pick(rows: np.ndarray, safe_target: np.ndarray) -> np.ndarray:
    if rows.shape[1] == 0:
        return np.zeros(rows.shape[0])
    return np.take_along_axis(rows, safe_target[:, None], axis=1)[:, 0]


def _nll_rows(log_probs, kept, safe_target, target_weight) -> np.ndarray:
    """ℓ_i = −w[t_i]·lp[i, t_i]·m_i; ignored rows are exactly 0 whatever lp holds."""
    with np.errstate(**_ERRSTATE):
        return np.where(kept, -target_weight * _pick(log_probs, safe_target), 0.0)


def _smoothing_rows(log_probs, kept, class_weight) -> np.ndarray:
    """s_i = −Σ_c w_c·lp[i, c], 0 where the target is ignored."""
    with np.errstate(**_ERRSTATE):
        return np.where(kept, -np.sum(log_probs * class_weight, axis=1), 0.0)


def _index_grad_log_probs(upstream, kept, safe_target, target_weight, class_weight,
                          label_smoothing: float) -> np.ndarray:
    """∂loss/∂lp for class-index targets, rows ``(M, C)``; ignored rows exactly 0."""
    n_rows, n_classes = upstream.shape[0], class_weight.shape[0]
    with np.errstate(**_ERRSTATE):
        grad = np.zeros((n_rows, n_classes))
        nll_factor = 1.0 - label_smoothing if label_smoothing > 0 else 1.0
        if n_classes:
            # ∂ℓ_i/∂lp[i, t_i] = −(1−ε)·w[t_i]; w·(g/D) with w = 0 and D = 0 is NaN, as in torch.
            np.put_along_axis(grad, safe_target[:, None],
                              (-nll_factor * (target_weight * upstream))[:, None], axis=1)
        if label_smoothing > 0:
            # ∂/∂lp[i, c] of (ε/C)·s_i = −(ε/C)·w_c.
            grad -= (label_smoothing / n_classes) * upstream[:, None] * class_weight[None, :]
        return np.where(kept[:, None], grad, 0.0)


def _log_softmax_rows_backward(grad_log_probs, log_probs) -> np.ndarray:
    with np.errstate(**_ERRSTATE):
        # ∂/∂x of Σ_c g_c·lp_c = g − softmax(x)·Σ_c g_c, with softmax = exp(lp).
        return grad_log_probs - np.exp(log_probs) * np.sum(grad_log_probs, axis=1, keepdims=True)


# --- class-probability targets ----------------------------------------------------------------

def _smoothed_probabilities(target_rows, n_classes: int, label_smoothing: float) -> np.ndarray:
    # T = t·(1−ε) + ε/C; torch skips this entirely when ε = 0.
    if label_smoothing > 0:
        return target_rows * (1.0 - label_smoothing) + label_smoothing / n_classes
    return target_rows


def _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing):
    """Validate a cross_entropy call and return everything its forward and gradients need."""
    reduction = v.check_reduction(reduction)
    ignore_index = v.check_int(ignore_index, "ignore_index")
    label_smoothing = v.check_label_smoothing(label_smoothing)
    x = v.as_array(input, "input")
    t = v.as_array(target, "target")
    plan = {"x": x, "t": t, "reduction": reduction, "label_smoothing": label_smoothing,
            "ignore_index": ignore_index, "probabilities": x.shape == t.shape}
    if plan["probabilities"]:
        weight = v.check_probability_targets(x, t, weight, ignore_index)
    else:
        v.check_cross_entropy_input_rank(x)
        v.check_floating_input(x, "log_softmax_lastdim_kernel_impl")
        weight = v.check_class_index_targets(x, t, weight, ignore_index, "nll_loss_out_frame")
    rows, loss_shape = _to_rows(x.astype(np.float64))
    n_classes = rows.shape[1]
    plan.update(rows=rows, loss_shape=loss_shape, n_classes=n_classes,
                log_probs=_log_softmax(rows, 1))
    if plan["probabilities"]:
        class_weight = (np.ones(n_classes) if weight is None
                        else np.asarray(weight, dtype=np.float64))
        target_rows, _ = _to_rows(t.astype(np.float64))
        with np.errstate(**_ERRSTATE):
            # mean divides by numel/C (the number of rows), not by the weights (pytorch#61309).
            denominator = np.float64(x.size) / n_classes
        plan.update(class_weight=class_weight, target_rows=target_rows,
                    smoothed=_smoothed_probabilities(target_rows, n_classes, label_smoothing),
                    denominator=denominator)
    else:
        kept, safe_target, target_weight, class_weight = _index_rows(
            t, weight, n_classes, ignore_index)
        plan.update(kept=kept, safe_target=safe_target, target_weight=target_weight,
                    class_weight=class_weight,
                    # mean divides by Σ_i m_i·w[t_i] (a weighted mean, not by N).
                    denominator=np.sum(target_weight))
    return plan


def _cross_entropy_grad_log_probs(plan, grad_output) -> np.ndarray:
    """∂loss/∂lp as rows ``(M, C)`` for either target kind."""
    g = v.check_grad_output(grad_output,
                            _expected_output_shape(plan["reduction"], plan["loss_shape"]))
    upstream = _upstream(g, plan["reduction"], plan["denominator"], plan["loss_shape"])
    upstream = np.asarray(upstream, dtype=np.float64).reshape(-1)
    if plan["probabilities"]:
        with np.errstate(**_ERRSTATE):
            # ∂ℓ_i/∂lp[i, c] = −T_ic·w_c.
            return -upstream[:, None] * (plan["smoothed"] * plan["class_weight"])
    return _index_grad_log_probs(upstream, plan["kept"], plan["safe_target"],
                                 plan["target_weight"], plan["class_weight"],
                                 plan["label_smoothing"])


# =============================================================================================
# softmax, log_softmax, logsumexp
# =============================================================================================
