"""What the example fused linear cross-entropy adapters share (not a user module itself).

``examples/liger_linear_cross_entropy.py``, ``examples/cce_linear_cross_entropy.py`` and
``examples/quack_linear_cross_entropy.py`` each wrap one GPU kernel library's fused linear
cross-entropy in ``torch.nn.functional.linear_cross_entropy``'s signature. Each module imports
whatever machine it is on: where the library or a CUDA GPU is missing it defines no
``linear_cross_entropy`` and states why in ``UNSUPPORTED_CHECKS["linear_cross_entropy"]``, which
the suite prints as the reason its linear_cross_entropy tests skip (:func:`load`,
:func:`missing_function`).

The suite hands an implementation CPU tensors and differentiates through what it returns;
:func:`on_device` moves the arguments to the GPU with ``Tensor.to`` (differentiable, so the
gradients reach the caller's CPU leaves) and :func:`result` brings the loss back in the input's
dtype, which is torch's contract (the kernels return a float32 loss).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any

import torch

# torch's default: ``ignore_index=None`` is mapped to -100 for class-index targets.
DEFAULT_IGNORE_INDEX = -100

# Bad input these adapters do not feed to a GPU kernel: the built-in ``cuda`` target declares
# the same for torch's own kernels (lossproofs.targets.CUDA_UNSUPPORTED).
_DEVICE_FAULT = ("on a GPU an out-of-range class index can fault inside the kernel (a "
                 "device-side assert or an illegal memory access), which leaves the CUDA "
                 "context unusable for the rest of the run: not a catchable error, not run here")
OUT_OF_RANGE_CHECKS = {
    "error:target out of bounds": _DEVICE_FAULT,
    "error:negative target that is not ignore_index": _DEVICE_FAULT,
}


def load(module: str, attribute: str, install: str, needs_cuda: bool = True
         ) -> tuple[Callable[..., Any] | None, str | None]:
    """``(kernel, None)``: the library's ``module.attribute``, ready to run here; or
    ``(None, reason)``, the reason naming what is missing and how to get it."""
    missing = []
    kernel = None
    try:
        kernel = getattr(importlib.import_module(module), attribute)
    except ImportError as e:
        missing.append(f"the package ({install}; importing {module} failed: {e})")
    except Exception as e:  # an import that crashes (no driver, ...) is a reason too
        missing.append(f"an importable {module} (it raised {type(e).__name__}: {e})")
    if needs_cuda and not torch.cuda.is_available():
        missing.append("a CUDA GPU (torch.cuda.is_available() is False"
                       + ("" if torch.version.cuda else "; this torch is a CPU-only build")
                       + ")")
    if missing:
        return None, f"{module}.{attribute} needs " + " and ".join(missing)
    return kernel, None


def export(namespace: dict[str, Any], kernel_spec: tuple[str, str], install: str,
           adapter: Callable[[Callable[..., Any]], Callable[..., Any]],
           needs_cuda: bool = True) -> None:
    """Finish an adapter module (``namespace`` is its ``globals()``): ``linear_cross_entropy``
    is ``adapter(kernel)`` where the kernel runs here; otherwise it is absent, and the reason
    goes into the module's ``UNSUPPORTED_CHECKS["linear_cross_entropy"]`` (what the suite
    prints when it skips) and into the ``AttributeError`` a direct access raises."""
    kernel, reason = load(*kernel_spec, install, needs_cuda=needs_cuda)
    if reason is None:
        namespace["linear_cross_entropy"] = adapter(kernel)
    else:
        namespace["UNSUPPORTED_CHECKS"]["linear_cross_entropy"] = reason
        namespace["__getattr__"] = missing_function(namespace["__name__"], reason)


def version(distribution: str) -> str:
    """A module's ``__version__``: the wrapped distribution's, or that it is not installed."""
    try:
        return f"{distribution} {metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"{distribution} not installed"


def missing_function(module_name: str, reason: str | None) -> Callable[[str], Any]:
    """A module ``__getattr__``: ``linear_cross_entropy`` is absent for ``reason``."""
    def __getattr__(name: str) -> Any:
        if name == "linear_cross_entropy" and reason:
            raise AttributeError(f"{module_name}.linear_cross_entropy is unavailable: {reason}")
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    return __getattr__


def on_device(device: str, *tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """Each tensor on ``device`` (``None`` stays ``None``); ``Tensor.to`` is differentiable."""
    return [None if t is None else t.to(device) for t in tensors]


def as_batch(input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``(in,)`` input and its 0-d target as a batch of one row (the kernels take ``(N, in)``
    and ``(N,)``); a batched call unchanged."""
    if input.dim() == 1:
        return input.unsqueeze(0), target.reshape(1)
    return input, target


def result(loss: torch.Tensor, input: torch.Tensor, reduction: str) -> torch.Tensor:
    """The kernel's loss on the CPU in the input's dtype, 0-d for an unbatched
    ``reduction="none"`` (torch's shapes)."""
    out = loss.to(device="cpu", dtype=input.dtype)
    return out.reshape(()) if input.dim() == 1 and reduction == "none" else out


def ignore_index_of(ignore_index: int | None) -> int:
    return DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index


def check_provided(library: str, declared: dict[str, str], **used: bool) -> None:
    """Raise ``NotImplementedError`` with the declared reason for the first parameter family
    in ``used`` (family name → whether this call uses it) that the library does not provide:
    the suite draws no such case, a direct caller is told why rather than given another
    function's answer."""
    for family, in_use in used.items():
        if in_use and family in declared:
            raise NotImplementedError(f"{library}: {family}: {declared[family]}")
