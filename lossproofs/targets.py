"""The implementation under test: one indirection between the suite and what it proves.

Every test reaches the functions it checks through a :class:`Target`, never by calling torch
directly, so the whole suite can be pointed at another implementation (``--target`` /
``LOSSPROOFS_TARGET``). A target exposes ``torch.nn.functional``-style callables that take and
return CPU tensors (a device target moves them, differentiably, so autograd still reaches the
caller's leaf tensors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

FUNCTIONS = (
    "softmax", "log_softmax", "logsumexp", "nll_loss", "cross_entropy",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
)


def _torch_logsumexp(input, dim, keepdim=False):
    # torch.nn.functional has no logsumexp; torch.logsumexp is its functional form.
    return torch.logsumexp(input, dim, keepdim=keepdim)


@dataclass
class Target:
    """A named implementation: ``functions`` maps names from :data:`FUNCTIONS` to callables.

    ``description`` and ``version`` go into the pytest report header and written reports;
    ``device`` is where the computation runs. A function absent from ``functions`` makes its
    tests skip with the reason ``missing_reason(name)``.
    """

    name: str
    functions: dict[str, Callable[..., Any]]
    device: str = "cpu"
    version: str = field(default_factory=lambda: f"torch {torch.__version__}")
    description: str = ""
    notes: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Callable[..., Any] | None:
        return self.functions.get(name)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name in FUNCTIONS:
            fn = self.functions.get(name)
            if fn is None:
                raise AttributeError(self.missing_reason(name))
            return fn
        raise AttributeError(name)

    def missing_reason(self, name: str) -> str:
        return self.notes.get(name, f"target {self.name!r} does not provide {name}")


def torch_functional() -> Target:
    """torch.nn.functional on the CPU: the default implementation under test."""
    fns = {name: getattr(F, name) for name in FUNCTIONS if hasattr(F, name)}
    fns["logsumexp"] = _torch_logsumexp
    return Target("torch", fns, description="torch.nn.functional on CPU")


BUILTIN_TARGETS: dict[str, Callable[[], Target]] = {"torch": torch_functional}


def get_target(spec: str | None = None) -> Target:
    """Resolve a target name (``None`` or ``"torch"``: the default)."""
    spec = spec or "torch"
    if spec in BUILTIN_TARGETS:
        return BUILTIN_TARGETS[spec]()
    raise ValueError(
        f"unknown target {spec!r}: expected one of {sorted(BUILTIN_TARGETS)}"
    )
