"""Tests of the benchmark code (benchmarks/cross_entropy.py and its helpers), never of speed.

One quick run (the real ``--quick`` grid, with torch.compile's ``eager`` backend so the compile
path runs without inductor's compile time) feeds the schema, Markdown, plot and refusal checks.
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

from benchmarks import _report, _variants
from benchmarks import cross_entropy as bench
from benchmarks._memory import peak_bytes
from benchmarks._progress import _PlainBar, progress_bar
from benchmarks._timing import TimingPlan, paired_ratio, summarize
from benchmarks._variants import (
    COMPOSED_F,
    FORWARD,
    FORWARD_BACKWARD,
    FUSED_F,
    NAIVE,
    PASSES,
    VARIANTS,
    Case,
    make_inputs,
    prepare,
)

RECORD_KEYS = {"variant", "device", "dtype", "N", "C", "pass", "median_s", "iqr_s",
               "peak_bytes", "gbps", "roofline_fraction", "status", "reason", "targets",
               "threads", "min_bytes"}
ENV_KEYS = {"torch", "numpy", "cpu_model", "torch_num_threads", "gpu_name", "git_commit"}


def test_quick_run_end_to_end(tmp_path, capsys):
    """The real ``--quick`` grid, run once (one test, so pytest-xdist runs it on one worker),
    then every check of its output."""
    out = tmp_path / "quick"
    rc = bench.main(["--quick", "--threads", "1", "--compile-backend", "eager",
                     "--no-progress", "--out", str(out)])
    assert rc == 0
    run = out, json.loads((out / "results.json").read_text(encoding="utf-8"))
    _check_quick_run_completes_with_every_case(run)
    _check_json_schema_and_environment(run)
    _check_every_measurable_variant_was_measured(run)
    _check_ratios_positive_finite_and_bracketed(run)
    _check_markdown_has_machine_caption_above_every_table(run)
    _check_plots_are_png_files(run)
    capsys.readouterr()
    _check_second_run_to_same_out_refuses(run, capsys)
    _check_render_from_json_refuses_then_overwrites(run, tmp_path, capsys)


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


def _check_json_schema_and_environment(quick_run):
    _, payload = quick_run
    assert ENV_KEYS <= set(payload["environment"])
    assert payload["environment"]["torch_num_threads"] == 1 == payload["config"]["threads"]
    bw = payload["bandwidth"]
    assert bw["read_gbps"] > 0 and bw["copy_gbps"] > 0
    for rec in payload["records"]:
        assert RECORD_KEYS <= set(rec), rec
        assert rec["status"] in {"ok", "skipped", "error", "oom"}
        if rec["status"] != "ok":
            assert rec["reason"], rec
            continue
        assert math.isfinite(rec["median_s"]) and rec["median_s"] > 0
        assert rec["q1_s"] <= rec["median_s"] <= rec["q3_s"]
        assert rec["iqr_s"] >= 0
        assert rec["gbps"] > 0 and rec["roofline_fraction"] > 0
        assert rec["peak_bytes"] is not None and rec["peak_bytes"] >= 0, rec
        assert rec["agrees"] is True, rec


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


def _check_ratios_positive_finite_and_bracketed(quick_run):
    _, payload = quick_run
    assert payload["ratios"]
    pairs = {(r["N"], r["C"], r["targets"], r["dtype"], r["pass"])
             for r in payload["ratios"] if (r["numerator"], r["denominator"])
             == (FUSED_F, COMPOSED_F)}
    assert len(pairs) == 2 * len(bench.cpu_grid(quick=True))
    for r in payload["ratios"]:
        for key in ("ratio", "ci_low", "ci_high"):
            assert math.isfinite(r[key]) and r[key] > 0, r
        assert r["ci_low"] <= r["ratio"] <= r["ci_high"]
        assert r["pairs"] >= 2


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
    for heading in ("## Time per call", "## Paired ratios", "## Peak memory",
                    "## Roofline: fraction of the measured bandwidth", "## Plots"):
        assert heading in text
    assert f"`{payload['environment']['torch']}`" in text
    assert text == _report.markdown(payload) + "\n## Plots\n\n" + "\n".join(
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


def test_interrupted_run_keeps_finished_cases(tmp_path, monkeypatch):
    cases = [Case("cpu", "float32", 8, 5, with_compile=False),
             Case("cpu", "float32", 8, 7, with_compile=False)]
    real = bench.run_case

    def interrupt_second(case, *args, **kwargs):
        if case.C == 7:
            raise KeyboardInterrupt
        return real(case, *args, **kwargs)

    monkeypatch.setattr(bench, "run_case", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        bench.run("cpu", True, tmp_path, threads=1, compile_enabled=False, progress=False,
                  cases=cases)
    payload = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert payload["complete"] is False
    assert {r["C"] for r in payload["records"]} == {5}
    assert "INCOMPLETE" in (tmp_path / "results.md").read_text(encoding="utf-8")


def test_out_of_memory_is_recorded_not_fatal(monkeypatch):
    def oom(case, seed=0):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(bench, "make_inputs", oom)
    plan = TimingPlan(block_s=0.001, rounds_min=2, rounds_max=2, case_budget_s=0.01)
    bw = {"read_gbps": 1.0, "copy_gbps": 1.0}
    records, ratios = bench.run_case(Case("cpu", "float32", 4, 3), plan, 1, False, "eager", bw)
    assert ratios == []
    assert len(records) == len(VARIANTS) * len(PASSES)
    assert {r["status"] for r in records} == {"oom"}
    assert all("out of memory" in r["reason"] for r in records)


def test_disagreeing_variant_is_flagged(monkeypatch):
    real = _variants._loss_functions

    def with_wrong_composed(case):
        losses = dict(real(case))
        losses[COMPOSED_F] = lambda x, t: 2 * real(case)[COMPOSED_F](x, t)  # deliberately wrong
        return losses

    monkeypatch.setattr(_variants, "_loss_functions", with_wrong_composed)
    case = Case("cpu", "float32", 16, 9, with_compile=False)
    x, t = make_inputs(case)
    plan = TimingPlan(block_s=0.001, rounds_min=2, rounds_max=2, case_budget_s=0.01)
    bw = {"read_gbps": 1.0, "copy_gbps": 1.0}
    records, _ = bench.measure_pass(case, FORWARD, x, t, None, "off", plan, 1, bw)
    by_name = {r["variant"]: r for r in records}
    assert by_name[COMPOSED_F]["agrees"] is False
    assert by_name[FUSED_F]["agrees"] is True
    assert "⚠" in _report._cell(by_name[COMPOSED_F], "time")


@pytest.mark.parametrize("targets", _variants.TARGET_KINDS)
@pytest.mark.parametrize("pass_", PASSES)
def test_variants_agree_with_fused_loss(targets, pass_):
    case = Case("cpu", "float64", 6, 5, targets=targets)
    x, t = make_inputs(case, seed=3)
    prep = prepare(case, pass_, x, t)
    expected = _variants.as_tensor(prep.calls[FUSED_F]())
    assert set(prep.calls) >= {FUSED_F, COMPOSED_F, NAIVE, _variants.REFERENCE}
    for name, call in prep.calls.items():
        got = _variants.as_tensor(call()).reshape(expected.shape)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12, msg=name)


def test_ignore_index_inputs_keep_a_target():
    case = Case("cpu", "float32", 200, 4, targets="ignore_index")
    _, t = make_inputs(case)
    ignored = int((t == _variants.IGNORE_INDEX).sum())
    assert 0 < ignored < case.N and t[0] != _variants.IGNORE_INDEX


def test_min_bytes_counts_logits_targets_and_gradient():
    n, c = 32, 1000
    index = Case("cpu", "float32", n, c)
    assert index.min_bytes(FORWARD) == n * c * 4 + n * 8
    assert index.min_bytes(FORWARD_BACKWARD) == 2 * n * c * 4 + n * 8
    prob = Case("cpu", "bfloat16", n, c, targets="probability")
    assert prob.min_bytes(FORWARD) == 2 * n * c * 2
    assert prob.min_bytes(FORWARD_BACKWARD) == 3 * n * c * 2


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"dtype": "int8"}, "dtype"), ({"targets": "soft"}, "targets"), ({"N": 0}, "N"),
])
def test_case_rejects_bad_arguments(kwargs, name):
    args = {"device": "cpu", "dtype": "float32", "N": 2, "C": 3, **kwargs}
    with pytest.raises(ValueError, match=name):
        Case(**args)


def test_timing_plan_rejects_bad_rounds():
    with pytest.raises(ValueError, match="rounds_min"):
        TimingPlan(block_s=0.1, rounds_min=1, rounds_max=3, case_budget_s=1.0)


def test_summarize_matches_statistics_quantiles():
    times = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]
    q1, med, q3 = statistics.quantiles(times, n=4, method="inclusive")
    s = summarize(times, calls_per_block=7)
    assert (s.q1_s, s.median_s, s.q3_s) == pytest.approx((q1, med, q3))
    assert s.iqr_s == pytest.approx(q3 - q1)
    assert s.blocks == 7 and s.calls_per_block == 7


def test_paired_ratio_exact_multiple_has_zero_width():
    b = [1.0, 2.0, 0.5, 3.0]
    r = paired_ratio([0.8 * v for v in b], b)
    assert r.ratio == pytest.approx(0.8) and r.low == pytest.approx(0.8)
    assert r.high == pytest.approx(0.8) and r.pairs == 4


def test_paired_ratio_interval_matches_textbook_t_interval():
    rng = np.random.default_rng(7)
    b = rng.uniform(1.0, 2.0, size=12)
    a = b * 1.3 * np.exp(rng.normal(0, 0.05, size=12))
    logs = [math.log(x / y) for x, y in zip(a, b, strict=True)]
    mean, sd = statistics.fmean(logs), statistics.stdev(logs)
    t975_df11 = 2.200985160082949  # Student t, 97.5 % quantile, 11 degrees of freedom (tables)
    r = paired_ratio(list(a), list(b))
    assert r.ratio == pytest.approx(math.exp(mean))
    assert r.low == pytest.approx(math.exp(mean - t975_df11 * sd / math.sqrt(12)))
    assert r.high == pytest.approx(math.exp(mean + t975_df11 * sd / math.sqrt(12)))


def test_t_quantile_fallback_without_scipy(monkeypatch):
    from benchmarks._timing import t_quantile

    with_scipy = [t_quantile(0.975, df) for df in (1, 5, 14, 20, 25, 60)]
    monkeypatch.setitem(sys.modules, "scipy", None)  # as on a machine without scipy
    without = [t_quantile(0.975, df) for df in (1, 5, 14, 20, 25, 60)]
    assert without == pytest.approx(with_scipy, rel=1e-4)
    with pytest.raises(ValueError, match="probability"):
        t_quantile(0.95, 5)


def test_paired_ratio_rejects_bad_series():
    with pytest.raises(ValueError, match="blocks"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1.0, 0.0], [1.0, 1.0])


def test_cpu_peak_memory_sees_materialised_intermediates():
    case = Case("cpu", "float32", 256, 512, with_compile=False)
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
    assert isinstance(bar, _PlainBar)
    bar.set_postfix_str("case")
    bar.update(3)
    bar.close()
    assert "3/3" in capsys.readouterr().err


def test_format_helpers():
    assert _report.format_time(0.00123) == "1.23 ms"
    assert _report.format_time(2.5e-6) == "2.5 µs"
    assert _report.format_time(None) == "—"
    assert _report.format_bytes(2_500_000) == "2.5 MB"
