"""Bitwise and ULP comparison of tensors and models, for the training-equivalence experiment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def float32_ulp_distance(a: float, b: float) -> int | None:
    """Number of float32 values between ``a`` and ``b`` (0 when bitwise equal up to ±0).

    Maps each float32 bit pattern to a signed integer that is monotonic in the value (negative
    patterns are reflected: ``−(bits & 0x7fffffff)``), so the distance is an integer
    difference; ±0 both map to 0 and ±inf sit one step beyond ±max. ``None`` if either is NaN.
    """
    if math.isnan(a) or math.isnan(b):
        return None
    ordered = [_ordered_float32_bits(torch.tensor([v], dtype=torch.float32))[0].item()
               for v in (a, b)]
    return abs(int(ordered[0]) - int(ordered[1]))


def _ordered_float32_bits(x: torch.Tensor) -> torch.Tensor:
    """int64 keys monotonic in the float32 value of ``x`` (IEEE sign-magnitude → two's order)."""
    bits = x.to(torch.float32).view(torch.int32).to(torch.int64)
    return torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype and bit pattern everywhere.

    Compares integer views, so NaN payloads count as equal and −0 ≠ +0 (value equality would
    say the opposite of both).
    """
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    int_dtype = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.view(int_dtype), b.view(int_dtype))


def _all_bitwise_equal(xs: Sequence[torch.Tensor | None],
                       ys: Sequence[torch.Tensor | None]) -> bool:
    """Pairwise :func:`_bitwise_equal`; two missing gradients (``None``) count as equal."""
    return all((x is None and y is None)
               or (x is not None and y is not None and _bitwise_equal(x, y))
               for x, y in zip(xs, ys))


def parameter_difference(a: nn.Module, b: nn.Module) -> dict[str, Any]:
    """Largest absolute difference between corresponding parameters, and bitwise equality.

    ``max_abs = max |θ_a − θ_b|`` over all parameters (NaN if either holds a NaN);
    ``bitwise``: whether every bit agrees. (No ULP maximum: parameters cross zero, where one
    absolute step spans ~2·10⁹ float32 values, so a ULP count would mislead.)
    """
    abs_maxima, bitwise = [], True
    for pa, pb in zip(a.parameters(), b.parameters()):
        pa, pb = pa.detach(), pb.detach()
        abs_maxima.append((pa - pb).abs().max())  # torch's max propagates NaN
        bitwise = bitwise and _bitwise_equal(pa, pb)
    return {"max_abs": float(torch.stack(abs_maxima).max()), "bitwise": bitwise}


def first_false(flags: Sequence[bool], steps: Sequence[int]) -> int | None:
    """The step number of the first ``False`` in ``flags`` (``None`` if all are true)."""
    return next((s for f, s in zip(flags, steps) if not f), None)
