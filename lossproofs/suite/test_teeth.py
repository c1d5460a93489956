"""The suite has teeth: it fails on every deliberately broken implementation, in the tests
that should catch that bug, by its own assertions; and the same tests pass on the module's
bug-free twin, so no catch is an artifact of the module's harness.

Each entry of ``lossproofs.broken.CATALOGUE`` is run in a fresh ``python -m pytest`` (the
entry's test files narrowed to its function, ``--target module:lossproofs.broken.<name>``, the
derandomized ``teeth`` hypothesis profile), then the tests that caught it are run against the
twin (the same module with ``LOSSPROOFS_BROKEN_CONTROL=1``). The test prints which tests caught
the bug and at which example, so the CI log shows it; ``python -m lossproofs report --teeth``
writes the same as a table, and the committed copy (docs/conformance/teeth.json and teeth.md)
is checked against the run each test has just made: no extra run for freshness.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossproofs.broken import CATALOGUE, FUNCTION_KEYWORDS, _common, _examples, report, teeth
from lossproofs.targets import get_target

# The committed report, in a checkout (an installed wheel has no docs/: those checks skip).
COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "conformance"


def _id(entry):
    return entry.module


def _committed() -> dict:
    path = COMMITTED / "teeth.json"
    if not path.exists():
        pytest.skip(f"no committed teeth report at {path} (not a checkout)")
    return json.loads(path.read_text())


@pytest.mark.parametrize("entry", CATALOGUE, ids=_id)
def test_suite_catches_broken_implementation(entry):
    result = teeth.run(entry)
    print(result.summary())
    assert result.caught, "\n".join(
        [f"the suite did not catch {entry.module} as expected:", *result.problems(),
         "--- pytest output (tail) ---", result.output_tail[-2000:]])
    # The committed report must say what this run says (catchers, first failing examples, the
    # twin's verdicts): checked here, on the run just made, so freshness costs no extra run.
    committed = {r["module"]: r for r in _committed()["results"]}
    assert entry.module in committed, (
        f"docs/conformance/teeth.json has no {entry.module}: regenerate it with "
        f"`{report.COMMAND}`")
    assert teeth.record(committed[entry.module]) == teeth.record(result.as_dict()), (
        f"docs/conformance/teeth.json is stale for {entry.module}: regenerate it with "
        f"`{report.COMMAND}`")


def test_committed_teeth_report_is_current_for_the_catalogue():
    """teeth.json holds every catalogue entry as the catalogue describes it, in order, and
    teeth.md is exactly its rendering (the run's side is checked by the test above)."""
    payload = _committed()
    assert payload["generated_by"] == report.COMMAND
    fields = ("module", "function", "bug", "modelled_on", "catchers")
    assert [{k: r[k] for k in fields} for r in payload["results"]] == [
        {k: (list(v) if isinstance(v := getattr(e, k), tuple) else v) for k in fields}
        for e in CATALOGUE], f"the catalogue changed: regenerate with `{report.COMMAND}`"
    assert all(r["caught"] for r in payload["results"])
    markdown = (COMMITTED / "teeth.md").read_text()
    assert markdown == report.teeth_markdown(payload), (
        f"docs/conformance/teeth.md is not the rendering of teeth.json: regenerate with "
        f"`{report.COMMAND}`")


def test_catalogue_has_at_least_ten_documented_bugs():
    assert len(CATALOGUE) >= 10
    assert len({e.module for e in CATALOGUE}) == len(CATALOGUE)
    for entry in CATALOGUE:
        module = importlib.import_module(f"lossproofs.broken.{entry.module}")
        doc = module.__doc__ or ""
        for heading in ("Bug:", "Modelled on:", "Should be caught by:"):
            assert heading in doc, f"{entry.module} docstring lacks {heading!r}"
        assert entry.modelled_on and all(u.startswith("https://github.com/")
                                         for u in entry.modelled_on)
        assert entry.catchers and entry.function in FUNCTION_KEYWORDS


def test_every_broken_module_is_in_the_catalogue():
    """A broken module outside CATALOGUE would be evidence that nothing checks."""
    package = Path(_common.__file__).parent
    modules = {p.stem for p in package.glob("*.py")
               if not p.stem.startswith("_") and p.stem not in ("teeth", "report")}
    assert modules == {e.module for e in CATALOGUE}


@pytest.mark.parametrize("entry", CATALOGUE, ids=_id)
def test_broken_module_is_a_complete_target_that_redefines_one_function(entry):
    """Every function is present (torch's, except the broken one), so only the bug differs."""
    target = get_target(entry.target)
    assert target.name == entry.target
    torch_target = get_target("torch")
    for name, fn in target.functions.items():
        reference = torch_target.get(name)
        if name == entry.function:
            assert fn is not reference, f"{entry.module} does not redefine {name}"
        elif name != "logsumexp":  # torch.logsumexp is wrapped, not re-exported
            assert fn is reference, f"{entry.module} also changes {name}"


@pytest.mark.parametrize("entry", CATALOGUE, ids=_id)
def test_broken_module_has_a_bug_free_twin(entry):
    """The module switches its bug off in a control run (the twin the teeth run checks)."""
    source = Path(importlib.import_module(f"lossproofs.broken.{entry.module}").__file__)
    text = source.read_text()
    # control() and buggy() read the switch; _linear_chunked.with_bug(bug) calls buggy(bug).
    assert "# BUG" in text and any(s in text for s in ("control()", "buggy(", "with_bug(")), (
        f"{entry.module} has no control() / buggy() / with_bug() switch for its bug")


def test_control_switch_is_read_at_each_call(monkeypatch):
    monkeypatch.delenv(_common.CONTROL_ENV, raising=False)
    assert not _common.control() and _common.buggy("x") == {"x"}
    monkeypatch.setenv(_common.CONTROL_ENV, "1")
    assert _common.control() and _common.buggy("x") == frozenset()


def test_the_freshness_record_compares_catchers_not_parametrizations():
    """Which dtypes of a catcher failed moves with the draws; which catchers caught, and the
    twin's verdict there, is what the committed report must still say."""
    base = {"module": "m", "function": "softmax", "bug": "b", "modelled_on": [], "caught": True,
            "catchers": ["t.py::test_x[*]", "t.py::test_y"]}
    one = {**base, "caught_by": {"t.py::test_x[a]": "", "t.py::test_y": ""},
           "twin": {"t.py::test_x[a]": "passed", "t.py::test_y": "passed"}}
    other = {**base, "caught_by": {"t.py::test_x[b]": "", "t.py::test_x[c]": "",
                                   "t.py::test_y": ""},
             "twin": {"t.py::test_x[b]": "passed", "t.py::test_x[c]": "passed",
                      "t.py::test_y": "passed"}}
    assert teeth.record(one) == teeth.record(other)
    fewer = {**base, "caught_by": {"t.py::test_x[a]": ""}, "twin": {"t.py::test_x[a]": "passed"}}
    assert teeth.record(fewer) != teeth.record(one)
    twin_failed = {**one, "twin": {**one["twin"], "t.py::test_x[a]": "failed: AssertionError"}}
    assert teeth.record(twin_failed) != teeth.record(one)


def test_catcher_patterns_treat_brackets_literally():
    assert teeth.matches("t.py::test[a-b]", "t.py::test[a-*]")
    assert not teeth.matches("t.py::test[x]", "t.py::test[a-*]")
    assert not teeth.matches("t.py::test_b", "t.py::test_[ab]")


def test_junit_parsing_separates_failures_errors_and_skips(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="test_a" name="test_x[p-1]"><properties>'
        f'<property name="{_examples.EXAMPLES}" value="8"/>'
        f'<property name="{_examples.FIRST_FAILURE}" value="7"/></properties>'
        '<failure message="AssertionError: off by 2">trace</failure></testcase>'
        '<testcase classname="test_a" name="test_y"><error message="boom"/></testcase>'
        '<testcase classname="test_a" name="test_z"><skipped message="s"/></testcase>'
        '<testcase classname="test_a" name="test_w"/>'
        '</testsuite></testsuites>')
    outcomes = teeth.Outcomes(returncode=1)
    teeth.parse_junit(xml, outcomes)
    assert outcomes.failures == {"test_a.py::test_x[p-1]": "AssertionError: off by 2"}
    assert outcomes.errors == {"test_a.py::test_y": "boom"}
    assert (outcomes.passed, outcomes.skipped) == (["test_a.py::test_w"], ["test_a.py::test_z"])
    assert outcomes.first_failure == {"test_a.py::test_x[p-1]": 7}
    assert outcomes.examples == {"test_a.py::test_x[p-1]": 8}
    result = teeth.TeethResult(CATALOGUE[0], 1, outcomes.failures, outcomes.errors)
    assert not result.caught  # an error and missing catchers are both problems


def test_a_catch_the_twin_shares_is_an_artifact():
    entry = teeth.BrokenImplementation("m", "softmax", "b", ("https://github.com/o/r",),
                                       ("t.py::test_x[*]",))
    result = teeth.TeethResult(entry, 1, {"t.py::test_x[a]": "AssertionError: no"})
    assert result.twin_outcome("t.py::test_x[a]") == "not run" and not result.caught
    result.control = teeth.Outcomes(0, passed=["t.py::test_x[a]"])
    assert result.caught
    result.control = teeth.Outcomes(1, failures={"t.py::test_x[a]": "AssertionError: 0 != nan"})
    assert not result.caught
    assert "harness artifact" in " ".join(result.problems())


_COUNTED = '''
import os
from hypothesis import Phase, assume, given, settings, strategies as st

FIXED = os.environ.get("FIXED") == "1"
calls = []

@settings(max_examples=50, derandomize=True, database=None, phases=[Phase.generate])
@given(st.integers())
def test_fails_at_the_fifth_kept_example(x):
    assume(x % 2 == 0)
    calls.append(x)
    assert len(calls) < 5

@settings(max_examples=100, derandomize=True, database=None, phases=[Phase.generate],
          print_blob=True)
@given(st.integers(0, 1000))
def test_fails_unless_fixed(x):
    assert FIXED or x < 500

@settings(max_examples=7, derandomize=True, database=None)
@given(st.integers())
def test_passes(x):
    pass

def test_plain():
    assert False
'''


def _counted_run(tmp_path, *tests, **env) -> teeth.Outcomes:
    (tmp_path / "test_counted.py").write_text(_COUNTED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    junit = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", "no:xdist", "-p", _examples.__name__, f"--junitxml={junit}",
                    "-o", "junit_family=xunit1", *(tests or ["test_counted.py"])],
                   cwd=tmp_path, capture_output=True, text=True, timeout=120,
                   env={**os.environ, **env})
    outcomes = teeth.Outcomes(returncode=1)
    teeth.parse_junit(junit, outcomes)
    return outcomes


def test_example_counter_reports_the_first_failing_example(tmp_path):
    """The counting plugin on a known sequence: the fifth example kept by ``assume`` fails."""
    outcomes = _counted_run(tmp_path)
    failing = "test_counted.py::test_fails_at_the_fifth_kept_example"
    assert outcomes.first_failure[failing] == 5
    assert outcomes.examples[failing] >= 5  # the failing example is replayed to report it
    assert outcomes.examples["test_counted.py::test_passes"] == 7
    assert "test_counted.py::test_plain" not in outcomes.examples


def test_the_twin_replays_the_failing_example(tmp_path):
    """The failing example's blob, replayed: a pass where the bug is fixed (and only one
    example run), the same failure where it is not."""
    test = "test_counted.py::test_fails_unless_fixed"
    broken = _counted_run(tmp_path)
    assert test in broken.failures and broken.first_failure[test] >= 1
    replay = {_examples.REPLAY_ENV: json.dumps({test: broken.reproduce[test]})}
    fixed = _counted_run(tmp_path, test, FIXED="1", **replay)
    assert fixed.passed == [test] and fixed.replayed == [test] and fixed.examples[test] == 1
    again = _counted_run(tmp_path, test, **replay)
    assert test in again.failures and again.replayed == []
