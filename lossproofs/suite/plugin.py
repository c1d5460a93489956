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

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from lossproofs import cases, ledger
from lossproofs.special_cases import SpecialCase
from lossproofs.special_cases import declared_out as special_declared_out
from lossproofs.suite.summary import KEY, Summary, label
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

# Bounded shrinking: hypothesis shrinks a failure for up to 300 s, so a module that fails most
# properties took longer than a coffee break. Here each failure is shrunk for at most
# SHRINK_SECONDS (LOSSPROOFS_SHRINK_SECONDS; the thorough profile keeps hypothesis' own
# bound): the example printed is then smaller, not always minimal. Hypothesis has no public
# setting for it; where the internal is absent nothing changes.
SHRINK_SECONDS = float(os.environ.get("LOSSPROOFS_SHRINK_SECONDS") or 2)


def bound_shrinking(seconds: float = SHRINK_SECONDS) -> bool:
    """Cap hypothesis' shrink time at ``seconds`` (not for the thorough profile)."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover
        return False
    if not hasattr(engine, "MAX_SHRINKING_SECONDS"):
        return False
    if settings._current_profile == "thorough":  # hypothesis exposes no public getter
        return False
    engine.MAX_SHRINKING_SECONDS = seconds
    report = engine.report

    def said_plainly(message, *args, **kwargs):
        # hypothesis' own warning speaks of five minutes and asks for a bug report
        if str(message).startswith("WARNING: Hypothesis has spent more than five minutes"):
            message = (f"lossproofs: shrinking stopped after {seconds:g} s "
                       "(LOSSPROOFS_SHRINK_SECONDS), so the example shown may not be minimal")
        return report(message, *args, **kwargs)

    engine.report = said_plainly
    return True


bound_shrinking()


def pytest_addoption(parser):
    parser.addoption(
        "--target", default=os.environ.get("LOSSPROOFS_TARGET") or "torch",
        help="implementation under test: torch (default), nn, compile, cuda, chunked, "
             "chunked:<acc_policy>,<chunking_method>,<batch_chunk_size>, jax, tensorflow, "
             "tinygrad, module:package.module, module:path/to/file.py "
             "(env LOSSPROOFS_TARGET)")
    parser.addoption(
        "--json", dest="lossproofs_json", default=None, metavar="PATH",
        help="also write the closing summary (function × property → pass / fail / not "
             "provided / not run) as JSON, with the environment; never over an existing file")
    parser.addoption(
        "--json-overwrite", dest="lossproofs_json_overwrite", action="store_true",
        help="let --json replace an existing file")


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
    target = _target(config)
    # Falsifying cases print a reproduction that calls this target (hypothesis prints a case
    # with its repr alone, so the target is set once for the process).
    cases.REPRODUCE_WITH[0] = target.reproduce
    json_path = config.getoption("lossproofs_json", None)
    if json_path and Path(json_path).exists() and \
            not config.getoption("lossproofs_json_overwrite", False):
        raise pytest.UsageError(f"--json {json_path}: the file exists; remove it or add "
                                "--json-overwrite")
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(Summary(config, target), "lossproofs-summary")
        if first_failure_only():
            config._lossproofs_cells = tempfile.mkdtemp(prefix="lossproofs-cells-")
    else:
        config._lossproofs_cells = config.workerinput.get("lossproofs_cells")


# -- one reported failure per function × property × dtype ----------------------------------------
# A module that fails most properties would otherwise fail (and shrink) every parametrization
# of every property: after the first failure of a cell, the cell's other tests are skipped as
# "not run" and the closing summary counts them. The profiles that need every failure (thorough,
# and the teeth runs, which look for specific catchers) keep them, as does
# LOSSPROOFS_EVERY_FAILURE=1.
def first_failure_only() -> bool:
    return (settings._current_profile in ("dev", "ci")
            and not os.environ.get("LOSSPROOFS_EVERY_FAILURE"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist: the workers share the controller's record of failed cells."""
    node.workerinput["lossproofs_cells"] = getattr(node.config, "_lossproofs_cells", None)


def _cell_file(item) -> Path | None:
    folder = getattr(item.config, "_lossproofs_cells", None)
    info = dict(item.user_properties).get(KEY)
    if not folder or info is None:
        return None
    key = f"{info['function']}-{info['property']}-{info['dtype']}"
    return Path(folder) / hashlib.sha1(key.encode()).hexdigest()


def pytest_runtest_setup(item):
    marker = _cell_file(item)
    if marker is not None and marker.exists():
        info = dict(item.user_properties)[KEY]
        cell = " × ".join(v for v in (info["function"], info["property"], info["dtype"]) if v)
        pytest.skip(f"not run: {cell} already failed in {marker.read_text()} (one failure per "
                    "function × property × dtype; LOSSPROOFS_EVERY_FAILURE=1 runs them all)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and not hasattr(report, "wasxfail"):
        marker = _cell_file(item)
        if marker is not None and not marker.exists():
            marker.write_text(item.nodeid.split("::")[-1])
    return report


def pytest_unconfigure(config):
    folder = getattr(config, "_lossproofs_cells", None)
    if folder and not hasattr(config, "workerinput"):
        shutil.rmtree(folder, ignore_errors=True)


# Whole test files a target may declare it cannot run, by check name, through Target.notes (a
# user module's UNSUPPORTED_CHECKS dict): their tests that use the target are skipped with the
# stated reason. E.g. a backward written outside autograd has no double backward.
OPTIONAL_CHECKS = {"second order": "test_second_order.py"}


# Test files that check the suite itself, not the implementation under test: they run with
# the default target only (the teeth run the suite against broken implementations in
# subprocesses, minutes of work that says nothing about another target).
SUITE_CHECK_FILES = {"test_teeth.py": "the teeth"}


def pytest_collection_modifyitems(config, items):
    target = _target(config)
    for item in items:
        if "impl" in getattr(item, "fixturenames", ()):
            # what the closing summary files the outcome under; a test of a function the
            # target does not define is skipped here, before hypothesis runs anything
            info = label(item)
            item.user_properties.append((KEY, info))
            if info["function"] in target.FUNCTIONS and target.get(info["function"]) is None:
                item.add_marker(pytest.mark.skip(
                    reason=f"{target.name}: {target.missing_reason(info['function'])}"))
        if target.name != "torch" and item.path.name in SUITE_CHECK_FILES:
            item.add_marker(pytest.mark.skip(
                reason=f"a check of the suite itself ({SUITE_CHECK_FILES[item.path.name]}, "
                       "which do not call the target): run `lossproofs test` without --target"))
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
                item.add_marker(pytest.mark.skip(
                    reason=f"{target.name}: not provided: {check} ({reason})"))


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
