"""Benchmark a language model's head and loss: ``F.cross_entropy(x @ Wᵀ)`` (the N × V logits
materialised) against ``F.linear_cross_entropy`` (torch ≥ 2.13; its reference path and its
chunked path under each ``acc_policy``), ``torch.compile`` of the unfused form and, on CUDA,
Liger-Kernel: time, peak memory and a compute roofline, forward and forward+backward.

Usage (from the repository root)::

    python -m benchmarks.linear_cross_entropy                 # the CPU grid
    python -m benchmarks.linear_cross_entropy --quick         # smoke run, < 60 s, indicative
    python -m benchmarks.linear_cross_entropy --device cuda   # the GPU grid
    python -m benchmarks.linear_cross_entropy --render DIR/results.json

Writes ``results.json`` (rewritten after every repeat), ``results.md`` and plots of time and
memory against V into ``--out`` (default ``results/benchmarks/<UTC stamp>-linear_cross_entropy-
<device>``); existing results are never replaced without ``--overwrite``. Each record has
``variant, device, dtype, N, D, V, pass, status, median_s, iqr_s, peak_bytes`` and the derived
figures (peak over the logits' size, total over the inputs + gradients floor, roofline against
the matmul measured in the same run, agreement with the unfused loss); each ratio is a variant's
time over the unfused form's, with its 95 % interval over worker repeats.

How it measures: :mod:`benchmarks._measure` and :mod:`benchmarks._driver`, as
``benchmarks.cross_entropy`` does (worker processes, rotated rounds, contention checks,
``--strict``, precision-targeted repeats); the variants: :mod:`benchmarks._linear_variants`;
the report: :mod:`benchmarks._linear_report`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from benchmarks import _driver as driver
from benchmarks import _linear_report as report
from benchmarks._linear_variants import (
    MATMUL,
    PASSES,
    RATIO_PAIRS,
    VARIANTS,
    LinearCase,
    point,
)
from benchmarks._measure import MeasureConfig, Suite
from lossproofs.environment import default_output_dir
from lossproofs.helptext import description

SCHEMA = "lossproofs.benchmarks.linear_cross_entropy/2"

CONFIGS = {
    # two repeats, not three: its calls are milliseconds, and the smoke run must stay < 60 s
    "quick": replace(driver.QUICK, point_budget_s=0.1, min_repeats=2, max_repeats=2),
    "cpu": MeasureConfig(block_s=0.05, rounds_min=3, rounds_max=8, point_budget_s=2.0,
                         min_repeats=3, max_repeats=6, time_cap_s=900.0),
    "cuda": replace(driver.CUDA, time_cap_s=300.0),
}
CPU_SWEEP_V = (4096, 16384, 32000, 65536)
CUDA_SWEEP_V = (32000, 65536, 128256)


def cpu_grid(quick: bool) -> list[LinearCase]:
    """A V sweep in float32 at a scaled-down head (N=512, D=256: one thread of a 2-core machine
    must measure it in minutes), and bfloat16 at V=32000 (where the CPU's policies differ most:
    "accurate" accumulates the weight gradient in float32)."""
    if quick:
        return [LinearCase("cpu", "float32", 256, 64, 2048),
                LinearCase("cpu", "float32", 256, 64, 8192, with_compile=False),
                LinearCase("cpu", "bfloat16", 128, 64, 4096, group="extra", with_compile=False)]
    return [*(LinearCase("cpu", "float32", 512, 256, v) for v in CPU_SWEEP_V),
            LinearCase("cpu", "bfloat16", 512, 256, 32000, group="extra", with_compile=False)]


def cuda_grid(quick: bool) -> list[LinearCase]:
    """Language-model heads in bfloat16: N=8192 tokens, D=4096, V up to 128256 (Llama 3's
    vocabulary); float32 at one shape."""
    if quick:
        return [LinearCase("cuda", "bfloat16", 4096, 1024, 32000, with_compile=False)]
    return [*(LinearCase("cuda", "bfloat16", 8192, 4096, v) for v in CUDA_SWEEP_V),
            LinearCase("cuda", "float32", 4096, 2048, 32000, group="extra")]


# -- records ---------------------------------------------------------------------------------
def _record(case: LinearCase, pass_: str, variant: str, pt: dict[str, Any]) -> dict[str, Any]:
    v = pt["variants"].get(variant) or {}
    status = pt["status"] if pt["status"] != "ok" else v.get("status", "missing")
    info = v.get("info", {})
    peak = info.get("peak_bytes")
    floor = case.inputs_bytes + case.gradients_bytes(pass_)
    rec = {"point": pt["key"], "variant": variant, "device": case.device, "dtype": case.dtype,
           "N": case.N, "D": case.D, "V": case.V, "pass": pass_, "group": case.group,
           "status": status, "reason": pt["reason"] if pt["status"] != "ok" else v.get("reason"),
           "median_s": None, "q1_s": None, "q3_s": None, "iqr_s": None,
           "repeats": pt["repeats"], "contended": pt["contended"],
           "compile_s": info.get("compile_s"),
           "peak_bytes": peak, "peak_method": info.get("peak_method"),
           "logits_bytes": case.logits_bytes,
           "peak_over_logits": None if peak is None else peak / case.logits_bytes,
           "inputs_bytes": case.inputs_bytes, "gradients_bytes": case.gradients_bytes(pass_),
           "floor_bytes": floor,
           "total_over_floor": None if peak is None else (case.inputs_bytes + peak) / floor,
           "flops": case.flops("forward") if variant == MATMUL else case.flops(pass_),
           "max_rel_diff_vs_unfused": info.get("max_rel_diff_vs_unfused"),
           "agrees": info.get("agrees"), "roofline": None, "tflops": None}
    if status == "ok":
        rec.update({k: v[k] for k in ("median_s", "q1_s", "q3_s", "iqr_s")})
        rec["tflops"] = rec["flops"] / rec["median_s"] / 1e12
    return rec


def _with_roofline(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roofline of each record: the time its pass's matmuls take at the speed of the matmul
    measured at the same point, over its own time (1 = nothing but the matmuls)."""
    matmul = next((r for r in records if r["variant"] == MATMUL and r["median_s"]), None)
    if matmul is not None:
        for r in records:
            if r["median_s"] and r["variant"] != MATMUL:
                r["roofline"] = r["flops"] / matmul["flops"] * matmul["median_s"] / r["median_s"]
    return records


