"""softmax, log_softmax and logsumexp, with their closed-form gradients."""

from __future__ import annotations

import numpy as np

from lossproofs import _validation as v
from lossproofs.reference._kernels import (
    _ERRSTATE,
    _log_softmax,
    _logsumexp_keepdims,
    _softmax,
)


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


def _backward_along_dim(forward, rule, grad_output, input, dim) -> np.ndarray:
    """The gradient of Σ g⊙forward(x) along ``dim`` (forward: softmax or log_softmax):
    ``rule(g, y, axis)`` with y = forward(x, dim) and ``grad_output`` checked against y's shape;
    0 for a 0-d input, whose single-element softmax (1) and log_softmax (0) are constants."""
    y = forward(input, dim)
    g = v.check_grad_output(grad_output, y.shape)
    if y.ndim == 0:
        return np.zeros(())
    axis = v.normalize_dim(dim, y.ndim)
    with np.errstate(**_ERRSTATE):
        return rule(g, y, axis)


def _softmax_rule(g: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return y * (g - np.sum(g * y, axis=axis, keepdims=True))  # y ⊙ (g − Σ g⊙y)


def _log_softmax_rule(g: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return g - np.exp(y) * np.sum(g, axis=axis, keepdims=True)  # g − exp(y)·Σ g


def softmax_backward(grad_output, input, dim) -> np.ndarray:
    """∂/∂x of Σ g⊙softmax(x): ``y ⊙ (g − Σ_dim g⊙y)`` with y = softmax(x, dim), in float64.

    Mirrors torch's ``_softmax_backward_data``. ``grad_output`` and the result have the input's
    shape. A partial −inf row gives finite gradients (0 at the −inf entries); a NaN row NaN.
    """
    return _backward_along_dim(softmax, _softmax_rule, grad_output, input, dim)


def log_softmax_backward(grad_output, input, dim) -> np.ndarray:
    """∂/∂x of Σ g⊙log_softmax(x): ``g − exp(y)·Σ_dim g`` with y = log_softmax(x, dim), float64.

    Mirrors torch's ``_log_softmax_backward_data``. Shapes as the input. A partial −inf row
    gives finite gradients (exp(−inf) = 0); an all −inf or NaN row gives NaN.
    """
    return _backward_along_dim(log_softmax, _log_softmax_rule, grad_output, input, dim)


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
