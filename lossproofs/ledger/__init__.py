"""The divergence ledger: every place where an implementation family departs from the
mathematics, as one record type, in one list.

A :class:`Divergence` names the behaviour, says which check exposes it (a forward value, a
gradient, a special value, a rejection, an accuracy bound), gives one representative
:class:`~lossproofs.cases.Case`, the exception the failing check raises, the upstream issue, and
the target families it applies to (``Target.families``). Where the ordinary properties can draw
affected inputs, ``affected`` marks exactly which output (or gradient) elements the mechanism
touches, so that the rest of the case is still compared.

How the suite uses it:

- ``lossproofs/suite/test_divergences.py`` runs every entry's example through its check; the
  suite plugin turns that test into a strict xfail, expecting ``raises``, for targets of the
  entry's families (one mechanism, :func:`xfail_for`). Any other target must pass it; when
  torch is fixed the test XPASSes, which strict mode reports, and the entry is removed.
- The generic properties call :func:`set_aside` for the elements a divergence affects under the
  target in use, and compare the rest.
- The README's divergence table is :func:`markdown_table`, and a test keeps it current.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lossproofs.cases import Case
from lossproofs.error_cases import ErrorCase
from lossproofs.ledger import accuracy, bounds, frameworks, large, linear, torch
from lossproofs.ledger.record import (  # noqa: F401  (the ledger's public names)
    CHECKS,
    TORCH,
    TORCH_CHUNKED,
    TORCH_COMPILE,
    TORCH_CUDA,
    TORCH_EAGER,
    TORCH_FAMILIES,
    Divergence,
    SetAside,
)
from lossproofs.special_cases import SpecialCase


def _entries() -> tuple[Divergence, ...]:
    own = (*torch.ENTRIES, *bounds.ENTRIES, *large.ENTRIES, *accuracy.ENTRIES, *linear.ENTRIES)
    # torch's entries that other frameworks share (frameworks.SHARED) apply to them too
    shared = tuple(replace(d, families=d.families | frameworks.shared_families(d.name))
                   for d in own)
    return (*shared, *frameworks.ENTRIES)


LEDGER: tuple[Divergence, ...] = _entries()
BY_NAME: dict[str, Divergence] = {d.name: d for d in LEDGER}
if len(BY_NAME) != len(LEDGER):
    raise ValueError("two ledger entries share a name")


def divergence(name: str) -> Divergence:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no ledger entry named {name!r}") from None


def case_key(case) -> str | None:
    """The name a ledger entry's ``covers`` gives a special-value or error case (None for
    anything else)."""
    kind = {ErrorCase: "error", SpecialCase: "special"}.get(type(case))
    return None if kind is None else f"{kind}:{case.function}:{case.name}"


def covering(target, case) -> Divergence | None:
    """The entry of ``target``'s families that explains ``case`` (a special-value or error
    case) failing, or None."""
    key = case_key(case)
    if key is None:
        return None
    return next((d for d in LEDGER if key in d.covers and d.applies_to(target)), None)


def explaining(target, entry: Divergence, case: Case) -> Divergence | None:
    """Another entry of ``target``'s families whose affected predicate covers all of ``case``
    in ``entry``'s function and direction (so ``entry``'s near miss is a known failure of this
    target for its own reason), or None."""
    for d in LEDGER:
        if d is entry or not d.applies_to(target) or d.affected is None:
            continue
        if (d.function, d.direction) != (case.function, entry.direction):
            continue
        hit = d.affected(case, d.direction)
        if hit is not None and np.size(hit) and np.all(hit):
            return d
    return None


def not_provided_by(target, entry: Divergence, case=None) -> str | None:
    """Why ``entry``'s example (or ``case``, e.g. its near miss) is outside what ``target``
    declares it provides (``Target.excluded``), or None: such a check is not run for it."""
    if entry.check == "error type":
        return target.excluded_arguments(entry.function, entry.expected.kwargs)
    # a hand-written example carries no tags: Target.excluded reads its families from its
    # content (lossproofs.declarations.case_families)
    return target.excluded(entry.example if case is None else case)


def known_error_type(target, case) -> str | None:
    """Why the error case ``case`` is not run for ``target``: an "error type" entry of its
    families (bad input it rejects with another exception type, or accepts), run by itself in
    test_divergences.py; None if there is none, or if the entry ``covers`` the case (then the
    error test is the entry's strict xfail, :func:`covering`)."""
    key = case_key(case)
    for entry in LEDGER:
        if entry.check == "error type" and entry.applies_to(target) and \
                entry.expected.check_name == case.check_name and key not in entry.covers:
            return f"known divergence of {', '.join(sorted(entry.families))}: {entry.name}"
    return None


def xfail_for(target, entry: Divergence):
    """The strict-xfail marker for ``entry`` under ``target``, or None where it must pass."""
    import pytest

    if not entry.applies_to(target):
        return None
    return pytest.mark.xfail(strict=True, raises=entry.raises, reason=entry.xfail_reason)


def explains_accuracy(entry: Divergence) -> bool:
    """Whether ``entry`` can explain an accuracy result beyond its ULP bound: an accuracy entry,
    or a framework's own (not torch's) forward or gradient entry. torch's forward and gradient
    entries describe cancellations that the accuracy checks' fair floor (the magnitude of the
    terms torch's documented formula combines) already allows for."""
    return entry.check == "accuracy" or (entry.check in ("forward", "gradient")
                                         and not entry.families & TORCH_FAMILIES)


def set_aside(target, case: Case, direction: str, shape: tuple[int, ...],
              accuracy: bool = False) -> SetAside:
    """The elements of ``case``'s ``direction`` result (of ``shape``) that a divergence of
    ``target``'s families affects. Properties compare every other element. With ``accuracy``
    only the entries that :func:`explains_accuracy` count."""
    found = SetAside()
    for entry in LEDGER:
        if entry.affected is None or not entry.applies_to(target) or (
                accuracy and not explains_accuracy(entry)):
            continue
        hit = entry.affected(case, direction)
        if hit is False or hit is None:
            continue
        hit = np.asarray(hit, dtype=bool)
        if not hit.any():
            continue
        if hit.ndim == 0 or shape == ():
            found.whole = True
        else:
            # A predicate returns a mask broadcastable to the result; anything else is its bug.
            hit = np.broadcast_to(hit, shape)
            found.mask = hit.copy() if found.mask is None else found.mask | hit
        found.entries = (*found.entries, entry)
    if found.mask is not None and found.mask.all():
        found.whole = True
    return found


def markdown_table(entries=None) -> str:
    """The README's divergence table, generated: one row per entry (default: the entries of
    the torch families)."""
    if entries is None:
        entries = [d for d in LEDGER if d.families & TORCH_FAMILIES]
    lines = ["| divergence | function | check | applies to | torch does | upstream |",
             "|---|---|---|---|---|---|"]
    for d in entries:
        link = f"[{_issue_label(d.upstream)}]({d.upstream})" if d.upstream else "none found"
        families = ", ".join(sorted(d.families))
        check = d.check if d.check not in ("forward", "gradient", "accuracy") else (
            f"{d.check} ({d.direction})" if d.check == "accuracy" else d.check)
        reason = d.reason.replace("|", "\\|")
        lines.append(f"| {d.name} | `{d.function}` | {check} | {families} | {reason} | {link} |")
    return "\n".join(lines) + "\n"


def _issue_label(url: str) -> str:
    parts = url.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] in ("issues", "pull") and "github.com" in url:
        return f"{parts[-4]}#{parts[-1]}" if len(parts) >= 5 else url
    return url
