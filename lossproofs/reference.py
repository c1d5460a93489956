"""float64 NumPy references for torch's loss functions, their gradients and two HVPs.

Each public function mirrors the ``torch.nn.functional`` function of the same name (names,
argument names, defaults, result shapes, special values and the exception *types* torch 2.13
raises), computes in float64 whatever the input dtype, and depends on NumPy only. Argument
checking lives in :mod:`lossproofs._validation`; this module holds the mathematics.

Conventions used throughout:

- ``cd`` is the class dimension: 1, or 0 for an unbatched ``(C,)`` input. Internally class-dim
  inputs are laid out as rows ``(M, C)`` (class dimension last, every other dimension
  flattened into M) and laid back out at the end.
- ``lp = log_softmax(x, cd)``, ``p = softmax(x, cd)``, ``w`` the class weights (ones if absent),
  ``m_i = [t_i != ignore_index]`` for class-index targets, ``g`` the grad_output.
- Results are always ``np.ndarray`` of dtype float64; a ``"sum"``/``"mean"`` reduction (and
  ``"none"`` on an unbatched ``(C,)`` input) returns a **0-d array**, never a Python float.
- ``*_backward(grad_output, ...)`` returns ∂/∂input of ``Σ grad_output ⊙ forward(...)`` (the
  vector-Jacobian product autograd computes) in closed form, with the input's shape;
  ``*_target_backward`` the same with respect to a floating target; ``*_hvp(vector, ...)`` is
  d/dε of the input gradient at ``input + ε·vector``.
- Gradients follow torch's chain through ``log_softmax`` (``grad_x = g_lp − p·Σ_c g_lp``), so a
  NaN row stays NaN even where its upstream gradient is 0 (an ignored all −inf row), as in torch.
"""

from __future__ import annotations

import numpy as np

from lossproofs import _validation as v

__all__ = [
    "BCE_EPSILON",
    "BCE_LOG_CLAMP",
    "DELIBERATE_DIVERGENCES",
    "MIRRORED_TORCH_QUIRKS",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_target_backward",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "binary_cross_entropy_with_logits_hvp",
    "binary_cross_entropy_with_logits_target_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "cross_entropy_hvp",
    "cross_entropy_target_backward",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "nll_loss",
    "nll_loss_backward",
    "softmax",
    "softmax_backward",
]

# torch clamps BCE's logarithms at −100 so that a probability of exactly 0 or 1 stays finite.
BCE_LOG_CLAMP = -100.0
# torch's BCE backward divides by max((1 − p)·p, EPSILON) with EPSILON = 1e-12 stored as float32.
BCE_EPSILON = float(np.float32(1e-12))  # 9.999999960041972e-13

DELIBERATE_DIVERGENCES: dict[str, dict[str, str]] = {
    "cross_entropy.label_smoothing": {
        "inputs": "label_smoothing < 0 or label_smoothing is NaN",
        "torch": "silently treated as label_smoothing = 0 (no error)",
        "reference": "ValueError naming label_smoothing and its value",
        "upstream": "https://github.com/pytorch/pytorch/issues/134767",
        "functions": "cross_entropy, cross_entropy_backward, cross_entropy_target_backward, "
                     "cross_entropy_hvp",
    },
}
"""Where the reference deliberately does NOT do what torch does, keyed by ``function.argument``.

Tests look up this table to record torch's behaviour as a strict xfail rather than a pass."""

MIRRORED_TORCH_QUIRKS: dict[str, dict[str, str]] = {
    "nll_loss.uint8_target_k_dim": {
        "inputs": "uint8 class-index target with an (N, C, d1..dk) input",
        "torch": "RuntimeError: expected scalar type Long but found Byte",
        "reference": "the same RuntimeError",
    },
}
"""Surprising torch rejections the reference reproduces on purpose (so tests agree on them)."""

_ERRSTATE = {"divide": "ignore", "invalid": "ignore", "over": "ignore"}


