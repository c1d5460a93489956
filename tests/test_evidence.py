"""The evidence report: its counts are right on hand-made cases, its output is well formed, and
torch's known divergences set aside at most 5 % of any function × dtype's draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lossproofs import evidence
from lossproofs.cases import Case
from lossproofs.targets import get_target


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
