"""The suite's pytest plugin: hypothesis profiles, the implementation under test, markers.

Loaded with ``-p lossproofs.suite.plugin`` (the repository's pyproject and the packaged
``lossproofs/suite/pytest.ini`` both do; ``lossproofs test`` runs the packaged suite with it).

- ``--target NAME`` (or ``LOSSPROOFS_TARGET``) picks the implementation (``torch`` by default;
  see ``--help`` and :mod:`lossproofs.targets`).
- The one divergence mechanism: ``test_divergences.py`` tests parametrized as ``divergence``
  with a ledger entry become strict xfails, expecting the entry's exception, for targets of the
  entry's families.
- The hypothesis profile is ``LOSSPROOFS_PROFILE`` or ``--hypothesis-profile``; otherwise
  ``ci`` when the ``CI`` variable is set and ``dev`` elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from lossproofs import ledger
from lossproofs.special_cases import SpecialCase
from lossproofs.special_cases import declared_out as special_declared_out
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
# The teeth test (test_teeth.py) runs subsets of the suite against deliberately broken
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
        help="implementation under test: torch (default), nn, compile, cuda, chunked, "
             "chunked:<acc_policy>,<chunking_method>,<batch_chunk_size>, jax, tensorflow, "
             "tinygrad, module:package.module (env LOSSPROOFS_TARGET)")


def pin_hypothesis_constants() -> bool:
    """Make a derandomized verdict independent of which test files are collected.

    Hypothesis mixes literal constants of every *local* module loaded so far into a share of its
    draws, so a derandomized property could draw other inputs (and flip its verdict) merely
    because another test file was imported. The pool is pinned to the constants of this
    package's own source files, read once in a fixed order, whatever is collected or installed
    where. This reaches into hypothesis internals (no public setting exists): where they are
    absent, nothing is pinned and this returns False; ``tests/test_determinism.py`` shows the
    effect.
    """
    try:
        from hypothesis.internal import constants_ast
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a hypothesis without local constants
        return False
    if not (hasattr(providers, "_get_local_constants")
            and hasattr(constants_ast, "_constants_from_source")):
        return False
    package = Path(__file__).resolve().parents[1]
    pool = constants_ast.Constants()
    for source in sorted(package.rglob("*.py")):
        try:
            pool |= constants_ast._constants_from_source(source.read_bytes(), limit=True)
        except Exception:  # a file hypothesis cannot parse adds nothing
            continue
    providers._get_local_constants = lambda: pool
    providers.CONSTANTS_CACHE.cache.clear()
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    """Key a parametrized property's derandomized draws by its module and test name, not its
    node id. Hypothesis' pytest plugin seeds each parametrization from ``item.nodeid``, which is
    relative to the rootdir, and the rootdir depends on what is collected: ``pytest
    lossproofs/suite/test_large.py`` finds ``lossproofs/suite/pytest.ini`` (node id
    ``test_large.py::…``), adding ``tests/`` finds ``pyproject.toml`` (``lossproofs/suite/
    test_large.py::…``), and ``lossproofs test`` runs from the installed package. Runs after
    hypothesis' hook wrapper has set its key, before the test; ``tests/test_determinism.py``
    shows the effect."""
    inner = getattr(getattr(getattr(item, "obj", None), "hypothesis", None), "inner_test", None)
    if inner is not None and hasattr(inner, "_hypothesis_internal_add_digest"):
        inner._hypothesis_internal_add_digest = f"{item.module.__name__}::{item.name}".encode()


def pytest_configure(config):
    pin_hypothesis_constants()
    # Resolve the target before collection: a bad --target (or cuda without a GPU) is one usage
    # error up front, not an error in every test that uses the `impl` fixture.
    _target(config)


# Whole test files a target may declare it cannot run, by check name, through Target.notes (a
# user module's UNSUPPORTED_CHECKS dict): their tests that use the target are skipped with the
# stated reason. E.g. a backward written outside autograd has no double backward.
OPTIONAL_CHECKS = {"second order": "test_second_order.py"}


def pytest_collection_modifyitems(config, items):
    target = _target(config)
    # The one divergence mechanism: a test parametrized as `divergence` with a ledger entry is
    # a strict xfail, expecting the entry's exception, for targets of the entry's families; any
    # other implementation must pass it.
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        entry = params.get("divergence")
        if "case" in params and "impl" in getattr(item, "fixturenames", ()):
            # a special-value or error case that a ledger entry names in its `covers`
            entry = ledger.covering(target, params["case"])
        if isinstance(entry, ledger.Divergence):
            marker = ledger.xfail_for(target, entry)
            if marker is not None:
                item.add_marker(marker)
        # A ledger example (or near miss) outside this target's declared capabilities is not
        # run for it (a skip, which takes precedence over the xfail).
        reason = None
        if isinstance(entry, ledger.Divergence):
            reason = ledger.not_provided_by(target, entry)
        near = params.get("entry")
        if isinstance(near, ledger.Divergence) and near.near_miss is not None and \
                "impl" in getattr(item, "fixturenames", ()):
            reason = ledger.not_provided_by(target, near, near.near_miss)
            known = ledger.explaining(target, near, near.near_miss)
            if known is not None and not reason:
                # every element is one this target's own entry sets aside (a predicate bounds
                # where it may be wrong, so the check would compare nothing): named, not run
                reason = f"the near miss is set aside whole by its own entry {known.name!r}"
        case = params.get("case")
        if isinstance(case, SpecialCase) and "impl" in getattr(item, "fixturenames", ()):
            reason = special_declared_out(target, case)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"{target.name}: {reason}"))
    for check, filename in OPTIONAL_CHECKS.items():
        reason = target.unsupported(check)
        if not reason:
            continue
        for item in items:
            if item.path.name == filename and "impl" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.skip(reason=f"{target.name}: {reason}"))


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
