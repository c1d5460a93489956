"""Suite-wide configuration: hypothesis profiles and the implementation under test."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from lossproofs.targets import get_target

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("LOSSPROOFS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def impl():
    """The implementation under test (torch.nn.functional on CPU by default)."""
    return get_target(os.environ.get("LOSSPROOFS_TARGET"))