# =============================================================================================
# Private kernels: mathematics only, float64 in and out, no argument checking.
# =============================================================================================

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

def _bfloat16_round(x: np.ndarray) -> np.ndarray:
    """Round float32 values to bfloat16 (round to nearest, ties to even) and widen back."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    # Adding 0x7FFF plus the lowest kept bit then truncating 16 bits rounds half to even.
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), out)


def _cast_for_softmax(input, dim, dtype, kernel: str) -> tuple[np.ndarray, int]:
    x = v.as_array(input, "input")
    if dtype is not None:
        # A torch dtype prints as "torch.float32"; anything else goes through np.dtype.
        name = str(dtype)
        is_torch_dtype = name.startswith("torch.")
        if name in ("torch.bfloat16", "bfloat16"):
            x = _bfloat16_round(x.astype(np.float64))
        else:
            try:
                target_dtype = np.dtype(name.removeprefix("torch.") if is_torch_dtype else dtype)
            except TypeError:
                raise TypeError(f"dtype must name a floating dtype, got dtype={dtype!r}") from None
            if not np.issubdtype(target_dtype, np.floating):
                raise NotImplementedError(
                    f'"{kernel}" not implemented for \'{v.torch_dtype_name(target_dtype)}\': '
                    f"dtype={dtype!r} is not floating"
                )
            # dtype= casts (rounds) the input before computing, as torch does.
            x = x.astype(target_dtype)
    v.check_floating_input(x, kernel)
    axis = v.normalize_dim(dim, x.ndim)
    return x.astype(np.float64), axis


def softmax(input, dim, dtype=None) -> np.ndarray:
    """softmax(x)_i = exp(x_i − max x) / Σ_j exp(x_j − max x) along ``dim``, in float64.

    Mirrors ``torch.nn.functional.softmax(input, dim, dtype=dtype)``.

    Shapes: any shape in, the same shape out (a 0-d input with ``dim`` in {−1, 0} gives 1).
    ``dtype`` (a NumPy dtype, a name, or a torch dtype such as ``torch.bfloat16``) first rounds
    the input to that dtype, as torch's cast; the computation itself is always float64.
    Special values (as torch's max-shifted kernel): a partial −inf row gives exactly 0 at the
    −inf entries; a row that is all −inf, or holds +inf or NaN, is all NaN; an empty ``dim``
    gives an empty result.
    Errors: integer input without ``dtype`` -> NotImplementedError; ``dim`` out of range ->
    IndexError.
    """
    x, axis = _cast_for_softmax(input, dim, dtype, "softmax_lastdim_kernel_impl")
    if x.ndim == 0:
        return _softmax(x.reshape(1), 0).reshape(())
    return _softmax(x, axis)


def log_softmax(input, dim, dtype=None) -> np.ndarray:
    """log_softmax(x)_i = (x_i − max x) − log Σ_j exp(x_j − max x) along ``dim``, in float64.

    Mirrors ``torch.nn.functional.log_softmax(input, dim, dtype=dtype)``. Shapes, ``dtype`` and
    errors as :func:`softmax`; a 0-d input gives 0. Special values: a partial −inf row gives
    exactly −inf at the −inf entries; an all −inf row, or one holding +inf or NaN, is all NaN.
    """
    x, axis = _cast_for_softmax(input, dim, dtype, "log_softmax_lastdim_kernel_impl")
    if x.ndim == 0:
        return _log_softmax(x.reshape(1), 0).reshape(())
    return _log_softmax(x, axis)


def _logsumexp_args(input, dim):
    x = v.as_array(input, "input")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise NotImplementedError(
            f"logsumexp of a complex input is not supported here (input dtype {x.dtype.name})"
        )
    axes = v.normalize_dims(dim, x.ndim)
    x = x.astype(np.float64)  # integer and bool inputs are promoted, as torch.logsumexp does
    return x, axes


def logsumexp(input, dim, keepdim=False) -> np.ndarray:
    """logsumexp(x) = m + log Σ exp(x − m) over ``dim`` with m = max x (0 if m is ±inf), float64.

    Mirrors ``torch.logsumexp(input, dim, keepdim=keepdim)``. ``dim`` is an int or a tuple of
    distinct ints. Shapes: the reduced dimensions are removed (kept with size 1 if ``keepdim``);
    a 0-d input with ``dim`` in {−1, 0} is returned as is. Integer inputs are promoted.
    Special values: a +inf entry gives +inf; an all −inf or empty slice gives −inf; NaN gives
    NaN. Errors: ``dim`` out of range -> IndexError; a repeated or empty ``dim`` -> RuntimeError.
    """
    x, axes = _logsumexp_args(input, dim)
    if x.ndim == 0:
        return x.copy()
    result = _logsumexp_keepdims(x, axes)
    return result if keepdim else np.squeeze(result, axis=axes)


def softmax_backward(grad_output, input, dim) -> np.ndarray:
    """∂/∂x of Σ g⊙softmax(x): ``y ⊙ (g − Σ_dim g⊙y)`` with y = softmax(x, dim), in float64.

    Mirrors torch's ``_softmax_backward_data``. ``grad_output`` and the result have the input's
    shape. A partial −inf row gives finite gradients (0 at the −inf entries); a NaN row NaN.
    """
    y = softmax(input, dim)
    g = v.check_grad_output(grad_output, y.shape)
    if y.ndim == 0:
        return np.zeros(())  # softmax of a single element is the constant 1
    axis = v.normalize_dim(dim, y.ndim)
    with np.errstate(**_ERRSTATE):
        return y * (g - np.sum(g * y, axis=axis, keepdims=True))


def log_softmax_backward(grad_output, input, dim) -> np.ndarray:
    """∂/∂x of Σ g⊙log_softmax(x): ``g − exp(y)·Σ_dim g`` with y = log_softmax(x, dim), float64.

    Mirrors torch's ``_log_softmax_backward_data``. Shapes as the input. A partial −inf row
    gives finite gradients (exp(−inf) = 0); an all −inf or NaN row gives NaN.
    """
    y = log_softmax(input, dim)
    g = v.check_grad_output(grad_output, y.shape)
    if y.ndim == 0:
        return np.zeros(())  # log_softmax of a single element is the constant 0
    axis = v.normalize_dim(dim, y.ndim)
    with np.errstate(**_ERRSTATE):
        return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)


def logsumexp_backward(grad_output, input, dim, keepdim=False) -> np.ndarray:
    """∂/∂x of Σ g⊙logsumexp(x): ``g·exp(x − logsumexp(x))`` broadcast over ``dim``, float64.

    Mirrors torch's logsumexp backward (``grad · (self − result).exp()``). ``grad_output`` has
    the forward's shape; the result the input's. Special values as torch: a +inf entry gives
    NaN there (inf − inf), an all −inf slice NaN.
    """
    x, axes = _logsumexp_args(input, dim)
    if x.ndim == 0:
        g = v.check_grad_output(grad_output, ())
        return g.copy()  # logsumexp over a single element is the identity
    lse = _logsumexp_keepdims(x, axes)
    out_shape = lse.shape if keepdim else np.squeeze(lse, axis=axes).shape
    g = v.check_grad_output(grad_output, out_shape)
    if not keepdim:
        g = np.expand_dims(g, axes)
    with np.errstate(**_ERRSTATE):
        # ∂ logsumexp / ∂x_i = exp(x_i − logsumexp(x)) = softmax(x)_i.
        return g * np.exp(x - lse)


# =============================================================================================
# nll_loss and cross_entropy
# =============================================================================================

def _nll_plan(input, target, weight, ignore_index, reduction):
    reduction = v.check_reduction(reduction)
    ignore_index = v.check_int(ignore_index, "ignore_index")
    x = v.as_array(input, "input")
    t = v.as_array(target, "target")
    weight = v.check_class_index_targets(x, t, weight, ignore_index, "nll_loss_out_frame")
    rows, loss_shape = _to_rows(x.astype(np.float64))
    kept, safe_target, target_weight, _ = _index_rows(t, weight, rows.shape[1], ignore_index)
    return dict(x=x, rows=rows, loss_shape=loss_shape, reduction=reduction, kept=kept,
                safe_target=safe_target, target_weight=target_weight,
                denominator=np.sum(target_weight))


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean") -> np.ndarray:
    """Negative log-likelihood ``ℓ_i = −w[t_i]·input[i, t_i]·m_i``, reduced; float64.

    Mirrors ``torch.nn.functional.nll_loss``. ``input`` holds log-probabilities of shape
    ``(C,)``, ``(N, C)`` or ``(N, C, d1..dk)``; ``target`` int64 or uint8 class indices of shape
    ``()``/``(1,)``, ``(N,)`` or ``(N, d1..dk)``; ``weight`` ``(C,)`` of input's dtype.
    Reduction: ``"none"`` gives shape ``(N, d1..dk)`` (0-d for a ``(C,)`` input); ``"sum"``
    Σℓ; ``"mean"`` the weighted mean ``Σℓ / Σ_i m_i·w[t_i]`` (0-d arrays).
    Special values: ignored elements are exactly 0 (even if input is NaN there); every target
    ignored, or all used weights 0, or an empty batch: mean NaN, sum 0.
    Errors: the types torch raises (see :mod:`lossproofs._validation`).
    """
    plan = _nll_plan(input, target, weight, ignore_index, reduction)
    loss = _nll_rows(plan["rows"], plan["kept"], plan["safe_target"], plan["target_weight"])
    return _reduce(loss.reshape(plan["loss_shape"]), plan["reduction"], plan["denominator"])


def nll_loss_backward(grad_output, input, target, weight=None, ignore_index=-100,
                      reduction="mean") -> np.ndarray:
    """∂/∂input of nll_loss: ``−w[t_i]·g_i`` (÷ Σ m·w[t] for mean) at ``[i, t_i]``, 0 elsewhere.

    Shapes: ``grad_output`` as the forward's output (0-d for sum/mean), result as ``input``;
    float64. Ignored elements get exactly 0, so every target ignored gives zeros; all used
    weights 0 with mean gives NaN at the targets (0·(g/0)), as torch.
    """
    plan = _nll_plan(input, target, weight, ignore_index, reduction)
    g = v.check_grad_output(grad_output,
                            _expected_output_shape(plan["reduction"], plan["loss_shape"]))
    upstream = np.asarray(_upstream(g, plan["reduction"], plan["denominator"],
                                    plan["loss_shape"]), dtype=np.float64).reshape(-1)
    n_rows, n_classes = plan["rows"].shape
    grad = np.zeros((n_rows, n_classes))
    if n_classes:
        with np.errstate(**_ERRSTATE):
            values = np.where(plan["kept"], -(plan["target_weight"] * upstream), 0.0)
        np.put_along_axis(grad, plan["safe_target"][:, None], values[:, None], axis=1)
    return _from_rows(grad, plan["x"].shape)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0) -> np.ndarray:
    """Cross entropy of logits ``input`` against class indices or class probabilities; float64.

    Mirrors ``torch.nn.functional.cross_entropy``. ``input``: logits ``(C,)``, ``(N, C)`` or
    ``(N, C, d1..dk)``; the class dim cd is 1 (0 for ``(C,)``). lp = log_softmax(input, cd).

    *Class-index targets* (``target.shape != input.shape``; int64/uint8, shape of the input
    without cd): ``ℓ_i = (1−ε)·(−w[t_i]·lp[i, t_i]) + (ε/C)·(−Σ_c w_c·lp[i, c])``, 0 where
    ``t_i == ignore_index``; ``"mean"`` divides by ``Σ_i m_i·w[t_i]``.
    *Class-probability targets* (``target.shape == input.shape``, floating): with
    ``T = t·(1−ε) + ε/C`` (T = t when ε = 0), ``ℓ_i = −Σ_c lp[i, c]·T[i, c]·w_c``; ``"mean"``
    divides by ``numel/C`` — the weights do not enter it (pytorch#61309).

    Reduction: ``"none"`` has shape ``(N, d1..dk)`` (0-d for ``(C,)``); sum/mean are 0-d arrays.
    Special values: every target ignored or an empty batch: mean NaN, sum 0; a −inf logit
    with ε > 0 gives +inf; with ε = 1 and the target's logit −inf, NaN (0·inf); a −inf logit
    with a 0 probability target gives NaN (−inf·0), as torch.
    Errors: torch's types; negative or NaN ``label_smoothing`` is a ValueError here while torch
    silently uses 0 (see :data:`DELIBERATE_DIVERGENCES`).
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    reduction, eps, lp = plan["reduction"], plan["label_smoothing"], plan["log_probs"]
    loss_shape, denominator = plan["loss_shape"], plan["denominator"]
    with np.errstate(**_ERRSTATE):
        if plan["probabilities"]:
            # ℓ = −Σ_c (lp·T)·w, in torch's order of multiplication.
            loss = -np.sum(lp * plan["smoothed"] * plan["class_weight"], axis=1)
            return _reduce(loss.reshape(loss_shape), reduction, denominator)
        nll = _nll_rows(lp, plan["kept"], plan["safe_target"], plan["target_weight"])
        nll = _reduce(nll.reshape(loss_shape), reduction, denominator)
        if eps == 0:
            return nll
        smooth = _smoothing_rows(lp, plan["kept"], plan["class_weight"])
        smooth = _reduce(smooth.reshape(loss_shape), reduction, denominator)
        # torch combines the two already reduced terms: (1−ε)·nll + (ε/C)·smooth.
        return np.asarray((1.0 - eps) * nll + (eps / plan["n_classes"]) * smooth)


def cross_entropy_backward(grad_output, input, target, weight=None, ignore_index=-100,
                           reduction="mean", label_smoothing=0.0) -> np.ndarray:
    """∂/∂input of cross_entropy, closed form, float64; result has the input's shape.

    Index targets, kept row: ``s_i·[(1−ε)·w[t]·(p − e_t) + (ε/C)·(p·Σ_c w_c − w)]``; probability
    targets: ``s_i·(p·Σ_c T_c w_c − T⊙w)``; ``s_i`` = g_i (none), g (sum) or g/D (mean, D the
    forward's denominator). Computed as torch's chain ``g_lp − p·Σ_c g_lp``, so ignored rows are
    exactly 0 unless p is NaN there (an ignored all −inf row gives NaN, as torch); every target
    ignored gives zeros; all used weights 0 with mean gives NaN (0·(g/0)), as torch.
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    grad_lp = _cross_entropy_grad_log_probs(plan, grad_output)
    return _from_rows(_log_softmax_rows_backward(grad_lp, plan["log_probs"]), plan["x"].shape)


def cross_entropy_target_backward(grad_output, input, target, weight=None, ignore_index=-100,
                                  reduction="mean", label_smoothing=0.0) -> np.ndarray:
    """∂/∂target of cross_entropy with probability targets: ``−lp·w·(1−ε)·s_i``; float64.

    Shapes: result has the target's (= input's) shape; ``s_i`` as in
    :func:`cross_entropy_backward` (mean divides by numel/C). lp = −inf gives ±inf.
    Class-index targets are integers and have no gradient: TypeError.
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    if not plan["probabilities"]:
        raise TypeError(
            "cross_entropy has no gradient with respect to a class-index target "
            f"(target dtype {plan['t'].dtype.name}, shape {plan['t'].shape} differs from "
            f"input shape {plan['x'].shape}); only class-probability targets are differentiable"
        )
    g = v.check_grad_output(grad_output,
                            _expected_output_shape(plan["reduction"], plan["loss_shape"]))
    upstream = np.asarray(_upstream(g, plan["reduction"], plan["denominator"],
                                    plan["loss_shape"]), dtype=np.float64).reshape(-1)
    eps = plan["label_smoothing"]
    with np.errstate(**_ERRSTATE):
        # ∂ℓ_i/∂t_ic = −lp_ic·w_c·∂T/∂t with ∂T/∂t = 1 − ε.
        grad = -(plan["log_probs"] * plan["class_weight"]) * upstream[:, None]
        if eps > 0:
            grad = grad * (1.0 - eps)
    return _from_rows(grad, plan["x"].shape)


def cross_entropy_hvp(vector, grad_output, input, target, weight=None, ignore_index=-100,
                      reduction="mean", label_smoothing=0.0) -> np.ndarray:
    """d/dε of :func:`cross_entropy_backward` at ``input + ε·vector``, closed form, float64.

    Per row: ``(diag(p) − p pᵀ)·v · A_i`` with ``A_i = −Σ_c g_lp[i, c]`` the row's total
    upstream weight: ``s_i·((1−ε)·w[t_i] + (ε/C)·Σ_c w_c)`` for a kept index target (0 if
    ignored), ``s_i·Σ_c T_ic·w_c`` for probability targets. ``vector`` and the result have
    the input's shape. The gradient w.r.t. lp does not depend on the input, so only
    softmax's Jacobian ``diag(p) − p pᵀ`` contributes.
    """
    plan = _cross_entropy_plan(input, target, weight, ignore_index, reduction, label_smoothing)
    direction, _ = _to_rows(v.check_same_shape(vector, plan["x"].shape))
    grad_lp = _cross_entropy_grad_log_probs(plan, grad_output)
    with np.errstate(**_ERRSTATE):
        p = np.exp(plan["log_probs"])
        # (diag(p) − p pᵀ)·v = p⊙v − p·(p·v): the Jacobian of softmax applied to v.
        jvp = p * direction - p * np.sum(p * direction, axis=1, keepdims=True)
        hvp = -jvp * np.sum(grad_lp, axis=1, keepdims=True)
    return _from_rows(hvp, plan["x"].shape)


# =============================================================================================
# binary_cross_entropy
# =============================================================================================

def _bce_plan(input, target, weight, reduction):
    reduction = v.check_reduction(reduction)
    x = v.as_array(input, "input")
    y = v.as_array(target, "target")
    weight = v.check_bce(x, y, weight)
    w = np.ones(()) if weight is None else weight.astype(np.float64)
    return dict(shape=x.shape, p=x.astype(np.float64), y=y.astype(np.float64), w=w,
                reduction=reduction, denominator=np.float64(x.size))


def _bce_upstream(plan, grad_output) -> np.ndarray:
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    return _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])


