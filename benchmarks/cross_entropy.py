"""Benchmark cross-entropy in PyTorch: fused vs composed vs naive vs compiled vs NumPy.

Usage (from the repository root)::

    python -m benchmarks.cross_entropy                    # the full CPU grid
    python -m benchmarks.cross_entropy --quick            # smoke run, < 60 s, indicative
    python -m benchmarks.cross_entropy --reproducibility  # the grid twice, and how they agree
    python -m benchmarks.cross_entropy --device cuda      # the GPU grid
    python -m benchmarks.cross_entropy --render DIR/results.json   # results.md + PNGs again
    python -m benchmarks.cross_entropy --compare A/results.json B/results.json

Writes into ``--out`` (default ``results/benchmarks/<UTC stamp>-<device>``): ``results.json``
(rewritten atomically after every repeat, so an interrupted run keeps what it measured),
``results.md`` and PNG plots; ``--reproducibility`` adds ``rerun/`` and
``reproducibility.{json,md}``. Existing results are never replaced without ``--overwrite``.

How it measures: :mod:`benchmarks._measure` (worker processes, contention checks,
precision-targeted repeats; intervals from :mod:`benchmarks._stats`). What it compares:
:mod:`benchmarks._variants`. How it reports: :mod:`benchmarks._cross_entropy_report`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import _cross_entropy_report as report
from benchmarks import _driver as driver
from benchmarks._measure import MeasureConfig, Suite
from benchmarks._memory import bandwidth
from benchmarks._stats import compare_runs
from benchmarks._variants import (
    FORWARD,
    PASSES,
    RATIO_PAIRS,
    VARIANTS,
    BenchmarkCase,
    point,
)
from lossproofs.environment import claim_output, default_output_dir, write_json
from lossproofs.helptext import description

SCHEMA = "lossproofs.benchmarks.cross_entropy/2"

CONFIGS = {
    "quick": driver.QUICK,
    "cpu": MeasureConfig(block_s=0.02, rounds_min=3, rounds_max=10, point_budget_s=1.2,
                         min_repeats=3, max_repeats=8, time_cap_s=540.0),
    "cuda": driver.CUDA,
}
# Buffers for the bandwidth kernels, larger than the last-level cache (an H100's L2 is 50 MB).
BANDWIDTH_BYTES = {"quick": 32 * 2**20, "cpu": 256 * 2**20, "cuda": 2**30}
REFERENCE_MAX_ELEMENTS = 2**21
"""The NumPy reference runs where N·C is at most this (it takes seconds per call above)."""


def cpu_grid(quick: bool) -> list[BenchmarkCase]:
    """float32 index targets at the practical shapes and a C sweep; extras as named cases."""
    cpu = "cpu"
    if quick:
        return [
            BenchmarkCase(cpu, "float32", 64, 10, with_compile=False),
            BenchmarkCase(cpu, "float32", 256, 1000),
            *[BenchmarkCase(cpu, "float32", 64, c, group="sweep", with_compile=False)
              for c in (16, 256, 4096)],
            *[BenchmarkCase(cpu, "float32", 64, 100, targets=k, group="extra",
                            with_compile=False)
              for k in ("probability", "ignore_index", "label_smoothing")],
            BenchmarkCase(cpu, "bfloat16", 64, 100, group="extra", with_compile=False),
        ]

    def case(n: int, c: int, **kw: Any) -> BenchmarkCase:
        return BenchmarkCase(cpu, kw.pop("dtype", "float32"), n, c,
                             with_reference=n * c <= REFERENCE_MAX_ELEMENTS, **kw)

    # 1024×32000, not 4096×32000: a quarter of the bytes and time (the repeats of the whole grid
    # must fit a run on a 2-core machine), and the index baseline of the extras at their shape.
    named = [case(n, c) for n, c in ((64, 10), (256, 1000), (1024, 32000))]
    sweep = [case(512, c, group="sweep") for c in (16, 256, 1024, 4096, 16384, 65536)]
    extras = [case(n, c, targets=k, group="extra", with_compile=False)
              for n, c in ((256, 1000), (1024, 32000))
              for k in ("probability", "ignore_index", "label_smoothing")]
    extras += [case(n, c, dtype="bfloat16", group="extra", with_compile=False)
               for n, c in ((256, 1000), (1024, 32000))]
    return named + sweep + extras


# Compiling with triton costs seconds per case: only at the language-model widths.
COMPILED_ON_CUDA = {("bfloat16", 32000), ("bfloat16", 131072), ("float32", 32000)}


def cuda_grid(quick: bool) -> list[BenchmarkCase]:
    """float32/bfloat16/float16 over practical shapes and a C sweep at N=4096 (up to 131072);
    torch.compile only at ``COMPILED_ON_CUDA`` (compile budget)."""
    cuda = "cuda"
    if quick:
        return [BenchmarkCase(cuda, "float32", 256, 1000),
                BenchmarkCase(cuda, "bfloat16", 4096, 32000, with_compile=False)]
    cases: list[BenchmarkCase] = []
    for dtype in ("float32", "bfloat16", "float16"):
        cases += [BenchmarkCase(cuda, dtype, n, c, with_compile=False)
                  for n, c in ((64, 10), (256, 1000))]
        cases += [BenchmarkCase(cuda, dtype, 4096, c, group="sweep",
                                with_compile=(dtype, c) in COMPILED_ON_CUDA)
                  for c in (1024, 4096, 16384, 32000, 65536, 131072)]
    cases += [BenchmarkCase(cuda, "bfloat16", 4096, 32000, targets=k, group="extra",
                            with_compile=False)
              for k in ("probability", "ignore_index", "label_smoothing")]
    return cases


def _record(case: BenchmarkCase, pass_: str, variant: str, pt: dict[str, Any],
            bw: dict[str, Any]) -> dict[str, Any]:
    """One variant of one case and pass, from the measurement core's point result."""
    v = pt["variants"].get(variant)
    status = pt["status"] if pt["status"] != "ok" else (v or {}).get("status", "missing")
    reason = pt["reason"] if pt["status"] != "ok" else (v or {}).get("reason")
    info = (v or {}).get("info", {})
    rec: dict[str, Any] = {
        "point": pt["key"], "variant": variant, "kind": VARIANTS[variant],
        "device": case.device, "dtype": case.dtype, "N": case.N, "C": case.C,
        "targets": case.targets, "group": case.group, "pass": pass_, "status": status,
        "reason": reason, "min_bytes": case.min_bytes(pass_), "repeats": pt["repeats"],
        "contended": pt["contended"], "contention_reasons": pt["contention_reasons"],
        "others_busy_cores": max((o.get("others_busy_cores") or 0.0
                                  for o in pt["observations"]), default=None),
        "probe_speedup": [(o.get("probe") or {}).get("speedup") for o in pt["observations"]],
        "median_s": None, "q1_s": None, "q3_s": None, "iqr_s": None, "blocks": None,
        "repeat_medians_s": None, "calls_per_block": None, "gbps": None, "roof_gbps": None,
        "roof_kernel": None, "roofline_fraction": None,
        "peak_bytes": info.get("peak_bytes"), "peak_method": info.get("peak_method"),
        "peak_over_logits": None if info.get("peak_bytes") is None
        else info["peak_bytes"] / case.logits_bytes,
        "max_rel_diff_vs_fused": info.get("max_rel_diff_vs_fused"),
        "agrees": info.get("agrees"), "compile_s": info.get("compile_s"),
    }
    if status == "ok":
        roof, kernel = ((bw["read_gbps"], "read (sum)") if pass_ == FORWARD
                        else (bw["copy_gbps"], "copy"))
        gbps = case.min_bytes(pass_) / v["median_s"] / 1e9
        rec.update({k: v[k] for k in ("median_s", "q1_s", "q3_s", "iqr_s", "blocks",
                                      "repeat_medians_s", "calls_per_block")},
                   gbps=gbps, roof_gbps=roof, roof_kernel=kernel, roofline_fraction=gbps / roof)
    return rec


