"""Suite-wide configuration: hypothesis profiles and the implementation under test.

- ``--target NAME`` (or ``LOSSPROOFS_TARGET``) picks the implementation: ``torch`` (default),
  ``nn``, ``compile``, ``cuda`` or ``module:package.module``.
- The hypothesis profile is ``LOSSPROOFS_PROFILE`` or ``--hypothesis-profile``; otherwise
  ``ci`` when the ``CI`` variable is set and ``dev`` elsewhere.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

from lossproofs.targets import get_target

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# The teeth test (tests/test_teeth.py) runs subsets of the suite against deliberately broken
# implementations: derandomized so its verdict is reproducible, no shrinking (a failure is all
# it needs to know), the ci profile's example count.
settings.register_profile(
    "teeth", max_examples=100, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile(
    os.environ.get("LOSSPROOFS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def pytest_addoption(parser):
    parser.addoption(
        "--target", default=os.environ.get("LOSSPROOFS_TARGET") or "torch",
        help="implementation under test: torch (default), nn, compile, cuda, "
             "module:package.module (env LOSSPROOFS_TARGET)")


def pytest_report_header(config):
    target = _target(config)
    profile = settings._current_profile  # hypothesis exposes no public getter
    return [f"lossproofs target: {target.name} - {target.description} ({target.version}, "
            f"device {target.device})",
            f"lossproofs hypothesis profile: {profile} "
            f"(max_examples={settings.default.max_examples}, "
            f"derandomize={settings.default.derandomize})"]


_TARGETS: dict[str, object] = {}


def _target(config):
    spec = config.getoption("--target")
    if spec not in _TARGETS:
        try:
            _TARGETS[spec] = get_target(spec)
        except (ValueError, RuntimeError, ImportError) as e:
            raise pytest.UsageError(f"--target {spec}: {e}") from e
    return _TARGETS[spec]


@pytest.fixture(scope="session")
def impl(request):
    """The implementation under test (torch.nn.functional on CPU by default)."""
    return _target(request.config)
