"""Small helpers shared by the test modules (not a test module itself)."""

from __future__ import annotations

import pytest

from lossproofs import checks


def require(impl, *names: str):
    """Skip, with the target's stated reason, when it lacks one of ``names``."""
    for name in names:
        if impl.get(name) is None:
            pytest.skip(impl.missing_reason(name))


def assert_gradients_agree(impl, case, seed: int, wrt_target: bool = False):
    for name, actual, expected in checks.gradients(impl, case, seed, wrt_target):
        checks.assert_agrees(actual, expected, case, "gradient", f"{case.function} {name}",
                             checks.gradient_scale(case.function, expected))


def skip_known_issues(impl, case, *directions: str):
    """Set aside (hypothesis ``assume``) a case that runs into a known torch bug under this
    target; each such bug is pinned by name in tests/test_known_issues.py."""
    from hypothesis import assume

    from lossproofs.known_issues import known_issue

    for direction in directions or ("forward", "gradient"):
        assume(known_issue(impl.name, case, direction) is None)