def _ratio(case: BenchmarkCase, pass_: str, r: dict[str, Any], key: str) -> dict[str, Any]:
    num, den = r["numerator"], r["denominator"]
    label = (f"{VARIANTS[num]}/{VARIANTS[den]}" if VARIANTS[num] != VARIANTS[den]
             else f"{num}/{den}")
    return {"point": key, "label": label, "device": case.device, "dtype": case.dtype,
            "N": case.N, "C": case.C, "targets": case.targets, "group": case.group,
            "pass": pass_, **r}


def payload_from(result: dict[str, Any], cases: list[BenchmarkCase], base: dict[str, Any],
                 ) -> dict[str, Any]:
    """The results.json payload: ``base`` (schema, environment, config, bandwidth) plus the
    records and ratios of the measured points."""
    records, ratios = [], []
    for case, pass_, pt in driver.measured_points(result, cases, PASSES):
        records += [_record(case, pass_, v, pt, base["bandwidth"]) for v in VARIANTS]
        ratios += [_ratio(case, pass_, r, pt["key"]) for r in pt["ratios"]]
    return {**base, **driver.run_fields(result), "records": records, "ratios": ratios}


def run(device: str, quick: bool, out: Path, config: MeasureConfig, compile_enabled: bool = True,
        compile_backend: str = "inductor", overwrite: bool = False, progress: bool = True,
        cases: list[BenchmarkCase] | None = None) -> dict[str, Any]:
    """The cross-entropy grid (``cases``: the default grid of ``device``), measured and rendered
    into ``out`` by :func:`benchmarks._driver.measure_grid`, with the bandwidth kernels timed
    after the calibration; returns the payload. Raises :class:`ContentionError` under
    ``config.strict`` (partial results kept)."""
    kind = "quick" if quick else ("cuda" if device == "cuda" else "cpu")
    cases = driver.start(out, overwrite, config, device, quick, cases,
                         {"cpu": cpu_grid, "cuda": cuda_grid})
    base = driver.base_payload(SCHEMA, device, quick, config, compile_enabled, compile_backend,
                               cases)

    def measure_bandwidth() -> None:
        base["bandwidth"] = bandwidth(device, config.threads, BANDWIDTH_BYTES[kind],
                                      0.1 if quick else 0.5)

    return driver.measure_grid(
        suite=Suite("benchmarks._variants:setup_point", RATIO_PAIRS, device),
        points=[point(c, p, compile_enabled, compile_backend) for c in cases for p in PASSES],
        config=config, out=out, base=base,
        payload_from=lambda result: payload_from(result, cases, base),
        render=lambda payload: report.render(payload, out, overwrite=True),
        progress=progress, desc=f"cross_entropy {device}", before_grid=measure_bandwidth)