def binary_cross_entropy(input, target, weight=None, reduction="mean") -> np.ndarray:
    """``ℓ = w·[(y−1)·max(log1p(−p), −100) − y·max(log p, −100)]``, reduced; float64.

    Mirrors ``torch.nn.functional.binary_cross_entropy``. ``input`` p and ``target`` y have
    the same shape and dtype, values in [0, 1]; ``weight`` broadcasts to that shape without
    enlarging it. ``"none"``: input's shape; ``"sum"``; ``"mean"`` divides by numel (0-d).
    Special values: the −100 clamp keeps p = 0 or 1 finite (loss 100 per wrong-side element);
    an empty input gives mean NaN, sum 0. Errors: values outside [0, 1] or NaN, shape or
    dtype mismatch, weights that enlarge the output — torch's types.
    """
    plan = _bce_plan(input, target, weight, reduction)
    p, y = plan["p"], plan["y"]
    with np.errstate(**_ERRSTATE):
        # log(1 − p) = log1p(−p) keeps accuracy for small p; torch clamps both logs at −100.
        log_one_minus_p = np.maximum(np.log1p(-p), BCE_LOG_CLAMP)
        log_p = np.maximum(np.log(p), BCE_LOG_CLAMP)
        loss = ((y - 1.0) * log_one_minus_p - y * log_p) * plan["w"]
    return _reduce(loss, plan["reduction"], plan["denominator"])


