"""What an implementation may declare it does not do, and which families a case exercises.

A target (a user module's ``NOT_PROVIDED`` and ``CONVENTIONS``, a framework adapter's, a
built-in's) declares, per function, the *parameter families* it does not provide or where it
follows another convention on purpose. This module is the one list of those families, their
meaning, and the rule that says which families a :class:`~lossproofs.cases.Case` exercises:

- :data:`DECLARABLE` maps each function to the families it can be declared without, each with
  a one-line meaning; a declaration naming anything else is an error that lists them
  (:func:`validate`), never a silent no-op;
- :func:`families_of` reads a case's families from its *content* (a ``weight`` argument, a
  floating target, a 1-d input, a reduction, probabilities at exactly 0 or 1, ...) as well as
  its tags, so hand-written cases (ledger examples, special values, degenerate shapes) are
  judged by the same rule as drawn ones;
- the strategies take the declared-out set (``exclude=``) and never draw those families
  (:mod:`lossproofs.strategies`), so a supported subset is always drawn in full.

Checks a target may declare it cannot run (``UNSUPPORTED_CHECKS``) are :data:`CHECKS`, an error
case's ``error:<name>`` or a function's name (the reason it is missing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

REDUCTIONS = ("none", "sum", "mean")

# family -> what a case of that family has (the meaning shown when a name is unknown)
MEANING: dict[str, str] = {
    "weight": "a class weight (index losses) or an element weight (binary losses)",
    "ignore_index": "an ignore_index argument, or targets equal to the (default) ignore_index",
    "label_smoothing": "label_smoothing > 0",
    "probability target": "class-probability targets of the input's shape (not class indices)",
    "uint8 target": "class indices stored as uint8",
    "k-dim": "inputs (N, C, d1, ..., dk) with spatial dimensions",
    "unbatched": "an unbatched (C,) input",
    "single class": "a class (or reduced) dimension of extent 1",
    "pos_weight": "a pos_weight argument",
    "clamp": "probabilities exactly 0 or 1 (torch clamps the log at -100)",
    "linear_bias": "a linear_bias argument",
    "tuple dim": "a tuple of dims to reduce over",
    "0-d": "0-d (scalar) inputs",
    "empty": "inputs with no elements",
    "non-contiguous": "non-contiguous memory layouts (transposed, sliced, expanded)",
    **{f"reduction:{r}": f"reduction={r!r}" for r in REDUCTIONS},
}

_SHAPES = ("non-contiguous", "empty")
_REDUCING = tuple(f"reduction:{r}" for r in REDUCTIONS)
_INDEX = ("weight", "ignore_index", "uint8 target", "k-dim", "unbatched", "single class",
          *_REDUCING, *_SHAPES)
_BINARY = ("weight", "0-d", *_REDUCING, *_SHAPES)

# function -> the families it can be declared without
DECLARABLE: dict[str, tuple[str, ...]] = {
    "softmax": ("single class", "0-d", *_SHAPES),
    "log_softmax": ("single class", "0-d", *_SHAPES),
    "logsumexp": ("single class", "0-d", "tuple dim", *_SHAPES),
    "nll_loss": _INDEX,
    "cross_entropy": (*_INDEX, "label_smoothing", "probability target"),
    "binary_cross_entropy": (*_BINARY, "clamp"),
    "binary_cross_entropy_with_logits": (*_BINARY, "pos_weight"),
    "linear_cross_entropy": ("weight", "ignore_index", "label_smoothing", "probability target",
                             "k-dim", "unbatched", "linear_bias", *_REDUCING,
                             "non-contiguous"),
}
assert all(f in MEANING for families in DECLARABLE.values() for f in families)

# function -> the names of its positional array arguments (what a reproduction calls them);
# lossproofs.registry checks each Loss.arguments against it
ARGUMENTS: dict[str, tuple[str, ...]] = {
    **{f: ("input", "target") for f in DECLARABLE},
    "linear_cross_entropy": ("input", "linear_weight", "target"),
}

# Checks a target may declare it cannot run (besides error:<case> and a function's name).
CHECKS: dict[str, str] = {
    "second order": "double backward (gradgradcheck, Hessian-vector products)",
    "retain_graph": "two backward passes through one graph (linear_cross_entropy)",
}

_INDEX_LOSSES = ("nll_loss", "cross_entropy")
_BINARY_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
DEFAULT_IGNORE_INDEX = -100


class InvalidDeclaration(ValueError):
    """A declaration names a function, family or check the suite does not know."""


def _listing(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


def validate(owner: str, not_provided: Mapping, conventions: Mapping,
             unsupported: Mapping, error_checks: Iterable[str] = ()) -> None:
    """Raise :class:`InvalidDeclaration` naming the first unknown function, family or check in
    ``owner``'s declarations, with the valid names; also a family declared both ways."""
    for table_name, table in (("NOT_PROVIDED", not_provided), ("CONVENTIONS", conventions)):
        if not isinstance(table, Mapping):
            raise InvalidDeclaration(f"{owner}: {table_name} must be a dict of dicts "
                                     f"{{function: {{family: reason}}}}, got {table!r}")
        for function, families in table.items():
            if function not in DECLARABLE:
                raise InvalidDeclaration(
                    f"{owner}: {table_name} names an unknown function {function!r}; the "
                    f"functions are {_listing(DECLARABLE)}")
            if not isinstance(families, Mapping):
                raise InvalidDeclaration(
                    f"{owner}: {table_name}[{function!r}] must be a dict {{family: reason}}, "
                    f"got {families!r}")
            for family, reason in families.items():
                if family not in DECLARABLE[function]:
                    raise InvalidDeclaration(
                        f"{owner}: {table_name}[{function!r}] names an unknown family "
                        f"{family!r}; {function} can be declared without: "
                        + "; ".join(f"{f!r} ({MEANING[f]})" for f in DECLARABLE[function]))
                if not isinstance(reason, str) or not reason.strip():
                    raise InvalidDeclaration(
                        f"{owner}: {table_name}[{function!r}][{family!r}] needs a reason "
                        f"(a non-empty string), got {reason!r}")
    both = {(f, fam) for f, fams in not_provided.items() for fam in fams} & {
        (f, fam) for f, fams in conventions.items() for fam in fams}
    if both:
        raise InvalidDeclaration(f"{owner}: declared both not provided and a convention: "
                                 f"{sorted(both)}")
    known = {*CHECKS, *error_checks, *DECLARABLE}
    for check in unsupported:
        if check not in known:
            raise InvalidDeclaration(
                f"{owner}: UNSUPPORTED_CHECKS names an unknown check {check!r}; the checks are "
                f"{_listing(CHECKS)}, a function name, or 'error:<name>' of an error case: "
                f"{_listing(sorted(error_checks))}")


