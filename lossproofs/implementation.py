"""The implementation under test as a type: :class:`Target`, one indirection between the suite
and what it proves. Every test reaches the functions it checks through a Target, never by
calling torch directly; :mod:`lossproofs.targets` builds the built-in ones and a user's module,
:mod:`lossproofs.targets.linear` torch's linear cross-entropy paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lossproofs.declarations import DECLARABLE, case_families
from lossproofs.families import TORCH

# every function a target may define (the registry's order, which it checks is this one)
FUNCTIONS: tuple[str, ...] = tuple(DECLARABLE)


@dataclass
class Target:
    """A named implementation: ``functions`` maps names from :data:`FUNCTIONS` to callables.

    ``description`` and ``version`` go into the pytest report header and written reports;
    ``device`` is where the computation runs. A function absent from ``functions`` makes its
    tests skip with the reason ``missing_reason(name)``. ``families`` name the implementation
    families it belongs to (``lossproofs.ledger.TORCH``, ``TORCH_EAGER``, ...): the ledger's
    divergences of those families are expected of it.
    """

    name: str
    functions: dict[str, Callable[..., Any]]
    families: frozenset[str] = frozenset()
    device: str = "cpu"
    version: str = field(default_factory=lambda: f"torch {torch.__version__}")
    description: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    # Declared capabilities, per function: the parameter families (case tags, plus
    # "reduction:<value>") the target does not provide, and those where it follows another
    # convention than torch on purpose, each with its reason. Such cases are not drawn for it,
    # and the reports show them as "not provided" / "convention", never as failures.
    not_provided: dict[str, dict[str, str]] = field(default_factory=dict)
    conventions: dict[str, dict[str, str]] = field(default_factory=dict)
    # Bad input raises torch's exception types (torch itself, and modules that say so with
    # RAISES_TORCH_EXCEPTIONS = True); other targets are judged on rejecting it at all.
    torch_exceptions: bool = False
    # How a reproduction calls this target: (import lines, qualifier of the function name),
    # e.g. ("import mylosses", "mylosses."); torch.nn.functional's by default.
    reproduce: tuple[str, str] = ("import torch.nn.functional as F", "F.")

    def __post_init__(self):
        self.torch_exceptions = self.torch_exceptions or TORCH in self.families

    def declared_out(self, function: str) -> frozenset[str]:
        """The families of ``function`` this target declares it does not provide or follows
        another convention on: the strategies do not draw them for it (``exclude=``)."""
        return frozenset({**self.not_provided.get(function, {}),
                          **self.conventions.get(function, {})})

    def excluded(self, case) -> str | None:
        """Why ``case`` is outside what this target declares it provides, or None. The case's
        families are read from its content and tags (:func:`lossproofs.declarations.
        case_families`), so hand-written cases are judged like drawn ones."""
        return self.excluded_families(case.function, case_families(case))

    def excluded_families(self, function: str, families) -> str | None:
        """Why a call of ``function`` exercising ``families`` is outside what this target
        declares it provides, or None."""
        for declared, what in ((self.not_provided, "not provided"),
                               (self.conventions, "convention")):
            for family, reason in declared.get(function, {}).items():
                if family in families:
                    return f"{what}: {family} ({reason})"
        return None

    def excluded_arguments(self, function: str, kwargs) -> str | None:
        """Why a call with these keyword arguments is outside what the target provides (for
        error cases, whose culprit may be an argument the target does not take), or None."""
        declared = {**self.not_provided.get(function, {}), **self.conventions.get(function, {})}
        for name, value in kwargs.items():
            family = "reduction:" + str(value) if name == "reduction" else name
            if family in declared:
                return f"not provided: {family} ({declared[family]})"
        return None

    def __repr__(self) -> str:
        return f"Target({self.name!r}, {self.description!r})"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))

    FUNCTIONS = FUNCTIONS  # every function a target may define

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

    def unsupported(self, check: str) -> str | None:
        """Why ``check`` (e.g. ``"error:target out of bounds"``) cannot run here, or None."""
        return self.notes.get(check)