def binary_cross_entropy_backward(grad_output, input, target, weight=None,
                                  reduction="mean") -> np.ndarray:
    """∂/∂input of binary_cross_entropy: ``(p − y)/max((1−p)·p, ε)·w·s``; float64.

    ε = float32(1e-12) = 9.999999960041972e-13 as in torch's kernel. This is not the derivative
    of the clamped forward: at p = 0 or 1 it is the finite (p − y)/ε (about ∓1e12 for y ≠ p),
    and 0 where p = y. ``s`` = g (none, input's shape), g (sum) or g/numel (mean). Result has
    the input's shape.
    """
    plan = _bce_plan(input, target, weight, reduction)
    upstream = _bce_upstream(plan, grad_output)
    p, y = plan["p"], plan["y"]
    with np.errstate(**_ERRSTATE):
        # d/dp [−y log p − (1−y) log(1−p)] = (p − y) / (p(1−p)); the floor ε avoids 0/0 at p∈{0,1}.
        return (p - y) / np.maximum((1.0 - p) * p, BCE_EPSILON) * upstream * plan["w"]


def binary_cross_entropy_target_backward(grad_output, input, target, weight=None,
                                         reduction="mean") -> np.ndarray:
    """∂/∂target of binary_cross_entropy: ``−logit(p)·w·s = −(log p − log1p(−p))·w·s``; float64.

    No clamp, as torch: p = 0 gives +inf·s and p = 1 gives −inf·s. Result has the target's
    shape; ``s`` as in :func:`binary_cross_entropy_backward`.
    """
    plan = _bce_plan(input, target, weight, reduction)
    upstream = _bce_upstream(plan, grad_output)
    p = plan["p"]
    with np.errstate(**_ERRSTATE):
        # logit(p) = log p − log1p(−p): accurate near 0 and 1, exactly ±inf at the ends.
        return -(np.log(p) - np.log1p(-p)) * upstream * plan["w"]