def compare(a_path: Path, b_path: Path, out: Path | None, overwrite: bool) -> dict[str, Any]:
    """Reproducibility of two results.json files; written to ``out`` if given."""
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (a_path, b_path))
    summary = compare_runs(a["ratios"], b["ratios"])
    rep = {"schema": SCHEMA.replace("cross_entropy", "cross_entropy.reproducibility"),
           "a": {"path": str(a_path), "environment": a["environment"],
                 "contended": a.get("contended"), "warnings": a.get("warnings", []),
                 "elapsed_s": a.get("elapsed_s")},
           "b": {"path": str(b_path), "environment": b["environment"],
                 "contended": b.get("contended"), "warnings": b.get("warnings", []),
                 "elapsed_s": b.get("elapsed_s")},
           "quick": bool(a["config"].get("quick")), **summary}
    if out is not None:
        write_json(out / "reproducibility.json", rep, overwrite=overwrite)
        report.write_reproducibility(rep, out, overwrite)
    return rep


def _parser(prog: str = "python -m benchmarks.cross_entropy") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description(__doc__, paragraphs=1))
    driver.add_common_arguments(p, "smoke run for CI (< 60 s); its intervals are indicative")
    p.add_argument("--reproducibility", action="store_true",
                   help="run the grid twice (--out and --out/rerun) and report how the two "
                        "runs' ratios agree (reproducibility.md/json in --out)")
    p.add_argument("--compare", type=Path, nargs=2, default=None, metavar="RESULTS_JSON",
                   help="only compare two existing runs (reproducibility.md/json into --out)")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks.cross_entropy") -> int:
    """The command line (``--help``; ``prog`` names the command in usage lines, ``lossproofs
    bench cross-entropy`` when run from there); returns the exit status (0 ok, 2 usage or
    refused overwrite, 3 contended under ``--strict``, 130 interrupted)."""
    args = _parser(prog).parse_args(argv)
    if args.render is not None:
        if not args.render.is_file():
            print(f"error: --render {str(args.render)!r}: no such file", file=sys.stderr)
            return driver.EXIT_USAGE
        payload = json.loads(args.render.read_text(encoding="utf-8"))
        try:
            written = report.render(payload, args.out or args.render.parent, args.overwrite)
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return driver.EXIT_USAGE
        print("\n".join(str(p) for p in written))
        return 0
    if args.compare is not None:
        try:
            rep = compare(*args.compare, args.out, args.overwrite)
        except (FileExistsError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return driver.EXIT_USAGE
        print(report.reproducibility_summary(rep))
        return 0
    config = driver.config_or_status(args, CONFIGS)
    if isinstance(config, int):
        return config
    out = args.out or default_output_dir("benchmarks", args.device)
    outs = [out, out / "rerun"] if args.reproducibility else [out]
    payloads: list[dict[str, Any]] = []

    def measure_all() -> None:
        if args.reproducibility:
            for path in (out / "reproducibility.json", out / "reproducibility.md"):
                claim_output(path, args.overwrite)
        for o in outs:
            driver.refuse_existing(o, args.overwrite)
        for o in outs:
            payloads.append(run(args.device, args.quick, o, config, not args.no_compile,
                                args.compile_backend, args.overwrite, not args.no_progress))
            print(report.summary_table(payloads[-1]))
            driver.warn_terminal(payloads[-1]["warnings"], "in this run")

    status = driver.guarded(measure_all, out)
    if status:
        return status
    if args.reproducibility:
        rep = compare(outs[0] / "results.json", outs[1] / "results.json", out, True)
        print(report.reproducibility_summary(rep))
    print(f"\nresults written to {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
