"""tinygrad loss functions (Tensor methods) on its CPU device, in the input's dtype.

Run the suite on it with ``--target module:lossproofs.frameworks.tinygrad_losses``. Values are
tinygrad's own ``Tensor.softmax``, ``log_softmax``, ``logsumexp``, ``nll_loss``,
``cross_entropy``, ``binary_crossentropy`` and ``binary_crossentropy_logits``, whose
``reduction`` (and, where they have them, ``weight``, ``ignore_index``, ``label_smoothing``,
``pos_weight``) are passed straight through. Gradients are ``Tensor.gradient``. Everything runs
on tinygrad's ``CPU`` device, which compiles kernels with ``clang``; when that clang cannot
compile ``__bf16`` (clang < 15 on x86), bfloat16 runs with tinygrad's own
``EMULATED_DTYPES=bfloat16`` (float32 arithmetic, rounded to bfloat16 at every store).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from importlib.metadata import version

import numpy as np
import torch
from tinygrad import Tensor, dtypes
from tinygrad.helpers import Context

from lossproofs.frameworks._bridge import (
    Framework,
    bridged,
    numpy_to_tensor,
    refuse_not_provided,
    softmax_family,
)

if shutil.which("clang") is None:
    raise ImportError("tinygrad's CPU device compiles its kernels with clang, which is not on "
                      "PATH (e.g. apt-get install clang)")

__version__ = f"tinygrad {version('tinygrad')}"
DEVICE = "cpu"
_DEV = "CPU"
UNSUPPORTED_CHECKS = {
    "second order": "the bridge applies tinygrad's Tensor.gradient in a torch.autograd.Function "
                    "backward, which torch cannot differentiate again (no double backward)",
    # Bad input by torch's rules that this framework accepts by its own documented convention
    # (not a divergence: the mathematics is defined there); the error tests skip them.
    "error:int32 index target": "convention: tinygrad takes class indices of any integer dtype",
    "error:uint8 target with K-dim input": "convention: tinygrad takes class indices of any "
                                           "integer dtype, for any number of dims",
    "error:int64 target with the input's shape": "convention: Tensor.cross_entropy takes a "
                                                 "target of the input's shape as label weights",
    "error:integer input": "convention: tinygrad promotes integer input to float for its "
                           "float operations",
    "error:weight dtype differs from input": "convention: tinygrad promotes mixed float dtypes "
                                             "(float32 weight, float64 input) as NumPy does",
}

# Parameter families (lossproofs.frameworks.FAMILIES) not provided: {function: {family: why}}.
NOT_PROVIDED: dict[str, dict[str, str]] = {
    "nll_loss": {
        "unbatched": "Tensor.nll_loss gathers along dim 1, so a (C,) input has no class dim",
    },
    "cross_entropy": {
        "weight": "Tensor.cross_entropy has no class weights",
        "ignore_index": "Tensor.cross_entropy has no ignore_index "
                        "(sparse_categorical_crossentropy has one, class axis last)",
    },
    "binary_cross_entropy": {
        "weight": "Tensor.binary_crossentropy has no per-element weight",
    },
    "binary_cross_entropy_with_logits": {
        "weight": "Tensor.binary_crossentropy_logits has no per-element weight",
    },
}
# Conventions that differ from torch's on purpose: {function: {family: what the framework does}}.
CONVENTIONS: dict[str, dict[str, str]] = {
    "binary_cross_entropy": {
        "clamp": "no clamp: −y·log p − (1 − y)·log(1 − p) as written, so p = 0 or 1 gives inf "
                 "(and 0·(−inf) = NaN where the target agrees), where torch clamps each log at "
                 "−100",
    },
}


def _bf16_compiles() -> bool:
    """Whether clang compiles tinygrad's ``__bf16`` kernels (its diagnostics are silenced)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            with Context(DEV=_DEV):
                Tensor(np.zeros(2, np.float32), device=_DEV).cast(dtypes.bfloat16).realize()
        return True
    except subprocess.CalledProcessError:
        return False
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_EMULATE_BF16: bool | None = None


@contextmanager
def _context():
    global _EMULATE_BF16
    if _EMULATE_BF16 is None:
        _EMULATE_BF16 = not _bf16_compiles()
    with Context(DEV=_DEV, EMULATED_DTYPES="bfloat16" if _EMULATE_BF16 else ""):
        yield


class _Tinygrad(Framework):
    name = "tinygrad"

    def to_array(self, t):
        t = t.detach().contiguous()
        with _context():
            if t.dtype == torch.bfloat16:
                # float32 holds every bfloat16 exactly, so the cast does not round; realized
                # so that the leaf is a bfloat16 buffer, not a cast fused into the kernels.
                return Tensor(t.float().numpy(), device=_DEV).cast(dtypes.bfloat16).realize()
            return Tensor(t.numpy().copy(), device=_DEV)

    def to_tensor(self, a):
        with _context():
            if a.dtype == dtypes.bfloat16:
                # exact in float32, so the round trip does not round
                return numpy_to_tensor(a.cast(dtypes.float32).numpy()).to(torch.bfloat16)
            return numpy_to_tensor(a.numpy())

    def value_and_vjp(self, fn, arrays, wrt):
        with _context():
            value = fn(*arrays)
        if not wrt:
            return value, None

        def vjp(g):
            with _context():
                return value.gradient(*[arrays[i] for i in wrt], gradient=g)

        return value, vjp


FRAMEWORK = _Tinygrad()

softmax, log_softmax, logsumexp = softmax_family(
    FRAMEWORK, lambda a, dim: a.softmax(axis=dim), lambda a, dim: a.log_softmax(axis=dim),
    lambda a, dim, keepdim: a.logsumexp(axis=dim, keepdim=keepdim))


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    w = None if weight is None else FRAMEWORK.to_array(weight)
    return bridged(FRAMEWORK, lambda x, t: x.nll_loss(t, weight=w, ignore_index=ignore_index,
                                                      reduction=reduction), input, target)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    refuse_not_provided("tinygrad", NOT_PROVIDED, "cross_entropy", weight=weight,
                        ignore_index=ignore_index)
    return bridged(FRAMEWORK, lambda x, t: x.cross_entropy(t, reduction=reduction,
                                                           label_smoothing=label_smoothing),
                   input, target)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    refuse_not_provided("tinygrad", NOT_PROVIDED, "binary_cross_entropy", weight=weight)
    return bridged(FRAMEWORK, lambda p, y: p.binary_crossentropy(y, reduction=reduction),
                   input, target)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    refuse_not_provided("tinygrad", NOT_PROVIDED, "binary_cross_entropy_with_logits",
                        weight=weight)
    pw = None if pos_weight is None else FRAMEWORK.to_array(pos_weight)
    return bridged(FRAMEWORK, lambda x, y: x.binary_crossentropy_logits(
        y, reduction=reduction, pos_weight=pw), input, target)
