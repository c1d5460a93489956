"""The acc_policy accuracy report (``lossproofs accuracy-linear``): its summary takes the worst
over the strata per dtype, policy and quantity; its outputs carry the environment and refuse
to be overwritten. The ULP study itself is measured by the command, not asserted here."""

from __future__ import annotations

import json

import pytest

from lossproofs.accuracy import linear as accuracy_linear


def _rec(stratum, policy, quantity, raw, floored, dtype="float32"):
    return {"stratum": stratum, "dtype": dtype, "policy": policy, "quantity": quantity,
            "raw": raw, "floored": floored}


def test_summary_is_the_worst_over_strata_per_quantity():
    records = [_rec("ordinary", "compact", "forward", 3.0, 1.0),
               _rec("extreme logits", "compact", "forward", 2.0, 5.0),
               _rec("large vocabulary", "compact", "forward", 9.0, 0.5),
               _rec("ordinary", "accurate", "forward", 1.0, 0.25),
               _rec("ordinary", "compact", "forward", 1.0, 1.0, dtype="float64")]
    rows = accuracy_linear.summarize(records)
    assert [r["dtype"] for r in rows] == ["float64", "float32", "float32"]  # dtype order
    compact = next(r for r in rows if r["dtype"] == "float32" and r["policy"] == "compact")
    assert compact["forward"] == {"raw": 9.0, "floored": 5.0, "stratum": "extreme logits"}
    assert "input" not in compact


def test_main_writes_environment_and_refuses_overwrite(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    import torch.nn.functional as F

    if not hasattr(F, "linear_cross_entropy"):
        pytest.skip("torch < 2.13 has no F.linear_cross_entropy")

    fake = [_rec("ordinary", "accurate", q, 1.0, 0.5) for q in accuracy_linear.QUANTITIES]
    monkeypatch.setattr(accuracy_linear, "ulp_study", lambda **kw: fake)
    assert accuracy_linear.main(["--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "linear_cross_entropy.json").read_text(encoding="utf-8"))
    assert report["environment"]["torch"] and report["records"] == fake
    md = (tmp_path / "linear_cross_entropy.md").read_text(encoding="utf-8")
    assert "| float32 | accurate | 0.5 (1) | 0.5 (1) | 0.5 (1) | 0.5 (1) |" in md
    with pytest.raises(FileExistsError):
        accuracy_linear.main(["--out", str(tmp_path)])
