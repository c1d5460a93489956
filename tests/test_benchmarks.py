"""Tests of the benchmark code (benchmarks/cross_entropy.py and the measurement core), never of
speed: no assertion here depends on how fast anything ran or on how busy the machine is.

One quick run (the real ``--quick`` grid, with torch.compile's ``eager`` backend so the compile
path runs without inductor's compile time) feeds the schema, Markdown, plot, refusal and
comparison checks. The measurement core is tested with its example suite in real worker
processes, and its arithmetic (contention verdicts, intervals over repeats, precision
targeting, run-to-run comparison) on synthetic numbers.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import _contention, _driver, _measure, _variants
from benchmarks import _cross_entropy_report as report
from benchmarks import cross_entropy as bench
from benchmarks._measure import MeasureConfig, Point, Suite
from benchmarks._memory import peak_bytes
from benchmarks._progress import PlainProgress, progress_bar
from benchmarks._render import format_bytes, format_time
from benchmarks._stats import (
    compare_runs,
    paired_log_ratio,
    repeat_interval,
    summarize,
    t_quantile,
)
from benchmarks._variants import (
    COMPOSED_F,
    FORWARD,
    FORWARD_BACKWARD,
    FUSED_F,
    NAIVE,
    PASSES,
    VARIANTS,
    BenchmarkCase,
    make_inputs,
    prepare,
)

RECORD_KEYS = {"variant", "device", "dtype", "N", "C", "pass", "median_s", "iqr_s",
               "peak_bytes", "gbps", "roofline_fraction", "status", "reason", "targets",
               "min_bytes", "repeats", "contended", "contention_reasons", "others_busy_cores"}
RATIO_KEYS = {"numerator", "denominator", "ratio", "ci_low", "ci_high", "rel_half_width",
              "repeats", "repeat_ratios", "target_met", "indicative", "contended"}
ENV_KEYS = {"torch", "numpy", "cpu_model", "torch_num_threads", "gpu_name", "git_commit"}
QUIET = {"others_busy_cores": 0.02, "resolution_cores": 0.02, "steal_fraction": 0.0}
BUSY = {"others_busy_cores": 1.0, "resolution_cores": 0.02, "steal_fraction": 0.0}


# ---------------------------------------------------------------------------------------------
# The quick run, once


def test_quick_run_end_to_end(tmp_path, capsys):
    """The real ``--quick`` grid, run once (one test, so pytest-xdist runs it on one worker),
    then every check of its output."""
    out = tmp_path / "quick"
    rc = bench.main(["--quick", "--compile-backend", "eager", "--no-progress", "--out", str(out)])
    assert rc == 0
    run = out, json.loads((out / "results.json").read_text(encoding="utf-8"))
    terminal = capsys.readouterr()
    _check_quick_run_completes_with_every_case(run)
    _check_json_schema_environment_and_contention(run, terminal)
    _check_every_measurable_variant_was_measured(run)
    _check_ratios_have_repeat_intervals_labelled_indicative(run)
    _check_markdown_has_machine_caption_above_every_table(run)
    _check_plots_are_png_files(run)
    _check_second_run_to_same_out_refuses(run, capsys)
    _check_render_from_json_refuses_then_overwrites(run, tmp_path, capsys)
    _check_compare_of_a_run_with_itself(run, tmp_path, capsys)


def _check_quick_run_completes_with_every_case(quick_run):
    _, payload = quick_run
    assert payload["complete"] is True
    assert payload["schema"] == bench.SCHEMA
    expected = {(c.dtype, c.N, c.C, c.targets, p) for c in bench.cpu_grid(quick=True)
                for p in PASSES}
    seen = {(r["dtype"], r["N"], r["C"], r["targets"], r["pass"]) for r in payload["records"]}
    assert seen == expected
    for key in expected:  # every variant has a record per case and pass, measured or not
        names = {r["variant"] for r in payload["records"]
                 if (r["dtype"], r["N"], r["C"], r["targets"], r["pass"]) == key}
        assert names == set(VARIANTS)


def _check_json_schema_environment_and_contention(quick_run, terminal):
    _, payload = quick_run
    assert ENV_KEYS <= set(payload["environment"])
    # The default thread count is one: nothing to oversubscribe on a busy 2-core machine.
    assert payload["environment"]["torch_num_threads"] == 1 == payload["config"]["threads"]
    bw = payload["bandwidth"]
    assert bw["read_gbps"] > 0 and bw["copy_gbps"] > 0
    cal = payload["calibration"]
    assert isinstance(cal["contended"], bool) and isinstance(cal["reasons"], list)
    assert isinstance(payload["contended"], bool)
    # Whatever the machine's state, the flag and the warnings agree in all three outputs.
    assert bool(payload["warnings"]) == payload["contended"]
    assert ("CONTENDED RUN" in terminal.out) == payload["contended"]
    assert ("WARNING: contention" in terminal.err) == payload["contended"]
    for rec in payload["records"]:
        assert RECORD_KEYS <= set(rec), rec
        assert isinstance(rec["contended"], bool)
        assert rec["status"] in {"ok", "skipped", "error", "oom"}
        if rec["status"] != "ok":
            assert rec["reason"], rec
            continue
        assert rec["repeats"] == 3 and len(rec["repeat_medians_s"]) == 3
        assert math.isfinite(rec["median_s"]) and rec["median_s"] > 0
        assert rec["q1_s"] <= rec["q3_s"] and rec["iqr_s"] >= 0
        assert rec["gbps"] > 0 and rec["roofline_fraction"] > 0
        assert rec["peak_bytes"] is not None and rec["peak_bytes"] >= 0, rec
        assert rec["agrees"] is True, rec
    if payload["contended"]:
        assert any(r["contended"] for r in payload["records"]) or cal["contended"]


def _check_every_measurable_variant_was_measured(quick_run):
    _, payload = quick_run
    ok = {(r["variant"], r["pass"]) for r in payload["records"] if r["status"] == "ok"}
    for name in (*[v for v, k in VARIANTS.items() if k in {"fused", "composed", "naive"}],
                 _variants.COMPILED, _variants.REFERENCE):
        for pass_ in PASSES:
            assert (name, pass_) in ok, (name, pass_)
    reasons = {r["reason"] for r in payload["records"] if r["status"] == "skipped"}
    assert "torch.compile not run for this case (grid budget)" in reasons
    assert "NumPy has no bfloat16" in reasons


def _check_ratios_have_repeat_intervals_labelled_indicative(quick_run):
    _, payload = quick_run
    pairs = {(r["N"], r["C"], r["targets"], r["dtype"], r["pass"])
             for r in payload["ratios"] if (r["numerator"], r["denominator"])
             == (FUSED_F, COMPOSED_F)}
    assert len(pairs) == 2 * len(bench.cpu_grid(quick=True))
    for r in payload["ratios"]:
        assert RATIO_KEYS <= set(r), r
        for key in ("ratio", "ci_low", "ci_high"):
            assert math.isfinite(r[key]) and r[key] > 0, r
        assert r["ci_low"] <= r["ratio"] <= r["ci_high"]
        assert r["repeats"] == 3 == len(r["repeat_ratios"])
        assert min(r["repeat_ratios"]) <= r["ratio"] <= max(r["repeat_ratios"])
        assert r["indicative"] is True  # a quick run never claims precision
        assert r["target_met"] == (r["rel_half_width"] <= r["target"])


def _check_markdown_has_machine_caption_above_every_table(quick_run):
    out, payload = quick_run
    text = (out / "results.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("| N×C |")
               or line.startswith("| dtype |")]
    assert headers
    for i in headers:
        assert lines[i - 2].startswith("_Machine: "), lines[i - 2]
        assert payload["environment"]["cpu_model"] in lines[i - 2]
    for heading in ("## Time per call", "## Ratios with 95 % intervals over worker repeats",
                    "## Peak memory", "## Roofline: fraction of the measured bandwidth",
                    "## Plots", "Indicative only", "Before the grid:", "Precision:"):
        assert heading in text
    assert ("CONTENDED RUN" in text) == payload["contended"]
    assert f"`{payload['environment']['torch']}`" in text
    assert text == report.markdown(payload) + "\n## Plots\n\n" + "\n".join(
        f"![{p.stem}]({p.name})" for p in sorted(out.glob("*.png"), key=_png_order)) + "\n"


def _png_order(path: Path) -> tuple[str, str]:
    kind, _, rest = path.stem.partition("_vs_C_")
    return rest, {"time": "0", "ratio": "1"}[kind]


def _check_plots_are_png_files(quick_run):
    out, _ = quick_run
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} == {"time_vs_C_cpu_float32.png", "ratio_vs_C_cpu_float32.png"}
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_second_run_to_same_out_refuses(quick_run, capsys):
    out, _ = quick_run
    before = (out / "results.json").read_bytes()
    rc = bench.main(["--quick", "--no-compile", "--no-progress", "--out", str(out)])
    assert rc == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before


def _check_render_from_json_refuses_then_overwrites(quick_run, tmp_path, capsys):
    out, _ = quick_run
    target = tmp_path / "rendered"
    args = ["--render", str(out / "results.json"), "--out", str(target)]
    assert bench.main(args) == 0
    assert (target / "results.md").read_text(encoding="utf-8") == (
        out / "results.md").read_text(encoding="utf-8")
    assert bench.main(args) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert bench.main([*args, "--overwrite"]) == 0


def _check_compare_of_a_run_with_itself(quick_run, tmp_path, capsys):
    out, payload = quick_run
    dest = tmp_path / "compared"
    results = str(out / "results.json")
    assert bench.main(["--compare", results, results, "--out", str(dest)]) == 0
    assert "median run-to-run change 0 %" in capsys.readouterr().out
    rep = json.loads((dest / "reproducibility.json").read_text(encoding="utf-8"))
    assert rep["matched"] == len(payload["ratios"])
    assert rep["median_change"] == 0 and rep["share_a_contains_b"] == 1.0
    text = (dest / "reproducibility.md").read_text(encoding="utf-8")
    assert "median run-to-run change" in text and "_Machine: " in text
    assert bench.main(["--compare", results, results, "--out", str(dest)]) == 2


# ---------------------------------------------------------------------------------------------
# --strict, interruption, command line


def _contended_calibration(device, threads, seconds=1.0):
    obs = {**BUSY, "probe": None, "loadavg": [3.0, 3.0, 3.0]}
    contended, reasons = _contention.assess(obs, threads)
    return {**obs, "contended": contended, "reasons": reasons}


def test_strict_refuses_a_contended_machine_before_measuring(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_driver, "calibrate", _contended_calibration)
    monkeypatch.setattr(_driver, "measure", lambda *a, **k: pytest.fail("measured anyway"))
    out = tmp_path / "strict"
    assert bench.main(["--quick", "--strict", "--no-progress", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "--strict" in err and "other processes kept 1.00 cores busy" in err
    payload = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert payload["contended"] is True and payload["complete"] is False
    assert payload["records"] == [] and payload["warnings"]
    assert "CONTENDED RUN" in (out / "results.md").read_text(encoding="utf-8")


def test_strict_stops_at_the_first_contended_point(monkeypatch):
    """In real workers: the parent's verdict on a worker's observation stops the run."""
    real = _contention.assess
    monkeypatch.setattr(_contention, "assess", lambda obs, threads, cores=None: (
        (True, ["simulated neighbour"]) if "wall_s" in obs else real(obs, threads, cores)))
    suite = Suite("benchmarks._measure:example_setup", (("a", "b"),))
    points = [Point("p1", {"n": 500}), Point("p2", {"n": 500})]
    config = MeasureConfig(block_s=0.001, point_budget_s=0.01, strict=True, idle_sample_s=0.05)
    with pytest.raises(_measure.ContentionError, match="1 of 1 points") as info:
        _measure.measure(suite, points, config, calibration={"contended": False, "reasons": []})
    measured = info.value.result["points"]
    assert [p["key"] for p in measured] == ["p1"] and measured[0]["contended"] is True


def test_interrupted_run_keeps_finished_repeats(tmp_path, monkeypatch):
    cases = [BenchmarkCase("cpu", "float32", 8, 5, with_compile=False)]
    calls = {"n": 0}

    def fake_worker(suite, points, config, repeat, sink, on_output=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        for p in points:
            sink.append(_fake_output(p.key, repeat, [1.0, 1.1, 1.2], [1.0, 1.0, 1.0]))
        return None

    monkeypatch.setattr(_measure, "_run_worker", fake_worker)
    monkeypatch.setattr(_driver, "calibrate", lambda *a: {**QUIET, "contended": False,
                                                        "reasons": []})
    config = MeasureConfig(block_s=0.001, idle_sample_s=0.01)
    with pytest.raises(KeyboardInterrupt):
        bench.run("cpu", True, tmp_path, config, compile_enabled=False, progress=False,
                  cases=cases)
    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert payload["complete"] is False
    fused = [r for r in payload["records"] if r["variant"] == FUSED_F]
    assert {r["pass"] for r in fused} == set(PASSES) and all(r["repeats"] == 1 for r in fused)
    assert "INCOMPLETE" in (tmp_path / "results.md").read_text(encoding="utf-8")


def _fake_output(key, repeat, a_blocks, b_blocks, observation=None):
    return {"key": key, "repeat": repeat, "status": "ok", "reason": None, "excluded": {},
            "info": {}, "observation": observation or dict(QUIET),
            "variants": {FUSED_F: {"blocks": a_blocks, "number": 10},
                         COMPOSED_F: {"blocks": b_blocks, "number": 10}}}


@pytest.mark.parametrize("module", ["cross_entropy", "training_equivalence"])
def test_main_has_help(module, capsys):
    import importlib

    mod = importlib.import_module(f"benchmarks.{module}")
    with pytest.raises(SystemExit) as info:
        mod.main(["--help"])
    assert info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_target_on_a_benchmark_points_at_precision(capsys):
    """``--target`` names an implementation everywhere else in lossproofs; here it is refused
    with a pointer to ``--precision``, whatever its value."""
    for value in (["module:my_losses"], ["0.05"], []):
        with pytest.raises(SystemExit) as info:
            bench.main(["--quick", "--target", *value])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert ("--target names an implementation elsewhere in lossproofs; the precision "
                "half-width is --precision") in err
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    text = capsys.readouterr().out
    assert "--precision F" in text and "--target" not in text


def test_precision_is_the_ratios_wanted_half_width(capsys):
    args = bench._parser().parse_args(["--quick", "--precision", "0.05"])
    assert _driver.config_from(args, bench.CONFIGS).target == 0.05
    assert _driver.config_from(bench._parser().parse_args([]), bench.CONFIGS).target == 0.02
    assert bench.main(["--quick", "--precision", "0", "--no-progress"]) == 2
    assert "--precision must be a fraction > 0" in capsys.readouterr().err


def test_usage_names_the_command_it_was_run_as(capsys):
    from lossproofs import cli

    with pytest.raises(SystemExit):
        cli.main(["bench", "cross-entropy", "--quick", "--threads", "x"])
    assert "usage: lossproofs bench cross-entropy " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m benchmarks.cross_entropy ")


MATPLOTLIB_LINE = ("lossproofs: matplotlib is not installed, so no plots were written "
                   "(pip install 'lossproofs[bench]')")


@pytest.fixture
def no_matplotlib(monkeypatch):
    """A Python without matplotlib (``import matplotlib`` raises ImportError), and a process
    that has not announced it yet."""
    from benchmarks import _render

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    monkeypatch.setattr(_render, "_ANNOUNCED", set())


def test_without_matplotlib_missing_plots_are_announced(no_matplotlib, tmp_path, capsys):
    results = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "results.json"
    for out in (tmp_path / "a", tmp_path / "b"):
        assert bench.main(["--render", str(results), "--out", str(out)]) == 0
        assert not list(out.glob("*.png"))
        markdown = (out / "results.md").read_text(encoding="utf-8")
        assert ("## Plots\n\nNone: matplotlib is not installed, so no plots were written "
                "(pip install 'lossproofs[bench]').") in markdown
    err = capsys.readouterr().err
    assert err.count(MATPLOTLIB_LINE) == 1, err  # one line, however many reports
    base = _driver.base_payload("schema", "cpu", True, _driver.QUICK, False, "eager", [])
    assert base["notes"] == [MATPLOTLIB_LINE.removeprefix("lossproofs: ")]


def test_training_without_scikit_learn_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    from lossproofs import cli

    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    out = tmp_path / "training"
    assert cli.main(["bench", "training", "--quick", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "scikit-learn is not installed" in err and "pip install 'lossproofs[bench]'" in err
    assert "--mnist DIR" in err and "Traceback" not in err
    assert not out.exists()  # said before anything was made


def test_training_without_matplotlib_says_so_in_its_results(no_matplotlib, tmp_path, capsys):
    from benchmarks import training_equivalence as te

    out = tmp_path / "training"
    assert te.main(["--quick", "--no-naive", "--no-progress", "--out", str(out)]) == 0
    assert MATPLOTLIB_LINE in capsys.readouterr().err
    assert not (out / "loss_curves.png").exists()
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["loss_curves_png"] is None
    assert results["notes"] == [MATPLOTLIB_LINE.removeprefix("lossproofs: ")]
    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert "no plot: matplotlib is not installed" in markdown
    assert "`loss_curves.png` plots them" not in markdown


def test_render_missing_json_is_a_clear_error(tmp_path, capsys):
    assert bench.main(["--render", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_gpu_exits_with_message(tmp_path, capsys):
    assert bench.main(["--device", "cuda", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "no CUDA GPU" in err
    assert not (tmp_path / "x").exists()


def test_cuda_grid_covers_dtypes_and_131072_classes():
    cases = bench.cuda_grid(quick=False)
    assert {c.dtype for c in cases} == {"float32", "bfloat16", "float16"}
    assert any(c.C == 131072 and c.with_compile for c in cases)
    assert {c.targets for c in cases} == set(_variants.TARGET_KINDS)


def test_full_cpu_grid_limits_the_reference_to_small_shapes():
    for case in bench.cpu_grid(quick=False):
        assert case.with_reference == (case.N * case.C <= bench.REFERENCE_MAX_ELEMENTS)


def test_bad_repeat_settings_are_a_usage_error(capsys):
    assert bench.main(["--quick", "--min-repeats", "1", "--no-progress"]) == 2
    assert "min_repeats" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The measurement core in real worker processes (its example suite)


def test_measure_example_suite_in_workers():
    suite = Suite("benchmarks._measure:example_setup", (("a", "b"), ("b", "a")))
    points = [Point("ok", {"n": 2000}), Point("skip", {"n": 10, "skip_b": True}),
              Point("fail", {"fail": True}), Point("oom", {"oom": True})]
    config = MeasureConfig(block_s=0.001, point_budget_s=0.01, min_repeats=2, max_repeats=2,
                           idle_sample_s=0.05)
    bar = progress_bar(1, "test", disable=True)
    result = _measure.measure(suite, points, config, progress=bar)
    by_key = {p["key"]: p for p in result["points"]}
    assert result["complete"] is True and isinstance(result["contended"], bool)
    ok = by_key["ok"]
    assert ok["status"] == "ok" and ok["repeats"] == 2 and len(ok["observations"]) == 2
    assert ok["variants"]["a"]["info"] == {"repeat_seen": 0}
    ab, ba = ok["ratios"]
    assert ab["repeats"] == 2 and ab["ci_low"] <= ab["ratio"] <= ab["ci_high"]
    assert ab["ratio"] * ba["ratio"] == pytest.approx(1.0)  # A/B and B/A alike, on logs
    assert ab["ci_low"] * ba["ci_high"] == pytest.approx(1.0)
    assert by_key["skip"]["variants"]["b"] == {"status": "skipped", "reason": "asked to skip b",
                                               "info": {}}
    assert by_key["skip"]["ratios"] == []
    assert by_key["fail"]["status"] == "error" and "asked to fail" in by_key["fail"]["reason"]
    assert by_key["oom"]["status"] == "oom"
    assert by_key["fail"]["repeats"] == 0 == by_key["oom"]["repeats"]  # not repeated
    assert bar.n == 2 + 2 + 1 + 1  # two repeats of the good points, one of the failed ones
    for obs in ok["observations"]:
        assert {"wall_s", "own_cores", "others_busy_cores", "steal_fraction"} <= set(obs)


# ---------------------------------------------------------------------------------------------
# Contention verdicts


def test_quiet_machine_is_not_contended():
    assert _contention.assess(QUIET, threads=1, cores=2) == (False, [])


def test_a_cpu_bound_neighbour_is_contended_and_oversubscribes_two_threads():
    contended, reasons = _contention.assess(BUSY, threads=1, cores=2)
    assert contended and "1.00 cores busy" in reasons[0] and len(reasons) == 1
    contended, reasons = _contention.assess(BUSY, threads=2, cores=2)
    assert contended and any(r.startswith("oversubscribed") for r in reasons)


def test_busy_cores_within_the_jiffy_resolution_do_not_count():
    assert not _contention.assess({"others_busy_cores": 0.4, "resolution_cores": 0.2},
                                  threads=1, cores=2)[0]


@pytest.mark.parametrize(("observation", "needle"), [
    ({"steal_fraction": 0.2}, "steal"),
    ({"probe": {"speedup": 0.4}}, "probe kernel"),
    ({"gpu": {"other_processes": [4242]}}, "4242"),
    ({"gpu": {"other_memory_bytes": 8 * 2**30}}, "GiB"),
])
def test_each_kind_of_evidence_flags_contention(observation, needle):
    contended, reasons = _contention.assess(observation, threads=2, cores=2)
    assert contended and needle in " ".join(reasons)


def test_one_thread_probe_is_no_evidence():
    assert not _contention.assess({"probe": {"speedup": 0.4}}, threads=1, cores=2)[0]


def test_describe_sums_up_the_worst_evidence():
    text = _contention.describe([QUIET, BUSY, {**BUSY, "others_busy_cores": 1.5}], threads=1)
    assert "1.00–1.50 cores busy" in text


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux's /proc/stat")
def test_cpu_monitor_reports_every_field():
    obs = _contention.idle_sample(0.05)
    assert obs["others_busy_cores"] >= 0 and obs["resolution_cores"] > 0
    assert 0 <= obs["steal_fraction"] <= 1 and obs["wall_s"] > 0
    probe = _contention.thread_probe(1, "cpu", calls=3)
    assert probe["threads_s"] > 0 and probe["one_thread_s"] > 0


# ---------------------------------------------------------------------------------------------
# Interval arithmetic, precision targeting, run-to-run comparison


def test_repeat_interval_matches_textbook_t_interval():
    rng = np.random.default_rng(7)
    logs = list(np.log(1.3) + rng.normal(0, 0.05, size=6))
    mean, sd = statistics.fmean(logs), statistics.stdev(logs)
    t975_df5 = 2.570581836  # Student t, 97.5 % quantile, 5 degrees of freedom (tables)
    r = repeat_interval(logs)
    half = t975_df5 * sd / math.sqrt(6)
    assert r.ratio == pytest.approx(math.exp(mean))
    assert (r.low, r.high) == pytest.approx((math.exp(mean - half), math.exp(mean + half)))
    assert r.rel_half_width == pytest.approx(math.expm1(half)) and r.repeats == 6


def test_identical_repeats_give_zero_width_and_two_is_the_minimum():
    r = repeat_interval([math.log(0.8)] * 3)
    assert r.ratio == pytest.approx(0.8) == pytest.approx(r.low) and r.rel_half_width == 0
    with pytest.raises(ValueError, match="at least 2"):
        repeat_interval([0.1])


def test_paired_log_ratio_pairs_rounds_and_rejects_bad_series():
    assert paired_log_ratio([2.0, 4.0], [1.0, 2.0]) == pytest.approx(math.log(2))
    # One disturbed round (the 20) does not move the estimate: the median of the round ratios.
    assert paired_log_ratio([2.0, 2.2, 20.0], [1.0, 1.1, 1.0]) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="equally long"):
        paired_log_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        paired_log_ratio([1.0, 0.0], [1.0, 1.0])


def test_aggregate_takes_the_interval_from_repeats_not_blocks():
    """Within each repeat the blocks agree exactly; between repeats they do not: the interval
    must show the between-repeat spread."""
    outs = [_fake_output("p", i, [r] * 4, [1.0] * 4) for i, r in enumerate((1.0, 1.1, 0.9))]
    config = MeasureConfig()
    agg = _measure.aggregate_point(Point("p", {}), outs, Suite("x:y", ((FUSED_F, COMPOSED_F),)),
                                   config)
    (ratio,) = agg["ratios"]
    expected = repeat_interval([math.log(1.0), math.log(1.1), math.log(0.9)])
    assert (ratio["ratio"], ratio["ci_low"], ratio["ci_high"]) == pytest.approx(
        (expected.ratio, expected.low, expected.high))
    assert ratio["target_met"] is False and ratio["contended"] is False
    assert agg["variants"][FUSED_F]["repeat_medians_s"] == [1.0, 1.1, 0.9]
    busy = [*outs[:2], _fake_output("p", 2, [0.9] * 4, [1.0] * 4, observation=dict(BUSY))]
    agg = _measure.aggregate_point(Point("p", {}), busy,
                                   Suite("x:y", ((FUSED_F, COMPOSED_F),)), config)
    assert agg["contended"] is True and agg["ratios"][0]["indicative"] is True


def test_precision_targeting_decides_further_repeats():
    config = MeasureConfig(min_repeats=3, max_repeats=5, target=0.02, time_cap_s=100)
    ok = [{"status": "ok"}] * 3
    wide = {"ratios": [{"target_met": False}]}
    narrow = {"ratios": [{"target_met": True}]}
    assert _measure.needs_more_repeats(None, ok[:2], config, 0.0)  # below the minimum
    assert _measure.needs_more_repeats(wide, ok, config, 50.0)  # too wide, time left
    assert not _measure.needs_more_repeats(narrow, ok, config, 50.0)  # precise enough
    assert not _measure.needs_more_repeats(wide, ok, config, 100.0)  # time cap
    assert not _measure.needs_more_repeats(wide, [{"status": "ok"}] * 5, config, 0.0)  # max
    assert not _measure.needs_more_repeats(wide, [{"status": "oom"}], config, 0.0)


def _ratio_rec(point, ratio, low, high):
    return {"point": point, "numerator": "a", "denominator": "b", "ratio": ratio,
            "ci_low": low, "ci_high": high}


def test_compare_runs_counts_changes_and_containment():
    a = [_ratio_rec("p1", 1.00, 0.98, 1.02), _ratio_rec("p2", 2.00, 1.90, 2.10),
         _ratio_rec("p3", 0.50, 0.49, 0.51), _ratio_rec("only-a", 1.0, 0.9, 1.1)]
    b = [_ratio_rec("p1", 1.01, 1.00, 1.02), _ratio_rec("p2", 2.20, 2.15, 2.25),
         _ratio_rec("p3", 0.50, 0.45, 0.55)]
    rep = compare_runs(a, b)
    assert rep["matched"] == 3 and rep["only_a"] == 1 and rep["only_b"] == 0
    assert rep["median_change"] == pytest.approx(0.01)
    assert rep["max_change"] == pytest.approx(0.10)
    assert rep["share_change_above_5pct"] == pytest.approx(1 / 3)
    assert rep["share_a_contains_b"] == pytest.approx(2 / 3)  # p2's 2.2 is outside [1.9, 2.1]
    assert rep["share_b_contains_a"] == pytest.approx(2 / 3)  # p2's 2.0 is outside [2.15, 2.25]
    assert rep["non_overlapping"] == 1


def test_t_quantile_fallback_without_scipy(monkeypatch):
    with_scipy = [t_quantile(0.975, df) for df in (1, 5, 14, 20, 25, 60)]
    monkeypatch.setitem(sys.modules, "scipy", None)  # as on a machine without scipy
    without = [t_quantile(0.975, df) for df in (1, 5, 14, 20, 25, 60)]
    assert without == pytest.approx(with_scipy, rel=1e-4)
    with pytest.raises(ValueError, match="probability"):
        t_quantile(0.95, 5)


def test_summarize_matches_statistics_quantiles():
    times = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    q1, med, q3 = statistics.quantiles(times, n=4, method="inclusive")
    s = summarize(times)
    assert (s.q1_s, s.median_s, s.q3_s) == pytest.approx((q1, med, q3))
    assert s.iqr_s == pytest.approx(q3 - q1) and s.blocks == 7


@pytest.mark.parametrize(("rec", "text"), [
    ({"ratio": 0.95, "ci_low": 0.93, "ci_high": 0.97, "target_met": True}, "0.95 [0.93, 0.97]"),
    ({"ratio": 0.95, "ci_low": 0.8, "ci_high": 1.1, "target_met": False}, "0.95 [0.8, 1.1] †"),
    ({"ratio": 1.0, "ci_low": 0.9, "ci_high": 1.1, "indicative": True, "target_met": True},
     "~1 [0.9, 1.1]"),
    ({"ratio": 1.0, "ci_low": 0.9, "ci_high": 1.1, "indicative": True, "contended": True,
      "target_met": True}, "1 [0.9, 1.1] ⚠"),
    ({"ratio": 1.0, "ci_low": None, "ci_high": None}, "1 (no interval)"),
])
def test_ratio_cell_never_looks_more_precise_than_it_is(rec, text):
    assert report.ratio_cell(rec) == text


# ---------------------------------------------------------------------------------------------
# The variants and their inputs


def test_disagreeing_variant_is_flagged(monkeypatch):
    real = _variants._loss_functions

    def with_wrong_composed(case):
        losses = dict(real(case))
        losses[COMPOSED_F] = lambda x, t: 2 * real(case)[COMPOSED_F](x, t)  # deliberately wrong
        return losses

    monkeypatch.setattr(_variants, "_loss_functions", with_wrong_composed)
    monkeypatch.setattr(_variants, "_CACHE", {})
    case = BenchmarkCase("cpu", "float32", 16, 9, with_compile=False)
    prepared = _variants.setup_point(_variants.point(case, FORWARD, False).params, repeat=0)
    assert prepared.info[COMPOSED_F]["agrees"] is False
    assert prepared.info[FUSED_F]["agrees"] is True
    assert prepared.info[FUSED_F]["peak_bytes"] is not None
    assert "⚠" in report._cell({"status": "ok", "agrees": False, "median_s": 1e-3,
                                "iqr_s": 1e-4}, "time")


@pytest.mark.parametrize("targets", _variants.TARGET_KINDS)
@pytest.mark.parametrize("pass_", PASSES)
def test_variants_agree_with_fused_loss(targets, pass_):
    case = BenchmarkCase("cpu", "float64", 6, 5, targets=targets)
    x, t = make_inputs(case, seed=3)
    prep = prepare(case, pass_, x, t)
    expected = _variants.as_tensor(prep.calls[FUSED_F]())
    assert set(prep.calls) >= {FUSED_F, COMPOSED_F, NAIVE, _variants.REFERENCE}
    for name, call in prep.calls.items():
        got = _variants.as_tensor(call()).reshape(expected.shape)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12, msg=name)


def test_ignore_index_inputs_keep_a_target():
    case = BenchmarkCase("cpu", "float32", 200, 4, targets="ignore_index")
    _, t = make_inputs(case)
    ignored = int((t == _variants.IGNORE_INDEX).sum())
    assert 0 < ignored < case.N and t[0] != _variants.IGNORE_INDEX


def test_min_bytes_counts_logits_targets_and_gradient():
    n, c = 32, 1000
    index = BenchmarkCase("cpu", "float32", n, c)
    assert index.min_bytes(FORWARD) == n * c * 4 + n * 8
    assert index.min_bytes(FORWARD_BACKWARD) == 2 * n * c * 4 + n * 8
    prob = BenchmarkCase("cpu", "bfloat16", n, c, targets="probability")
    assert prob.min_bytes(FORWARD) == 2 * n * c * 2
    assert prob.min_bytes(FORWARD_BACKWARD) == 3 * n * c * 2


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"dtype": "int8"}, "dtype"), ({"targets": "soft"}, "targets"), ({"N": 0}, "N"),
])
def test_case_rejects_bad_arguments(kwargs, name):
    args = {"device": "cpu", "dtype": "float32", "N": 2, "C": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        BenchmarkCase(**args)


def test_measure_config_rejects_bad_repeats():
    with pytest.raises(ValueError, match="min_repeats"):
        MeasureConfig(min_repeats=1)


def test_cpu_peak_memory_sees_materialised_intermediates():
    case = BenchmarkCase("cpu", "float32", 256, 512, with_compile=False)
    x, t = make_inputs(case)
    prep = prepare(case, FORWARD, x, t, only=(FUSED_F, NAIVE))
    fused, method = peak_bytes(prep.calls[FUSED_F], "cpu")
    naive, _ = peak_bytes(prep.calls[NAIVE], "cpu")
    if fused is None:
        pytest.skip(method)
    # Fused keeps log_softmax (N·C); naive holds softmax and its log at once (2·N·C).
    assert fused >= case.logits_bytes
    assert naive >= 2 * case.logits_bytes


def test_progress_bar_without_tqdm(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    bar = progress_bar(3, "demo")
    assert isinstance(bar, PlainProgress)
    bar.set_postfix_str("case")
    bar.update(3)
    bar.close()
    assert "3/3" in capsys.readouterr().err


def test_format_helpers():
    assert format_time(0.00123) == "1.23 ms"
    assert format_time(2.5e-6) == "2.5 µs"
    assert format_time(None) == "—"
    assert format_bytes(2_500_000) == "2.5 MB"