def _is_float(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def families_of(function: str, arrays: tuple, params: Mapping, layout: str = "contiguous",
                tags: Iterable[str] = ()) -> frozenset[str]:
    """The declarable families a call of ``function`` with these arguments exercises: its
    ``tags`` that are families, and what its content shows (see :data:`MEANING`)."""
    found = {t for t in tags if t in MEANING}
    x = np.asarray(arrays[0]) if arrays else np.zeros(())
    if function in DECLARABLE and any(f.startswith("reduction:") for f in DECLARABLE[function]):
        found.add(f"reduction:{params.get('reduction', 'mean')}")
    for name in ("weight", "pos_weight", "linear_bias"):
        if params.get(name) is not None:
            found.add(name)
    if params.get("label_smoothing"):
        found.add("label_smoothing")
    if x.ndim == 0:
        found.add("0-d")
    if x.size == 0:
        found.add("empty")
    if layout != "contiguous" and x.size >= 2:
        found.add("non-contiguous")
    if function in _INDEX_LOSSES or function == "linear_cross_entropy":
        target = arrays[-1] if len(arrays) > 1 else None
        if function == "linear_cross_entropy":
            w = np.asarray(arrays[1]) if len(arrays) > 1 else None
            classes = w.shape[0] if w is not None and w.ndim else None
            if w is not None and w.ndim > 2:
                found.add("k-dim")
        else:
            classes = x.shape[0 if x.ndim == 1 else 1] if x.ndim else None
            if x.ndim > 2:
                found.add("k-dim")
        if x.ndim == 1:
            found.add("unbatched")
        if classes == 1:
            found.add("single class")
        if _is_float(target):
            found.add("probability target")
        elif isinstance(target, np.ndarray):
            if target.dtype == np.uint8:
                found.add("uint8 target")
            ignore = params.get("ignore_index")
            if ignore is not None or np.any(target == DEFAULT_IGNORE_INDEX):
                found.add("ignore_index")
    elif function in DECLARABLE and function not in _BINARY_LOSSES:
        dim = params.get("dim")
        if isinstance(dim, tuple | list):
            found.add("tuple dim")
        elif isinstance(dim, int) and -x.ndim <= dim < x.ndim and x.shape[dim] == 1:
            found.add("single class")
    if function == "binary_cross_entropy" and _is_float(x) and np.any((x == 0) | (x == 1)):
        found.add("clamp")
    return frozenset(found)


def call_families(function: str, args: tuple, kwargs: Mapping) -> frozenset[str]:
    """:func:`families_of` a hand-written call (an error or special-value case): its array
    arguments and keywords."""
    return families_of(function, tuple(a for a in args if isinstance(a, np.ndarray)), kwargs)


def case_families(case) -> frozenset[str]:
    """:func:`families_of` a :class:`~lossproofs.cases.Case`."""
    return families_of(case.function, case.arrays, case.params, case.layout, case.tags)


def drawable(function: str, exclude: Iterable[str]) -> str | None:
    """Why no case of ``function`` can be drawn without the families in ``exclude`` (every
    reduction declared out), or None."""
    exclude = set(exclude)
    reductions = [f for f in DECLARABLE.get(function, ()) if f.startswith("reduction:")]
    if reductions and all(f in exclude for f in reductions):
        return f"every reduction of {function} is declared not provided"
    return None
