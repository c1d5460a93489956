"""Named unstable formulations: the counterexamples the accuracy properties must catch.

Each function is what a loss "looks like" on paper, written the way that breaks in floating
point. They take and return torch tensors in the input's dtype, with the signature of the
stable function they imitate, so the same property can run on both. The accuracy tests assert
that every one of them FAILS the property torch passes: that is the evidence behind "the fused
cross-entropy is more stable", and the proof that the suite can see instability.
"""

from __future__ import annotations

import torch


def log_of_softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    """``log(softmax(x))``. Breaks where a probability underflows: ``softmax`` rounds
    ``exp(x_j − max)/S`` to 0 once ``x_j − max`` is below the dtype's underflow threshold
    (≈ −745 in float64, −104 in float32), and ``log(0) = −inf`` where the exact value is the
    finite ``x_j − max − log S``."""
    return torch.log(torch.softmax(input, dim))


def unshifted_softmax(input: torch.Tensor, dim: int) -> torch.Tensor:
    """``exp(x) / Σ exp(x)`` without subtracting the maximum. Breaks past the exp overflow
    threshold (≈ 709.8 float64, 88.7 float32, 11.1 float16): ``inf/inf = NaN``; and when every
    logit is below the underflow threshold: ``0/0 = NaN``."""
    e = torch.exp(input)
    return e / e.sum(dim, keepdim=True)


def unshifted_logsumexp(input: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """``log(Σ exp(x))``: ``+inf`` past the overflow threshold, ``−inf`` below underflow."""
    return torch.log(torch.exp(input).sum(dim, keepdim=keepdim))


def cross_entropy_of_softmax(input: torch.Tensor, target: torch.Tensor, weight=None,
                             ignore_index: int = -100, reduction: str = "mean",
                             label_smoothing: float = 0.0) -> torch.Tensor:
    """``nll_loss(log(softmax(x)), t)``: inherits :func:`log_of_softmax`'s ``−inf``, so the
    loss is ``+inf`` whenever the target's probability underflows (a confidently wrong
    prediction with a logit gap beyond ≈ 104 in float32)."""
    return torch.nn.functional.nll_loss(log_of_softmax(input, 1 if input.dim() > 1 else 0),
                                        target, weight=weight, ignore_index=ignore_index,
                                        reduction=reduction)


def bce_of_sigmoid(input: torch.Tensor, target: torch.Tensor, weight=None,
                   reduction: str = "mean", pos_weight=None) -> torch.Tensor:
    """``binary_cross_entropy(sigmoid(x), y)``: ``sigmoid`` rounds to exactly 1 for
    ``x ≳ 17`` in float32 (≈ 37 in float64), so ``log(1 − p)`` becomes ``log 0`` and torch's
    −100 clamp returns 100 where the exact loss is ``softplus(x) ≈ x``; ``pos_weight`` is
    applied by hand as BCE has none."""
    p = torch.sigmoid(input)
    if pos_weight is not None:
        lw = (pos_weight - 1) * target + 1
        loss = -(target * lw * torch.clamp(torch.log(p), min=-100)
                 + (1 - target) * torch.clamp(torch.log1p(-p), min=-100))
        if weight is not None:
            loss = loss * weight
        return _reduce(loss, reduction)
    return torch.nn.functional.binary_cross_entropy(p, target, weight=weight,
                                                    reduction=reduction)


def bce_with_logits_naive_softplus(input: torch.Tensor, target: torch.Tensor, weight=None,
                                   reduction: str = "mean", pos_weight=None) -> torch.Tensor:
    """``(1 − y)·x + lw·log(1 + exp(−x))``: ``exp(−x)`` overflows for ``x`` below minus the
    overflow threshold, giving ``+inf`` for a finite loss, and ``log(1 + tiny)`` rounds
    ``1 + tiny`` to 1 and loses the whole loss for large positive ``x`` with ``y = 1``."""
    pw = torch.ones_like(input) if pos_weight is None else pos_weight
    lw = (pw - 1) * target + 1
    loss = (1 - target) * input + lw * torch.log(1 + torch.exp(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction={reduction!r} is not one of ('none', 'mean', 'sum')")


# name -> (imitated function, callable)
NAIVE = {
    "log_of_softmax": ("log_softmax", log_of_softmax),
    "unshifted_softmax": ("softmax", unshifted_softmax),
    "unshifted_logsumexp": ("logsumexp", unshifted_logsumexp),
    "cross_entropy_of_softmax": ("cross_entropy", cross_entropy_of_softmax),
    "bce_of_sigmoid": ("binary_cross_entropy_with_logits", bce_of_sigmoid),
    "bce_with_logits_naive_softplus": ("binary_cross_entropy_with_logits",
                                       bce_with_logits_naive_softplus),
}
