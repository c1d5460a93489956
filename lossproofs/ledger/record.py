"""The ledger's record types: :class:`Divergence` (one departure from the mathematics, with the
evidence that pins it) and :class:`SetAside` (which elements of a result known divergences
cover). The entry modules build Divergences from here; :mod:`lossproofs.ledger` collects them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossproofs.cases import Case
from lossproofs.families import (
    TORCH,
    TORCH_CHUNKED,
    TORCH_COMPILE,
    TORCH_CUDA,
    TORCH_EAGER,
)

__all__ = ["CHECKS", "TORCH", "TORCH_CHUNKED", "TORCH_COMPILE", "TORCH_CUDA", "TORCH_EAGER",
           "TORCH_FAMILIES", "Divergence", "SetAside"]

# The torch families: the README's table lists the entries of these; the other frameworks'
# entries (lossproofs/ledger/frameworks.py) are listed on docs/frameworks.md.
TORCH_FAMILIES = frozenset({TORCH, TORCH_EAGER, TORCH_COMPILE, TORCH_CUDA, TORCH_CHUNKED})

CHECKS = ("forward", "gradient", "special value", "rejects", "accuracy", "error type")


@dataclass(frozen=True)
class Divergence:
    """One departure from the mathematics, with the evidence that pins it.

    - ``check``: which check exposes it, one of :data:`CHECKS`; ``direction`` (``"forward"``
      or ``"gradient"``) for the forward, gradient and accuracy checks.
    - ``example``: the representative case; ``expected`` the mathematical value for a
      special-value check (derived by hand in ``why``).
    - ``raises``: what the failing check raises on an affected target (``AssertionError`` when
      the value is wrong, the implementation's own exception when it raises on valid input).
    - ``affected(case, direction)``: the elements of the output (forward) or of the gradient
      that the mechanism touches, as a boolean array broadcastable to that result, or a bool
      for the whole case; None when ordinary properties cannot draw the inputs.
    - ``near_miss``: a case just outside ``affected``, which affected targets get right.
    - ``families``: the target families it applies to; ``upstream`` the issue link, if any.
    - ``also_functions``: the other functions whose results the same mechanism affects (its
      predicate covers them too; the reports match their rows to it).
    - ``covers``: the special-value and error cases it explains (:func:`case_key`:
      ``special:<function>:<name>``, ``error:<function>:<name>``): for the entry's families
      those cases are known failures (:func:`covering`).
    """

    name: str
    function: str
    check: str
    example: Case
    reason: str
    upstream: str = ""
    families: frozenset[str] = frozenset({TORCH})
    raises: type[BaseException] = AssertionError
    direction: str = "forward"
    affected: Callable[[Case, str], Any] | None = None
    near_miss: Case | None = None
    expected: Any = None
    seed: int = 0  # of the random grad_output, for gradient checks
    floored: bool = True  # accuracy checks: count ULPs above the fair floor (else raw ULPs)
    wrt_target: bool = False  # gradient checks: the target's gradient too
    covers: tuple[str, ...] = ()
    also_functions: tuple[str, ...] = ()  # other functions the same mechanism affects

    def __post_init__(self):
        if self.check not in CHECKS:
            raise ValueError(f"{self.name}: check {self.check!r} is not one of {CHECKS}")
        if self.example.function != self.function:
            raise ValueError(f"{self.name}: example is a {self.example.function} case")

    def applies_to(self, target) -> bool:
        return bool(self.families & target.families)

    @property
    def xfail_reason(self) -> str:
        return f"{self.name}: {self.reason} {self.upstream}".strip()

    def __repr__(self) -> str:
        return f"Divergence({self.name!r})"



@dataclass
class SetAside:
    """Which elements of one result a target's known divergences cover.

    ``whole`` means the case as a whole is affected (the implementation raises, or a reduced
    scalar is wrong); otherwise ``mask`` marks the affected elements (None: nothing set aside).
    """

    entries: tuple[Divergence, ...] = ()
    mask: np.ndarray | None = None
    whole: bool = False

    def __bool__(self) -> bool:
        return self.whole or (self.mask is not None and bool(self.mask.any()))

    @property
    def names(self) -> str:
        return ", ".join(d.name for d in self.entries)