def payload_from(result: dict[str, Any], cases: list[LinearCase], base: dict[str, Any]):
    """The results.json payload: ``base`` plus the records (with their rooflines) and the
    ratios of the measured points."""
    records, ratios = [], []
    for case, pass_, pt in driver.measured_points(result, cases, PASSES):
        records += _with_roofline([_record(case, pass_, v, pt) for v in VARIANTS])
        ratios += [{"point": pt["key"], "device": case.device, "dtype": case.dtype,
                    "N": case.N, "D": case.D, "V": case.V, "pass": pass_, **r}
                   for r in pt["ratios"]]
    return {**base, **driver.run_fields(result), "records": records, "ratios": ratios}


# -- the run ---------------------------------------------------------------------------------
def run(device: str, quick: bool, out: Path, config: MeasureConfig, compile_enabled: bool = True,
        compile_backend: str = "inductor", overwrite: bool = False, progress: bool = True,
        cases: list[LinearCase] | None = None) -> dict[str, Any]:
    """Calibrate, measure the grid (``results.json`` after every repeat), render; returns the
    payload. Raises :class:`ContentionError` under ``config.strict`` (partial results kept)."""
    cases = driver.start(out, overwrite, config, device, quick, cases,
                         {"cpu": cpu_grid, "cuda": cuda_grid})
    base = driver.base_payload(SCHEMA, device, quick, config, compile_enabled, compile_backend,
                               cases, variants=list(VARIANTS))
    return driver.measure_grid(
        suite=Suite("benchmarks._linear_variants:setup_point", RATIO_PAIRS, device),
        points=[point(c, p, compile_enabled, compile_backend) for c in cases for p in PASSES],
        config=config, out=out, base=base,
        payload_from=lambda result: payload_from(result, cases, base),
        render=lambda payload: report.render(payload, out, overwrite=True),
        progress=progress, desc=f"linear_cross_entropy {device}")


def main(argv: list[str] | None = None,
         prog: str = "python -m benchmarks.linear_cross_entropy") -> int:
    """The command line (``--help``; ``prog`` names the command in usage lines, ``lossproofs
    bench linear-cross-entropy`` when run from there); returns the exit status (0 ok, 2 usage
    or refused overwrite, 3 contended under ``--strict``, 130 interrupted)."""
    p = argparse.ArgumentParser(prog=prog, description=description(__doc__, paragraphs=1),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    driver.add_common_arguments(p, "smoke run (< 60 s); its intervals are indicative")
    args = p.parse_args(argv)
    if args.render is not None:
        return report.render_file(args.render, args.out, args.overwrite)
    if not hasattr(torch.nn.functional, "linear_cross_entropy"):
        print(f"error: torch {torch.__version__} has no F.linear_cross_entropy (torch ≥ 2.13); "
              "only the unfused and compiled forms could run", file=sys.stderr)
        return driver.EXIT_USAGE
    config = driver.config_or_status(args, CONFIGS)
    if isinstance(config, int):
        return config
    out = args.out or default_output_dir("benchmarks", f"linear_cross_entropy-{args.device}")
    result: dict[str, Any] = {}

    def measure_grid() -> None:
        result["payload"] = run(args.device, args.quick, out, config, not args.no_compile,
                                args.compile_backend, args.overwrite, not args.no_progress)

    status = driver.guarded(measure_grid, out)
    if status:
        return status
    payload = result["payload"]
    print(report.summary(payload))
    driver.warn_terminal(payload["warnings"], "in this run")
    print(f"\nresults written to {out}/")
    print(json.dumps({"contended": payload["contended"], "warnings": payload["warnings"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
