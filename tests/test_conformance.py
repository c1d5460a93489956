"""The conformance report: it runs the suite's checks, finds real failures, reports torch's
known failures as such, carries the environment and never overwrites a result silently."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossproofs import conformance, conformance_run
from lossproofs.broken import report as teeth_report
from lossproofs.cases import Case
from lossproofs.targets import get_target

QUICK = ["--cases", "3", "--dtypes", "float64,float32"]


def _report(tmp_path, *args):
    out = tmp_path / "out"
    code = conformance.main([*QUICK, "--out", str(out), *args])
    return code, json.loads((out / "conformance.json").read_text()), (
        out / "conformance.md").read_text()


def test_torch_report_conforms_with_environment_and_known_failures(tmp_path):
    code, payload, markdown = _report(tmp_path, "--functions", "cross_entropy,nll_loss")
    assert code == 0 and payload["verdict"] == "conforms"
    env = payload["environment"]
    assert env["torch"] and env["git_commit"] and env["device"] == "cpu"
    assert payload["target"]["name"] == "torch"
    families = {c["family"] for c in payload["matrix"]}
    assert {"all", "reduction"} <= families
    cell = next(c for c in payload["matrix"]
                if (c["function"], c["family"], c["dtype"]) == ("cross_entropy", "all",
                                                                  "float64"))
    assert cell["cases"] == 3 and cell["passed"] + cell["known"] == 3
    # torch's known failures are listed as known, with their reasons, not as passes
    known = {k["case"] for k in payload["known_failures"]}
    assert "cross_entropy rejects a uint8 target with weight, smoothing and mean" in known
    assert "cross_entropy accepts a negative label_smoothing" in known
    assert all(k["status"] == "known" for k in payload["known_failures"])
    assert "## Known failures" in markdown and "issues/175084" in markdown
    assert any(e["status"] == "pass" for e in payload["errors"])


def test_report_fails_on_a_broken_implementation(tmp_path):
    code, payload, _ = _report(
        tmp_path, "--target", "module:lossproofs.broken.nll_clamps_targets", "--functions",
        "nll_loss", "--dtypes", "float64")
    assert code == 1 and payload["verdict"] != "conforms"
    failed = {e["case"] for e in payload["errors"] if e["status"] == "fail"}
    assert "target out of bounds" in failed
    assert payload["known_failures"] == []  # torch's known issues are torch's alone


def test_report_shows_a_forward_bug_with_its_reproduction(tmp_path):
    code, payload, markdown = _report(
        tmp_path, "--target", "module:lossproofs.broken.bce_unclamped", "--functions",
        "binary_cross_entropy", "--cases", "40", "--dtypes", "float64")
    assert code == 1
    cell = next(c for c in payload["matrix"] if c["family"] == "all")
    assert cell["failed"] > 0 and "reference.binary_cross_entropy(" in cell["first_failure"]
    assert "## First failure per function and dtype" in markdown


def test_missing_functions_are_reported_not_failed(tmp_path):
    code, payload, markdown = _report(tmp_path, "--target", "nn", "--functions",
                                      "logsumexp,softmax")
    assert code == 0
    assert "logsumexp" in payload["missing_functions"]
    assert "Not provided: torch.nn has no LogSumExp module" in markdown


def test_report_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "conformance.json").write_text("{}")
    code = conformance.main([*QUICK, "--functions", "softmax", "--out", str(out)])
    assert code == 2 and (out / "conformance.json").read_text() == "{}"
    assert "--overwrite" in capsys.readouterr().err
    assert conformance.main([*QUICK, "--functions", "softmax", "--out", str(out),
                             "--overwrite"]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--functions", "softmin"], "--functions 'softmin'"),
    (["--dtypes", "float8"], "--dtypes 'float8'"),
    (["--cases", "0"], "--cases 0"),
    (["--target", "no_such_target"], "--target no_such_target"),
])
def test_bad_arguments_name_the_argument(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        conformance.main([*args, "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cases_are_reproducible_from_the_seed():
    a = conformance_run.sample_cases("cross_entropy", "float32", 5, seed=7)
    b = conformance_run.sample_cases("cross_entropy", "float32", 5, seed=7)
    assert [c.reproduction() for c in a] == [c.reproduction() for c in b]
    assert len(a) == 5


def test_measure_counts_ulps_at_the_result_scale_and_fraction_of_bound():
    eps32 = 2.0**-23
    m = conformance_run.measure(np.array([1.0 + 2 * eps32]), np.array([1.0]), "float32", "forward",
                            1.0, "x")
    assert m.ok and m.ulps == pytest.approx(2.0) and 0 < m.of_bound < 1
    # an error of 1e-9 on a result of 1e-12 is 0.008 ulp at scale 1, not millions of ulps
    m = conformance_run.measure(np.array([1e-9]), np.array([1e-12]), "float32", "forward", 1.0, "x")
    assert m.ok and m.ulps < 0.01
    bad = conformance_run.measure(np.array([1.5]), np.array([1.0]), "float32", "forward", 1.0, "x")
    assert not bad.ok and bad.of_bound > 1 and "disagrees" in bad.message


def test_run_case_marks_a_case_a_divergence_covers_as_a_whole_as_known():
    from lossproofs import ledger
    entry = ledger.divergence(
        "cross_entropy rejects a uint8 target with weight, smoothing and mean")
    outcome = conformance_run.run_case(get_target("torch"), entry.example, 0)
    assert (outcome.forward, outcome.gradient) == ("known", "known")
    module = conformance_run.run_case(get_target("module:examples.numpy_losses"), entry.example, 0)
    assert (module.forward, module.gradient) == ("pass", "pass")


def test_run_case_compares_the_elements_a_divergence_does_not_affect():
    """torch's float16 BCE gradient is NaN at p = 0 or 1 (a ledger entry): those elements are
    set aside and the rest compared, so the case is neither 'known' nor failed."""
    from lossproofs import ledger
    entry = ledger.divergence("binary_cross_entropy float16 gradient at p = 0 or 1")
    outcome = conformance_run.run_case(get_target("torch"), entry.example, entry.seed)
    assert outcome.gradient == "pass"
    assert outcome.gradient_measure is not None and outcome.gradient_measure.ok


def test_teeth_markdown_lists_every_result():
    payload = {"environment": {"device": "cpu"}, "results": [{
        "module": "m", "bug": "b", "modelled_on": ["https://github.com/o/r/issues/1"],
        "caught": True, "problems": [], "seconds": 1.0,
        "caught_by": {"tests/test_forward.py::t[x]": "AssertionError: no"},
        "also_failed": {}}]}
    text = teeth_report.teeth_markdown(payload)
    assert "| `m` | b | [o/r/issues/1](https://github.com/o/r/issues/1) | caught" in text
    assert "AssertionError: no" in text


def test_case_tags_are_families_of_the_matrix():
    case = Case("nll_loss", (np.zeros((2, 3)), np.array([0, 1])), {"reduction": "sum"},
                tags=frozenset({"reduction", "weight"}))
    assert set(case.tags) <= set(conformance_run.FAMILIES)


def test_declared_not_provided_reasons_are_not_prefixed_twice():
    """A target that declares ``weight`` not provided: the error cases that pass a weight are
    reported as ``not provided: weight (why)``, never ``not provided: not provided: ...``."""
    from lossproofs.conformance_render import to_json, to_markdown
    from lossproofs.targets import Target

    torch_target = get_target("torch")
    impl = Target("declares", {"cross_entropy": torch_target.functions["cross_entropy"]},
                  torch_target.families,
                  not_provided={"cross_entropy": {"weight": "no class weights here"}})
    report = conformance_run.build(impl, ("cross_entropy",), ("float64",), n=3)
    markdown = to_markdown(to_json(report, quick=True), report)
    assert "not provided: weight (no class weights here)" in markdown
    assert "not provided: not provided" not in markdown
    assert not [line for line in markdown.splitlines()
                if line.count("not provided") > 1 and "| weight |" not in line]