# =============================================================================================
# binary_cross_entropy_with_logits
# =============================================================================================

def _bce_logits_plan(input, target, weight, reduction, pos_weight):
    reduction = v.check_reduction(reduction)
    x = v.as_array(input, "input")
    y = v.as_array(target, "target")
    weight, pos_weight = v.check_bce_with_logits(x, y, weight, pos_weight)
    return dict(shape=x.shape, x=x.astype(np.float64), y=y.astype(np.float64),
                w=np.ones(()) if weight is None else weight.astype(np.float64),
                pw=None if pos_weight is None else pos_weight.astype(np.float64),
                reduction=reduction, denominator=np.float64(x.size))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None) -> np.ndarray:
    """``ℓ = w·[(1−y)·x − lw·log σ(x)]`` with ``lw = (pw − 1)·y + 1``, reduced; float64.

    Mirrors ``torch.nn.functional.binary_cross_entropy_with_logits``. ``input`` x (logits) and
    ``target`` y have the same shape (y floating, any value); ``weight`` and ``pos_weight`` pw
    broadcast to that shape without enlarging it (pos_weight ``(C,)`` runs along the last
    dim). Evaluated as ``(1−y)·softplus(x) + pw·y·softplus(−x)`` (the same function, without
    the cancellation of torch's form when x agrees with y). Reduction as BCE.
    Special values, mirroring torch's formula: x = +inf with y = 1 and x = −inf with y ∈ {0, 1}
    give NaN (0·inf or inf − inf; pytorch#102894), x = +inf with y = 0 gives +inf.
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    x, y = plan["x"], plan["y"]
    pw = 1.0 if plan["pw"] is None else plan["pw"]
    with np.errstate(**_ERRSTATE):
        # torch's form, kept for its special values only (NaN from 0·inf and inf − inf).
        torch_form = (1.0 - y) * x - _log_sigmoid(x) * ((pw - 1.0) * y + 1.0)
        # (1−y)·x − lw·log σ(x) = (1−y)·softplus(x) + pw·y·softplus(−x), using
        # x = softplus(x) − softplus(−x) and log σ(x) = −softplus(−x): a sum of non-negative
        # terms (for y in [0, 1], pw ≥ 0), so no cancellation when x agrees with y.
        accurate = (1.0 - y) * -_log_sigmoid(-x) + pw * y * -_log_sigmoid(x)
        loss = np.where(np.isnan(torch_form), np.nan, accurate) * plan["w"]
    return _reduce(loss, plan["reduction"], plan["denominator"])


def binary_cross_entropy_with_logits_backward(grad_output, input, target, weight=None,
                                              reduction="mean", pos_weight=None) -> np.ndarray:
    """∂/∂input: ``((pw·y + 1 − y)·σ(x) − pw·y)·w·s`` (``(σ(x) − y)·w·s`` without pw); float64.

    ``s`` = g (none, input's shape), g (sum) or g/numel (mean); result has the input's shape.
    Finite for x = ±inf (σ = 1 or 0).
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    upstream = _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])
    x, y = plan["x"], plan["y"]
    with np.errstate(**_ERRSTATE):
        if plan["pw"] is None:
            grad = _sigmoid(x) - y
        else:
            pw_y = plan["pw"] * y
            grad = (pw_y + 1.0 - y) * _sigmoid(x) - pw_y
        return np.broadcast_to(grad * upstream * plan["w"], plan["shape"]).copy()


