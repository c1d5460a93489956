"""The suite has teeth: it fails on every deliberately broken implementation, in the tests
that should catch that bug, by its own assertions.

Each entry of ``lossproofs.broken.CATALOGUE`` is run in a fresh ``python -m pytest`` (the
entry's test files narrowed to its function, ``--target module:lossproofs.broken.<name>``, the
derandomized ``teeth`` hypothesis profile). The test prints which tests caught the bug, so the
CI log shows it; ``python -m lossproofs report --teeth`` writes the same as a table.
"""

from __future__ import annotations

import importlib

import pytest

from lossproofs.broken import CATALOGUE, FUNCTION_KEYWORDS, teeth
from lossproofs.targets import get_target


def _id(entry):
    return entry.module


@pytest.mark.parametrize("entry", CATALOGUE, ids=_id)
def test_suite_catches_broken_implementation(entry):
    result = teeth.run(entry)
    print(result.summary())
    assert result.caught, "\n".join(
        [f"the suite did not catch {entry.module} as expected:", *result.problems(),
         "--- pytest output (tail) ---", result.output_tail[-2000:]])


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


def test_catcher_patterns_treat_brackets_literally():
    assert teeth.matches("t.py::test[a-b]", "t.py::test[a-*]")
    assert not teeth.matches("t.py::test[x]", "t.py::test[a-*]")
    assert not teeth.matches("t.py::test_b", "t.py::test_[ab]")


def test_junit_parsing_separates_failures_errors_and_skips(tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite>'
        '<testcase classname="test_a" name="test_x[p-1]">'
        '<failure message="AssertionError: off by 2">trace</failure></testcase>'
        '<testcase classname="test_a" name="test_y"><error message="boom"/></testcase>'
        '<testcase classname="test_a" name="test_z"><skipped message="s"/></testcase>'
        '<testcase classname="test_a" name="test_w"/>'
        '</testsuite></testsuites>')
    result = teeth.TeethResult(CATALOGUE[0], returncode=1)
    teeth.parse_junit(xml, result)
    assert result.failures == {"test_a.py::test_x[p-1]": "AssertionError: off by 2"}
    assert result.errors == {"test_a.py::test_y": "boom"}
    assert (result.passed, result.skipped) == (1, 1)
    assert not result.caught  # an error and missing catchers are both problems
