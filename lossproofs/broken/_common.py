"""Pieces the broken implementations share: argument checks and reductions written the way a
kernel author would, so that each module differs from a correct one by its documented bug only;
and the switch that turns every module into its bug-free twin (:func:`control`).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from lossproofs.dtypes import REDUCTIONS

# Set to "1" in the environment of a control run (lossproofs.broken.teeth): every broken module
# then computes its function without its bug, with every other line the same.
CONTROL_ENV = "LOSSPROOFS_BROKEN_CONTROL"


def control() -> bool:
    """True in a control run: the module is its own bug-free twin. Read at each call, so that
    the twin is the same module object (and an in-process test can switch it)."""
    return os.environ.get(CONTROL_ENV) == "1"


def buggy(*bugs: str) -> frozenset[str]:
    """``bugs`` for the switch-based kernels (:mod:`._fused_ce`, :mod:`._linear_chunked`): none
    in a control run."""
    return frozenset() if control() else frozenset(bugs)


def version() -> str:
    """A broken module's ``__version__``: the pytest header says which of the twins ran."""
    return "control (bug switched off)" if control() else "broken"


def class_dim(input: torch.Tensor) -> int:
    """torch's class dimension: 0 for an unbatched ``(C,)`` input, else 1."""
    return 0 if input.dim() == 1 else 1


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction")


def check_label_smoothing(label_smoothing: float) -> None:
    if label_smoothing > 1.0:
        raise RuntimeError(
            f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")


def long_target(target: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """uint8 class indices as int64 (what a kernel wrapper casts them to), where torch accepts
    uint8 at all: for ``(C,)`` and ``(N, C)`` inputs (K-dim inputs reject it, an error case)."""
    return target.long() if target.dtype == torch.uint8 and input.dim() <= 2 else target


def is_index_target(input: torch.Tensor, target: torch.Tensor) -> bool:
    return input.shape != target.shape


def torch_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                        label_smoothing=0.0):
    """torch's cross_entropy for the paths a broken module does not reimplement."""
    return F.cross_entropy(input, long_target(target, input), weight=weight,
                           ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


def class_weights(input: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """``w`` shaped to broadcast along the class dimension (ones without a weight)."""
    c = input.shape[class_dim(input)]
    w = torch.ones(c, dtype=input.dtype) if weight is None else weight
    shape = [1] * input.dim()
    shape[class_dim(input)] = c
    return w.reshape(shape)


def target_weights(input, target, weight, ignore_index):
    """``(kept, w[t]·kept)`` for index targets: the mask and each element's weight."""
    kept = target != ignore_index
    safe = torch.where(kept, target, torch.zeros_like(target))
    if weight is None:
        return kept, kept.to(input.dtype)
    return kept, weight[safe] * kept


def check_bce_shapes(input, target, weight, name="target"):
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({target.shape}) that is different to the "
                         f"input size ({input.shape}) is deprecated. Please ensure they have "
                         "the same size.")
    if weight is not None and torch.broadcast_shapes(weight.shape, input.shape) != input.shape:
        raise RuntimeError(f"output with shape {list(input.shape)} doesn't match the broadcast "
                           f"shape of weight {list(weight.shape)}")


def reduce(loss: torch.Tensor, reduction: str, denominator=None) -> torch.Tensor:
    """none / sum / mean (over ``denominator``, by default the number of elements)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (loss.numel() if denominator is None else denominator)


def check_bce_with_logits_args(input, target, weight, pos_weight, reduction) -> None:
    """The argument checks of binary_cross_entropy_with_logits, in torch's order."""
    check_reduction(reduction)
    if target.shape != input.shape:
        raise ValueError(f"Target size ({target.shape}) must be the same as input size "
                         f"({input.shape})")
    check_bce_shapes(input, target, weight)
    check_bce_shapes(input, target, pos_weight)