def binary_cross_entropy_with_logits_target_backward(grad_output, input, target, weight=None,
                                                     reduction="mean",
                                                     pos_weight=None) -> np.ndarray:
    """∂/∂target: ``(log σ(−x) − pw·log σ(x))·w·s``, which is ``−x·w·s`` without pw; float64.

    Result has the target's shape; ``s`` as in the input gradient. Without pos_weight torch
    returns −x exactly (so x = ±inf gives ∓inf), and so does this.
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    upstream = _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])
    x = plan["x"]
    with np.errstate(**_ERRSTATE):
        if plan["pw"] is None:
            grad = -x  # log σ(−x) − log σ(x) = −x exactly
        else:
            grad = _log_sigmoid(-x) - plan["pw"] * _log_sigmoid(x)
        return np.broadcast_to(grad * upstream * plan["w"], plan["shape"]).copy()


def binary_cross_entropy_with_logits_hvp(vector, grad_output, input, target, weight=None,
                                         reduction="mean", pos_weight=None) -> np.ndarray:
    """d/dε of the input gradient at ``input + ε·vector``: ``(pw·y + 1 − y)·σ(x)(1−σ(x))·w·s·v``.

    Elementwise (the Hessian is diagonal); ``σ(x)(1−σ(x)) = σ(x)·σ(−x)`` stays accurate in both
    tails. ``vector`` and the result have the input's shape; float64.
    """
    plan = _bce_logits_plan(input, target, weight, reduction, pos_weight)
    direction = v.check_same_shape(vector, plan["shape"])
    g = v.check_grad_output(grad_output, _expected_output_shape(plan["reduction"], plan["shape"]))
    upstream = _upstream(g, plan["reduction"], plan["denominator"], plan["shape"])
    x, y = plan["x"], plan["y"]
    with np.errstate(**_ERRSTATE):
        # σ'(x) = σ(x)·(1 − σ(x)) = σ(x)·σ(−x).
        curvature = _sigmoid(x) * _sigmoid(-x)
        if plan["pw"] is not None:
            curvature = curvature * (plan["pw"] * y + 1.0 - y)
        return np.broadcast_to(curvature * upstream * plan["w"] * direction, plan["shape"]).copy()
