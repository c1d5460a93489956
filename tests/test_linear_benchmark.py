"""The linear cross-entropy benchmark: its --quick run runs, its records are well formed and
sane, it carries the environment, renders its plots, refuses to overwrite and refuses a
contended machine under --strict; its derived figures (floor, roofline) are the arithmetic they
claim. No time or memory is asserted (benchmarks measure them)."""

from __future__ import annotations

import argparse
import json
import sys

import pytest
import torch

from benchmarks import _contention, _driver
from benchmarks import _linear_report as report
from benchmarks import _linear_variants as variants
from benchmarks import linear_cross_entropy as bench
from lossproofs.targets import linear as linear_targets

needs_linear_ce = pytest.mark.skipif(not linear_targets.HAS_LINEAR_CROSS_ENTROPY,
                                     reason=linear_targets.MISSING_REASON)
# the chunked variants of acc_policy values the installed torch does not have (balanced from
# torch 2.14): excluded with the reason, not timed
UNAVAILABLE = {f"chunked[{p}]": why for p, why in linear_targets.UNAVAILABLE_ACC_POLICIES.items()}

KEYS = {"variant", "device", "dtype", "N", "D", "V", "pass", "median_s", "iqr_s", "peak_bytes",
        "peak_over_logits", "floor_bytes", "total_over_floor", "roofline", "agrees", "status"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run shared by the tests that read its output (it costs tens of seconds)."""
    out = tmp_path_factory.mktemp("linear") / "quick"
    assert bench.main(["--quick", "--no-progress", "--out", str(out)]) == 0
    return out


@needs_linear_ce
def test_quick_run_writes_well_formed_sane_records(quick_run, capsys):
    out = quick_run
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert payload["complete"] is True and payload["environment"]["torch"]
    assert "git_commit" in payload["environment"]
    records = payload["records"]
    cases = bench.cpu_grid(quick=True)
    assert len(records) == len(cases) * len(variants.PASSES) * len(variants.VARIANTS)
    timed = {r["variant"] for r in records if r["status"] == "ok"}
    # on a CPU with torch ≥ 2.13 everything but Liger (CUDA only) and the acc_policy values
    # this torch does not have runs
    assert timed == set(variants.VARIANTS) - {variants.LIGER} - set(UNAVAILABLE), timed
    for r in records:
        assert KEYS <= set(r), set(KEYS) - set(r)
        assert r["variant"] in variants.VARIANTS and r["pass"] in variants.PASSES
        if r["status"] == "ok":
            assert r["median_s"] > 0 and r["iqr_s"] >= 0
            assert r["agrees"] is not False, r  # a variant that disagrees is not timed as right
            if r["variant"] != variants.MATMUL:
                assert 0 < r["roofline"] < 10, r  # sane: of order one, not a unit slip
        elif r["variant"] == variants.LIGER:
            assert r["status"] == "skipped" and "CUDA" in r["reason"]
        elif r["variant"] in UNAVAILABLE:
            assert r["status"] == "skipped" and UNAVAILABLE[r["variant"]] in r["reason"], r
        if r["peak_bytes"] is not None:
            assert r["peak_bytes"] > 0 and r["total_over_floor"] > 0
    ratios = payload["ratios"]
    assert {q["denominator"] for q in ratios} == {variants.UNFUSED}
    assert all(q["indicative"] for q in ratios)  # a smoke run says so
    md = (out / "results.md").read_text(encoding="utf-8")
    assert payload["environment"]["cpu_model"] in md
    for name in ("time_vs_V_cpu_float32.png", "memory_vs_V_cpu_float32.png"):
        assert (out / name).stat().st_size > 0 and f"({name})" in md
    assert "F.linear_cross_entropy chunked, acc_policy=compact" in md
    for variant in UNAVAILABLE:  # reported as not timed, with the reason
        assert f"| {variants.LABELS[variant]} | skipped |" in md
    assert bench.main(["--quick", "--no-progress", "--out", str(out)]) == 2  # refuses overwrite
    assert "refusing to overwrite" in capsys.readouterr().err


def _contended_calibration(device, threads, seconds=1.0):
    obs = {"others_busy_cores": 1.0, "resolution_cores": 0.02, "steal_fraction": 0.0,
           "probe": None, "loadavg": [3.0, 3.0, 3.0]}
    contended, reasons = _contention.assess(obs, threads)
    return {**obs, "contended": contended, "reasons": reasons}


@needs_linear_ce
def test_strict_refuses_a_contended_machine_before_measuring(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_driver, "calibrate", _contended_calibration)
    monkeypatch.setattr(_driver, "measure", lambda *a, **k: pytest.fail("measured anyway"))
    out = tmp_path / "strict"
    assert bench.main(["--quick", "--strict", "--no-progress", "--out", str(out)]) == 3
    assert "--strict" in capsys.readouterr().err
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert payload["contended"] is True and payload["records"] == []
    assert "CONTENDED RUN" in (out / "results.md").read_text(encoding="utf-8")


def _record(variant, pass_, median_s, V=1000, peak=None):
    case = variants.LinearCase("cpu", "float32", 10, 20, V)
    pt = {"key": case.key(pass_), "status": "ok", "reason": None, "repeats": 3,
          "contended": False,
          "variants": {variant: {"status": "ok", "median_s": median_s, "q1_s": median_s,
                                 "q3_s": median_s, "iqr_s": 0.0,
                                 "info": {} if peak is None else {"peak_bytes": peak}}}}
    return bench._record(case, pass_, variant, pt)


def test_roofline_is_the_passes_matmuls_at_the_measured_speed_over_the_time():
    recs = bench._with_roofline([_record(variants.MATMUL, "forward+backward", 2.0),
                                 _record(variants.UNFUSED, "forward+backward", 12.0)])
    # three matmuls of 2.0 s each, against 12 s: half the time is matmul
    assert recs[1]["roofline"] == pytest.approx(0.5)
    assert recs[0]["roofline"] is None and recs[0]["tflops"] == pytest.approx(
        2 * 10 * 20 * 1000 / 2.0 / 1e12)


def test_floor_counts_inputs_and_the_gradients_a_pass_returns():
    fwd = _record(variants.UNFUSED, "forward", 1.0, peak=400)
    bwd = _record(variants.UNFUSED, "forward+backward", 1.0, peak=400)
    inputs = (10 + 1000) * 20 * 4 + 8 * 10
    assert fwd["floor_bytes"] == inputs and bwd["floor_bytes"] == inputs + (10 + 1000) * 20 * 4
    assert fwd["total_over_floor"] == pytest.approx((inputs + 400) / inputs)
    assert fwd["peak_over_logits"] == pytest.approx(400 / (10 * 1000 * 4))


@pytest.mark.parametrize("kwargs, name", [({"N": 0}, "N"), ({"V": 2.5}, "V"),
                                          ({"dtype": "int64"}, "dtype")])
def test_case_rejects_bad_arguments(kwargs, name):
    args = {"device": "cpu", "dtype": "float32", "N": 4, "D": 3, "V": 5, **kwargs}
    with pytest.raises(ValueError, match=name):
        variants.LinearCase(**args)


def test_liger_is_excluded_with_the_reason_on_cpu():
    fn, why = variants._liger("cpu")
    assert fn is None and "CUDA" in why


def test_grids_sweep_v_for_the_plots():
    for grid in (bench.cpu_grid(False), bench.cuda_grid(False)):
        sweep = {(c.dtype, c.N, c.D) for c in grid if c.group == "sweep"}
        assert len(sweep) == 1
        assert len({c.V for c in grid if c.group == "sweep"}) >= 3
    assert max(c.V for c in bench.cuda_grid(False)) == 128256


@needs_linear_ce
def test_render_reproduces_from_json(quick_run, tmp_path):
    out = quick_run
    again = tmp_path / "again"
    assert report.render_file(out / "results.json", again, False) == 0
    assert (again / "results.md").read_text(encoding="utf-8") == (
        out / "results.md").read_text(encoding="utf-8")
    assert report.render_file(tmp_path / "missing.json", None, False) == 2


def test_render_without_matplotlib_says_no_plots_were_written(monkeypatch, tmp_path, capsys):
    from pathlib import Path

    from benchmarks import _render

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(_render, "_ANNOUNCED", set())
    results = Path(__file__).resolve().parents[1] / "docs/benchmarks/linear-cpu/results.json"
    assert bench.main(["--render", str(results), "--out", str(tmp_path)]) == 0
    assert ("lossproofs: matplotlib is not installed, so no plots were written "
            "(pip install 'lossproofs[bench]')") in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
    assert "None: matplotlib is not installed" in (tmp_path / "results.md").read_text(
        encoding="utf-8")


def test_target_is_refused_with_a_pointer_to_precision(capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(["--target", "0.01"])
    assert info.value.code == 2
    assert "the precision half-width is --precision" in capsys.readouterr().err
    args = argparse.ArgumentParser()
    _driver.add_common_arguments(args, "quick")
    assert _driver.config_from(args.parse_args(["--precision", "0.1"]), bench.CONFIGS).target \
        == 0.1


def test_matmul_yardstick_is_the_logits():
    case = variants.LinearCase("cpu", "float64", 3, 4, 5)
    x, w, t = variants.make_inputs(case)
    assert torch.equal(variants._matmul(x, w)(), x @ w.T)
    assert t.dtype == torch.int64 and ((t == -100) | ((t >= 0) & (t < 5))).all()


def test_an_acc_policy_torch_lacks_excludes_its_variant_not_the_point(monkeypatch):
    """A chunked variant whose acc_policy the installed torch does not have (``balanced`` on
    torch 2.14) is excluded with the reason; the other variants of the point are still set up
    (on torch 2.14.1 the whole point used to fail on ``invalid acc_policy: 'balanced'``, so the
    quick run timed nothing)."""
    if not linear_targets.HAS_LINEAR_CROSS_ENTROPY:
        pytest.skip(linear_targets.MISSING_REASON)
    present = [p for p in variants.POLICIES if p in linear_targets.ACC_POLICIES]
    monkeypatch.setattr(linear_targets, "ACC_POLICIES", tuple(present[1:]))
    monkeypatch.setattr(linear_targets, "UNAVAILABLE_ACC_POLICIES",
                        {present[0]: "removed in torch 9.9 (a test)"})
    case = variants.LinearCase("cpu", "float32", 8, 4, 16, with_compile=False)
    fns, excluded = variants._loss_functions(case, False, "inductor")
    gone = f"chunked[{present[0]}]"
    assert gone not in fns and excluded[gone][0] == "skipped"
    assert "removed in torch 9.9 (a test)" in excluded[gone][1]
    assert {f"chunked[{p}]" for p in present[1:]} | {variants.REFERENCE} <= set(fns)
    # a policy torch rejects when the options are built: that variant errs, the rest run
    monkeypatch.setattr(linear_targets, "ACC_POLICIES", (*present, "no-such-policy"))
    monkeypatch.setattr(variants, "CHUNKED", (*variants.CHUNKED, "chunked[no-such-policy]"))
    monkeypatch.setattr(variants, "POLICIES", (*variants.POLICIES, "no-such-policy"))
    fns, excluded = variants._loss_functions(case, False, "inductor")
    assert excluded["chunked[no-such-policy]"][0] == "error"
    assert "no-such-policy" in excluded["chunked[no-such-policy]"][1]
    assert {f"chunked[{p}]" for p in present} <= set(fns)


def test_plots_render_when_a_median_lies_outside_the_quartiles(tmp_path):
    """median_s is the median of the repeats' medians and q1_s/q3_s are over all blocks, so on
    a busy machine the median can fall outside [q1, q3] (seen in a --quick run on torch 2.14.1:
    "'yerr' must not contain negative values"); the time plot's bars then reach the median."""
    pytest.importorskip("matplotlib")
    from pathlib import Path

    results = Path(__file__).resolve().parents[1] / "docs/benchmarks/linear-cpu/results.json"
    payload = json.loads(results.read_text(encoding="utf-8"))
    timed = [r for r in payload["records"] if r["status"] == "ok" and r["group"] == "sweep"]
    for r in timed[:3]:
        r["q1_s"], r["q3_s"] = r["median_s"] * 1.2, r["median_s"] * 1.5  # median below q1
    for r in timed[3:6]:
        r["q1_s"], r["q3_s"] = r["median_s"] * 0.5, r["median_s"] * 0.8  # median above q3
    edited = tmp_path / "results.json"
    edited.write_text(json.dumps(payload), encoding="utf-8")
    assert report.render_file(edited, tmp_path / "out", False) == 0
    assert list((tmp_path / "out").glob("time_vs_V_*.png"))
