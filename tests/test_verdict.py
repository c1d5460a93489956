"""The closing verdict of `lossproofs test`: the matrix, its JSON, one failure per cell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from lossproofs.suite.summary import _NOT_PROVIDED, Cell

OFF_BY_A_BIT = '''
    """cross_entropy that adds 1e-3 to the loss; softmax right."""
    import torch.nn.functional as F

    softmax = F.softmax

    def cross_entropy(input, target, *args, **kwargs):
        return F.cross_entropy(input, target, *args, **kwargs) + 1e-3
'''


def _run(tmp_path, *args):
    (tmp_path / "off_by_a_bit.py").write_text(textwrap.dedent(OFF_BY_A_BIT), encoding="utf-8")
    env = {**os.environ, "CI": "true", "LOSSPROOFS_PROFILE": "ci"}
    return subprocess.run([sys.executable, "-m", "lossproofs", "test", "--target",
                           "module:off_by_a_bit", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_verdict_names_what_fails_and_counts_what_was_not_run_after_it(tmp_path):
    out = tmp_path / "verdict.json"
    run = _run(tmp_path, "-q", "-p", "no:xdist", "--json", str(out), "-k",
               "(test_forward or test_combinations) and float64 and "
               "(cross_entropy or softmax) and not binary")
    assert run.returncode == 1, run.stdout[-3000:]
    text = run.stdout
    assert "lossproofs verdict: module:off_by_a_bit" in text
    data = json.loads(out.read_text())
    rows = data["summary"]["rows"]
    assert rows["cross_entropy"]["forward"]["status"] == "fail"
    assert "disagrees" in rows["cross_entropy"]["forward"]["first_failure"]
    assert rows["softmax"]["forward"]["status"] == "pass"
    combos = rows["cross_entropy"]["combos"]
    # one failure reported for the float64 cell, the cell's other parametrizations not run
    assert combos["status"] == "fail" and combos["failed"] == 1
    assert combos["not_run_after_failure"] > 10
    assert data["summary"]["verdicts"]["cross_entropy"] == "FAILS"
    assert data["summary"]["verdicts"]["softmax"] == "conforms"
    assert data["environment"]["torch"]
    # never over an existing file
    again = _run(tmp_path, "-q", "--json", str(out), "-k", "test_forward")
    assert again.returncode == 4 and "exists" in again.stderr


def test_every_failure_is_run_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("LOSSPROOFS_EVERY_FAILURE", "1")
    run = _run(tmp_path, "-q", "-p", "no:xdist", "-k",
               "test_combinations and float64 and cross_entropy-mean-weight")
    assert run.returncode == 1
    assert "more not run" not in run.stdout
    assert "8 failed" in run.stdout, run.stdout[-2000:]


def test_cell_status_and_skip_classification():
    assert Cell(failed=1, passed=3).status == "fail"
    assert Cell(xfailed=2).status == "pass"
    assert Cell(not_provided=4).status == "not provided"
    assert Cell().status == "not run"
    assert _NOT_PROVIDED.search("module:m: not provided: weight (why)")
    assert _NOT_PROVIDED.search("module 'm' does not define softmax()")
    assert not _NOT_PROVIDED.search("a check of the suite itself")
