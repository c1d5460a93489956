"""The linear cross-entropy benchmark's --quick run: it runs, its records are well formed and
sane, it carries the environment, and it refuses to overwrite. No time or memory is asserted
(benchmarks measure them)."""

from __future__ import annotations

import json

import pytest
import torch.nn.functional as F

from benchmarks import linear_cross_entropy as bench

pytestmark = pytest.mark.skipif(not hasattr(F, "linear_cross_entropy"),
                                reason="torch < 2.13 has no F.linear_cross_entropy")

KEYS = {"variant", "device", "dtype", "N", "D", "V", "pass", "median_s", "iqr_s", "peak_bytes"}


def test_quick_run_writes_well_formed_sane_records(tmp_path, capsys):
    out = tmp_path / "quick"
    assert bench.main(["--quick", "--no-progress", "--out", str(out)]) == 0
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert payload["complete"] is True and payload["environment"]["torch"]
    assert "git_commit" in payload["environment"]
    records = payload["records"]
    cases = bench.cpu_grid(quick=True)
    assert len(records) == len(cases) * len(bench.PASSES) * len(bench.VARIANTS)
    for r in records:
        assert KEYS <= set(r), set(KEYS) - set(r)
        assert r["variant"] in bench.VARIANTS and r["pass"] in bench.PASSES
        if r["status"] == "ok":
            assert r["median_s"] > 0 and r["iqr_s"] >= 0
            assert r["agrees"] is not False, r  # a variant that disagrees is not timed as if right
        if r["peak_bytes"] is not None:
            assert r["peak_bytes"] > 0
    assert payload["environment"]["cpu_model"] in (out / "results.md").read_text(encoding="utf-8")
    assert bench.main(["--quick", "--no-progress", "--out", str(out)]) == 2  # refuses overwrite
