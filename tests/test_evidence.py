"""The evidence report: its counts are right on hand-made cases, its output is well formed,
torch's known divergences set aside at most 5 % of any function × dtype's draws, what a target
declares out is never drawn (strata about it skipped and named), and every failure is either set
aside by a ledger entry or listed with its reproduction, with exit status 1."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from lossproofs import evidence
from lossproofs.cases import Case
from lossproofs.declarations import case_families
from lossproofs.targets import Target, get_target


def test_sizes_of_an_index_case_count_rows_classes_extent_and_kept_weight():
    x = np.zeros((3, 4, 2, 5))
    t = np.array([[[0] * 5, [1] * 5]] * 2 + [[[-100] * 5, [3] * 5]])
    case = Case("cross_entropy", (x, t), {"weight": np.array([1.0, 2.0, 3.0, 4.0])})
    # kept targets: rows 0–1 hold 5 zeros and 5 ones each, row 2 holds 5 threes (-100 ignored)
    assert evidence.sizes(case) == {"N": 3, "C": 4, "K": 10,
                                    "total_weight": 2 * (5 * 1.0 + 5 * 2.0) + 5 * 4.0}


def test_nontrivial_needs_two_elements_varying_logits_and_a_nonzero_value():
    one = Case("softmax", (np.array([1.0]),), {"dim": 0})
    constant = Case("softmax", (np.array([1.0, 1.0]),), {"dim": 0})
    varying = Case("softmax", (np.array([1.0, 2.0]),), {"dim": 0})
    assert not evidence.nontrivial(one, np.array([1.0]))
    assert not evidence.nontrivial(constant, np.array([0.5, 0.5]))
    assert not evidence.nontrivial(varying, np.array([0.0, 0.0]))
    assert evidence.nontrivial(varying, np.array([0.27, 0.73]))


def test_command_writes_rows_with_the_environment_and_refuses_overwrite(tmp_path):
    args = ["--cases", "3", "--functions", "nll_loss", "--dtypes", "float32", "--out",
            str(tmp_path)]
    assert evidence.main(args) == 0
    payload = json.loads((tmp_path / "evidence.json").read_text())
    assert payload["environment"]["target"]["name"] == "torch"
    rows = payload["rows"]
    assert {"function", "dtype", "family", "cases", "nontrivial", "set_aside", "max_N",
            "max_C"} <= set(rows[0])
    (ordinary,) = [r for r in rows if r["family"] == "ordinary"]
    assert ordinary["cases"] == 3 and 0 <= ordinary["nontrivial"] <= 3
    (large,) = [r for r in rows if r["family"] == "large"]  # the size tier is counted too
    (all_row,) = [r for r in rows if r["family"] == "all"]
    assert all_row["cases"] == 3 + large["cases"] and all_row["max_N"] >= large["max_N"] > 8
    assert "## Machine" in (tmp_path / "evidence.md").read_text()
    assert evidence.main(args) == 2  # refuses to overwrite
    assert evidence.main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize("function", ["binary_cross_entropy", "binary_cross_entropy_with_logits",
                                      "nll_loss", "cross_entropy"])
def test_known_divergences_set_aside_at_most_five_percent_of_draws(function):
    """Per-case set-asides hide evidence: the ledger's predicates must mark elements, not whole
    cases, wherever the mechanism allows (functions without predicates cannot exceed 0)."""
    rows = evidence.collect(get_target("torch"), (function,), n=40, large=False)
    over = evidence.over_budget(rows)
    assert not over, [(r.dtype, r.set_aside, r.cases, r.set_aside_why) for r in over]
    assert all(r.failed == 0 for r in rows if r.family == "ordinary")


# -- declarations: what a target declares out is never drawn ---------------------------------------
def _declaring(**not_provided):
    """torch.nn.functional, declaring the given families of each function not provided."""
    return dataclasses.replace(get_target("torch"), not_provided=not_provided)


def test_declared_out_families_are_not_drawn_and_their_strata_are_skipped_and_named(
        tmp_path, monkeypatch):
    impl = _declaring(cross_entropy={"weight": "x", "probability target": "y"})
    declared = impl.declared_out("cross_entropy")
    assert declared == {"weight", "probability target"}
    drawn = evidence.draws(impl, "cross_entropy", "float32", 12)
    assert drawn and not [c for c in drawn if case_families(c) & declared]
    assert [c for c in drawn if "large" in c.tags]  # the other strata are still drawn
    monkeypatch.setattr(evidence, "get_target", lambda spec: impl)
    assert evidence.main(["--cases", "12", "--functions", "cross_entropy", "--dtypes",
                          "float32", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "evidence.json").read_text())
    families = {r["family"]: r for r in payload["rows"]}
    assert not declared & set(families)
    # the supported subset is drawn in full, not filtered down after the fact
    assert families["ordinary"]["cases"] == 12
    skipped = {s["stratum"]: s["why"] for s in payload["not_drawn"]["strata"]}
    assert skipped == {"total weight": "not provided: weight (x)",
                       "weight range": "not provided: weight (x)",
                       "probability vocabulary": "not provided: probability target (y)",
                       "probability long batch": "not provided: probability target (y)"}
    assert not set(skipped) & {t for c in drawn for t in c.tags}
    markdown = (tmp_path / "evidence.md").read_text()
    assert "## Not drawn for this target" in markdown
    assert "- cross_entropy: weight: not provided: x" in markdown
    assert ("- cross_entropy: size-tier stratum *probability vocabulary* skipped (not "
            "provided: probability target (y))") in markdown
    assert "No unexplained failure" in markdown and "## Unexplained failures" not in markdown


def test_every_reduction_declared_out_draws_nothing_and_says_why():
    impl = _declaring(binary_cross_entropy={f"reduction:{r}": "r" for r in
                                            ("none", "sum", "mean")})
    found = evidence.run(impl, ("binary_cross_entropy",), ("float64",), n=3)
    assert not found.rows and not found.failures
    assert "every reduction" in found.not_drawn.undrawable["binary_cross_entropy"]


# -- failures: each one explained by the ledger, or listed and the exit status 1 ------------------
OFF_BY = '''"""softmax, off by 1e-3 everywhere."""
import torch


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    return torch.softmax(input, dim) + 1e-3
'''


def test_an_unexplained_failure_is_listed_with_its_reproduction_and_exits_1(tmp_path, capsys):
    module = tmp_path / "off_by_a_thousandth.py"
    module.write_text(OFF_BY)
    out = tmp_path / "out"
    status = evidence.main(["--target", f"module:{module}", "--cases", "3", "--functions",
                            "softmax", "--dtypes", "float64", "--out", str(out)])
    assert status == 1
    assert "unexplained failure" in capsys.readouterr().err
    payload = json.loads((out / "evidence.json").read_text())
    failures = payload["unexplained_failures"]
    assert failures and all(f["function"] == "softmax" and f["dtype"] == "float64"
                            for f in failures)
    (all_row,) = [r for r in payload["rows"] if r["family"] == "all"]
    assert all_row["failed"] == len(failures)
    markdown = (out / "evidence.md").read_text()
    assert "unexplained failure" in markdown.split("## Per function")[0]  # prominently
    assert "## Unexplained failures" in markdown and "softmax float64: forward" in markdown
    # the reproduction calls the module and re-runs the failing check
    ordinary = next(f for f in failures if f["tier"] == "ordinary")
    assert "off_by_a_thousandth.softmax(" in ordinary["reproduction"]
    capsys.readouterr()
    exec(ordinary["reproduction"], {})
    assert "softmax forward disagrees" in capsys.readouterr().out


def test_a_failure_the_ledger_explains_is_set_aside_not_failed(tmp_path, monkeypatch):
    """torch's BCE-with-logits in float16: its ledger entries set elements aside, and the run
    exits 0; the same torch without its families (so without its ledger entries) fails on
    those very cases, which are then unexplained."""
    torch_target = get_target("torch")
    args = ["--cases", "3", "--functions", "binary_cross_entropy_with_logits", "--dtypes",
            "float16"]
    assert evidence.main([*args, "--out", str(tmp_path / "torch")]) == 0
    payload = json.loads((tmp_path / "torch" / "evidence.json").read_text())
    (all_row,) = [r for r in payload["rows"] if r["family"] == "all"]
    assert all_row["failed"] == 0 and all_row["elements_set_aside"] > 0
    assert not payload["unexplained_failures"]

    bare = dataclasses.replace(torch_target, families=frozenset())
    monkeypatch.setattr(evidence, "get_target", lambda spec: bare)
    assert evidence.main([*args, "--out", str(tmp_path / "bare")]) == 1
    failures = json.loads((tmp_path / "bare" / "evidence.json").read_text())[
        "unexplained_failures"]
    assert failures
    drawn = {repr(c).split("\n")[0]: c for c in evidence.draws(
        torch_target, "binary_cross_entropy_with_logits", "float16", 3)}
    for f in failures:  # under torch's families, a ledger entry sets the failing part aside
        outcomes = evidence.check_case(torch_target, drawn[f["case"]], f["seed"])
        assert all(o.status != "fail" for o in outcomes)
        assert any(o.divergences for o in outcomes)


def test_an_exception_of_the_target_is_a_failure_not_a_crash():
    def raises(input, dim=None, _stacklevel=3, dtype=None):
        raise RuntimeError("not implemented for this shape")

    impl = Target("raises", {"softmax": raises})
    found = evidence.run(impl, ("softmax",), ("float64",), n=2, large=False)
    assert len(found.failures) == 2
    assert all("raised RuntimeError: not implemented" in f.message for f in found.failures)
    assert found.failures[0].failed == ["forward (raised)", "gradient (raised)"]


def test_set_aside_reasons_keep_entry_names_that_contain_commas():
    from lossproofs import ledger

    name = next(d.name for d in ledger.LEDGER if ", " in d.name)
    other = next(d.name for d in ledger.LEDGER if ", " not in d.name)
    assert evidence._entry_names(f"{name}, {other}") == [name, other]
