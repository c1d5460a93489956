"""Small helpers shared by the test modules (not a test module itself)."""

from __future__ import annotations

import pytest
from hypothesis import assume, event

from lossproofs import checks, ledger
from lossproofs.declarations import drawable
from lossproofs.registry import LOSSES


def require(impl, *names: str):
    """Skip, with the target's stated reason, when it lacks one of ``names``."""
    for name in names:
        if impl.get(name) is None:
            pytest.skip(impl.missing_reason(name))


def declared_out(impl, *functions: str) -> frozenset[str]:
    """The families ``impl`` declares out for any of ``functions`` (a test that calls several
    functions on one case draws none of them)."""
    return frozenset().union(*(impl.declared_out(f) for f in functions))


def require_families(impl, function: str, *families: str) -> None:
    """Skip, naming the declaration, when ``impl`` declares one of ``families`` (a test that is
    about that family) out for ``function``."""
    reason = impl.excluded_families(function, set(families))
    if reason:
        pytest.skip(f"{impl.name}: {reason}")


def skip_if_excluded(impl, case) -> None:
    """Skip, naming the declaration, a hand-written ``case`` that ``impl`` declares out."""
    reason = impl.excluded(case)
    if reason:
        pytest.skip(f"{impl.name}: {reason}")


def require_declared(impl, function: str, **families) -> None:
    """Skip, naming the declaration, when a parametrization needs a family (``weight=True``,
    ``ignore_index=True``, ``reduction="sum"``, ...) that ``impl`` declares it does not provide
    or follows another convention on."""
    given = {name.replace("_", " ") if name == "probability_target" else name: value
             for name, value in families.items() if value}
    reason = impl.excluded_arguments(function, given)
    if reason:
        pytest.skip(f"{impl.name}: {reason}")


def draw_case(data, impl, function: str, dtype: str | None, strategy=None):
    """Draw a case of ``function`` that ``impl`` declares it provides (its ``NOT_PROVIDED`` and
    ``CONVENTIONS``): the strategy takes the declaration and never draws the other families
    (``exclude=``), so the supported subset is drawn in full, never filtered down to nothing.
    A ``strategy`` given by the caller must have been built with the same ``exclude``; a case
    it still draws outside the declaration is a bug of the suite, reported as such."""
    exclude = impl.declared_out(function)
    nothing = drawable(function, exclude)
    if nothing:
        pytest.skip(f"{impl.name}: {nothing}")
    if strategy is None:
        strategy = LOSSES[function].cases(dtype, exclude=exclude)
    case = data.draw(strategy, label="case")
    reason = impl.excluded(case)
    if reason:
        raise AssertionError(f"lossproofs bug: the strategy drew a case {impl.name} declares "
                             f"out ({reason}); please report it with this case: {case!r}")
    return case


def _settle(outcome: checks.Outcome) -> None:
    """Record what was set aside (``--hypothesis-show-statistics`` shows it), set aside a case
    a known divergence affects as a whole, and fail with the check's message."""
    if outcome.divergences:
        event(f"set aside ({'whole case' if outcome.status == 'set aside' else 'elements'}): "
              f"{outcome.divergences}")
    assume(outcome.status != "set aside")
    outcome.raise_for_failure()


def assert_forward_agrees(impl, case) -> checks.Outcome:
    outcome = checks.check_forward(impl, case)
    _settle(outcome)
    return outcome


def assert_gradients_agree(impl, case, seed: int, wrt_target: bool = False) -> checks.Outcome:
    outcome = checks.check_gradients(impl, case, seed, wrt_target)
    _settle(outcome)
    return outcome


def set_aside_divergent_cases(impl, case, *directions: str):
    """Set aside (hypothesis ``assume``) a case that a known divergence of this target affects
    anywhere, for checks that cannot compare element by element (gradcheck, HVPs, identities);
    each divergence is pinned by name in the ledger (lossproofs/ledger)."""
    for direction in directions or ("forward", "gradient"):
        shape = case.arrays[0].shape if direction == "gradient" else ()
        found = ledger.set_aside(impl, case, direction, shape)
        if found:
            event(f"set aside (whole case): {found.names}")
        assume(not found)
