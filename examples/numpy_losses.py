"""The NumPy float64 reference wrapped as a torch implementation (an example user module).

Run the suite on it with ``pytest --target module:examples.numpy_losses``. It shows what a user
module must provide: functions named and called like ``torch.nn.functional``'s (any subset of
softmax, log_softmax, logsumexp, nll_loss, cross_entropy, binary_cross_entropy,
binary_cross_entropy_with_logits), taking and returning CPU tensors in the input's dtype, and
differentiable by autograd (here one ``torch.autograd.Function`` per function whose backward is
the reference's closed-form gradient). Bad input raises the exception type torch raises.

Every value is computed in float64 from the inputs as given and rounded once to the input's
dtype, so this module is *more* accurate than torch in float32 and below; it also gives the
mathematical answer where torch does not (the ledger's special-value entries,
``lossproofs/ledger/torch.py``) and rejects what torch silently accepts (negative label
smoothing). It is slow and has no double backward (declared in ``UNSUPPORTED_CHECKS``, so
the second-order tests skip with that reason): an example of the interface, not a kernel.
"""

from __future__ import annotations

import numpy as np
import torch

from lossproofs import reference

__version__ = "1.0"
DEVICE = "cpu"
# Bad input raises the exception type torch raises (the reference's checks mirror torch's), so
# the suite also checks the exception types, not only that bad input is rejected.
RAISES_TORCH_EXCEPTIONS = True
# Checks this module declares it cannot run (the suite skips them, printing the reason).
UNSUPPORTED_CHECKS = {
    "second order": "the backward is the NumPy reference's closed form, which autograd cannot "
                    "differentiate again (no double backward)",
}

_TENSOR_KWARGS = ("weight", "pos_weight")


def _to_numpy(t):
    """A tensor as a NumPy array of the same values; bfloat16 becomes float32 (exact)."""
    if not isinstance(t, torch.Tensor):
        return t
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


class _ReferenceLoss(torch.autograd.Function):
    """``reference.<name>`` forward; ``reference.<name>_backward`` (and ``_target_backward``
    for a floating target) as the gradient. ``arrays`` are the positional tensors."""

    @staticmethod
    def forward(ctx, name, kwargs, *arrays):
        np_arrays = [_to_numpy(a) for a in arrays]
        np_kwargs = {k: _to_numpy(v) for k, v in kwargs.items()}
        # The reference validates the arguments (raising torch's exception types) and computes.
        out = np.asarray(getattr(reference, name)(*np_arrays, **np_kwargs), dtype=np.float64)
        x = np.asarray(np_arrays[0])
        if name in _AT_INFINITY and x.dtype.kind == "f" and np.isinf(x).any():
            kw = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v)
                  for k, v in np_kwargs.items()}
            out = np.asarray(_AT_INFINITY[name](x.astype(np.float64), np_arrays[1], **kw))
        ctx.name, ctx.np_arrays, ctx.np_kwargs = name, np_arrays, np_kwargs
        ctx.dtypes = [a.dtype for a in arrays]
        ctx.mark_non_differentiable(*[a for a in arrays if not a.is_floating_point()])
        # Round once to the dtype of the result torch would return (the input's).
        return torch.from_numpy(out).to(arrays[0].dtype)

    @staticmethod
    def backward(ctx, grad_output):
        g = grad_output.detach().double().numpy()
        grads = []
        for i, dtype in enumerate(ctx.dtypes):
            if not ctx.needs_input_grad[2 + i]:
                grads.append(None)
                continue
            suffix = "_backward" if i == 0 else "_target_backward"
            grad = getattr(reference, ctx.name + suffix)(g, *ctx.np_arrays, **ctx.np_kwargs)
            grads.append(torch.from_numpy(np.asarray(grad, dtype=np.float64)).to(dtype))
        return (None, None, *grads)


def _loss(name, input, target, **kwargs):
    return _ReferenceLoss.apply(name, kwargs, input, target)


# -- infinite logits: the mathematical limits where the float64 formula gives 0·inf ------------
def _times(coef, minus_log):
    """``coef · (−log v)`` with the limit convention ``0 · inf = 0`` (as scipy's xlogy)."""
    with np.errstate(invalid="ignore"):  # 0·inf is NaN before np.where replaces it
        return np.where(coef == 0, 0.0, coef * minus_log)


def _reduce(loss, reduction, denominator):
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / denominator


def _cross_entropy_at_infinity(x, t, weight, ignore_index, reduction, label_smoothing):
    """Cross entropy written as ``Σ_c coef_c · (−lp_c)`` so that a masked class (lp = −inf)
    with coefficient 0 contributes 0, not NaN. Same formulas as ``reference.cross_entropy``."""
    cd = 0 if x.ndim == 1 else 1
    c = x.shape[cd]
    eps = label_smoothing
    lp = np.moveaxis(reference.log_softmax(x, cd), cd, -1)  # classes last
    w = np.ones(c) if weight is None else np.asarray(weight, dtype=np.float64)
    if t.shape == x.shape:  # class probabilities: T = t(1 − ε) + ε/C
        probs = np.moveaxis(t.astype(np.float64), cd, -1) * (1 - eps) + eps / c
        loss = _times(probs * w, -lp).sum(-1)
        return _reduce(loss, reduction, t.size / c if c else np.nan)
    kept = t.astype(np.int64) != ignore_index
    safe = np.where(kept, t, 0).astype(np.int64)
    onehot = np.eye(c)[safe] if c else np.zeros((*t.shape, 0))
    coef = ((1 - eps) * onehot + eps / c) * w * kept[..., None]
    loss = _times(coef, -lp).sum(-1)
    return _reduce(loss, reduction, (w[safe] * kept).sum())


def _bce_with_logits_at_infinity(x, y, weight, reduction, pos_weight):
    """``−pw·y·log σ(x) − (1 − y)·log σ(−x)`` (torch's formula rearranged so that no
    ``inf − inf`` appears), with ``0 · inf = 0``; ``log σ(x) = min(x, 0) − log1p(e^−|x|)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        log_sig = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
        log_sig_neg = np.minimum(-x, 0) - np.log1p(np.exp(-np.abs(x)))
    pw = 1.0 if pos_weight is None else pos_weight
    loss = _times(pw * y, -log_sig) + _times(1 - y, -log_sig_neg)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, loss.size)


_AT_INFINITY = {"cross_entropy": _cross_entropy_at_infinity,
                "binary_cross_entropy_with_logits": _bce_with_logits_at_infinity}


def softmax(input, dim, dtype=None):
    x = input if dtype is None else input.to(dtype)
    return _ReferenceLoss.apply("softmax", {"dim": dim}, x)


def log_softmax(input, dim, dtype=None):
    x = input if dtype is None else input.to(dtype)
    return _ReferenceLoss.apply("log_softmax", {"dim": dim}, x)


def logsumexp(input, dim, keepdim=False):
    return _ReferenceLoss.apply("logsumexp", {"dim": dim, "keepdim": keepdim}, input)


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return _loss("nll_loss", input, target, weight=weight, ignore_index=ignore_index,
                 reduction=reduction)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    return _loss("cross_entropy", input, target, weight=weight, ignore_index=ignore_index,
                 reduction=reduction, label_smoothing=label_smoothing)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    return _loss("binary_cross_entropy", input, target, weight=weight, reduction=reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    return _loss("binary_cross_entropy_with_logits", input, target, weight=weight,
                 reduction=reduction, pos_weight=pos_weight)
