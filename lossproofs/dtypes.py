"""The dtype facts the whole package uses, in one place.

The dtypes under test are named by strings (``"float64"``, ``"float32"``, ``"float16"``,
``"bfloat16"``), which is how cases, tolerances and reports spell them; ``torch.`` prefixes are
accepted everywhere. NumPy has no bfloat16, so the limits come from ``torch.finfo``:

=========  ==============  ==========  ============  =================
dtype      eps             tiny        max finite    smallest subnormal
=========  ==============  ==========  ============  =================
float64    2⁻⁵²            2⁻¹⁰²²      ≈ 1.80e308    2⁻¹⁰⁷⁴
float32    2⁻²³            2⁻¹²⁶       ≈ 3.40e38     2⁻¹⁴⁹
float16    2⁻¹⁰            2⁻¹⁴        65504         2⁻²⁴
bfloat16   2⁻⁷             2⁻¹²⁶       ≈ 3.39e38     2⁻¹³³
=========  ==============  ==========  ============  =================

Also here: the reductions every loss accepts and torch's two BCE constants, which the
reference, the oracle, the error model and the special cases all reproduce. torch is imported
only when a limit is asked for, so the NumPy reference can take its constants from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

DTYPES = ("float64", "float32", "float16", "bfloat16")
REDUCTIONS = ("none", "mean", "sum")

# torch clamps BCE's logarithms at −100 so that a probability of exactly 0 or 1 stays finite.
BCE_LOG_CLAMP = -100.0
# torch's BCE backward divides by max((1 − p)·p, EPSILON) with EPSILON = 1e-12 stored as float32.
BCE_EPSILON = float(np.float32(1e-12))  # 9.999999960041972e-13


def dtype_name(dtype: object) -> str:
    """``torch.float32`` or ``"torch.float32"`` → ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` → ``torch.float32``."""
    import torch

    return getattr(torch, dtype_name(name))


def _finfo(dtype: str) -> torch.finfo:
    import torch

    return torch.finfo(torch_dtype(dtype))


def eps(dtype: str) -> float:
    """Machine epsilon: the spacing just above 1 (bfloat16 included, which NumPy lacks)."""
    return float(_finfo(dtype).eps)


def max_finite(dtype: str) -> float:
    """The largest finite value."""
    return float(_finfo(dtype).max)


def tiny(dtype: str) -> float:
    """The smallest positive normal value."""
    return float(_finfo(dtype).smallest_normal)


def smallest_subnormal(dtype: str) -> float:
    """The smallest positive subnormal value, ``tiny · eps`` (exact: both are powers of 2)."""
    return tiny(dtype) * eps(dtype)
