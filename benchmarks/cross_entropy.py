"""Benchmark cross-entropy in PyTorch: fused vs composed vs naive vs compiled vs NumPy.

Usage (from the repository root)::

    python -m benchmarks.cross_entropy                    # the full CPU grid (~10-15 min, 2 cores)
    python -m benchmarks.cross_entropy --quick            # smoke run, < 60 s
    python -m benchmarks.cross_entropy --device cuda      # the GPU grid (~3 min on an H100)
    python -m benchmarks.cross_entropy --render DIR/results.json   # results.md + PNGs again

Writes into ``--out`` (default ``results/benchmarks/<UTC stamp>-<device>``): ``results.json``
(rewritten atomically after every case, so an interrupted run keeps what it measured),
``results.md`` and PNG plots. Existing results are never replaced without ``--overwrite``.

What is measured and how: see :mod:`benchmarks._timing` (interleaved blocks, median + IQR,
paired t-interval on log ratios), :mod:`benchmarks._memory` (peak memory per device) and
:mod:`benchmarks._variants` (the variants and the bytes a pass must move at least).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from benchmarks import _report
from benchmarks._memory import peak_bytes
from benchmarks._progress import progress_bar
from benchmarks._timing import TimingPlan, interleaved, paired_ratio, summarize
from benchmarks._variants import (
    COMPILED,
    FORWARD,
    FUSED_F,
    PASSES,
    RATIO_PAIRS,
    REFERENCE,
    VARIANTS,
    Case,
    agreement_tolerance,
    as_tensor,
    build_compiled,
    make_inputs,
    prepare,
)
from lossproofs.environment import claim_output, default_output_dir, environment, write_json

SCHEMA = "lossproofs.benchmarks.cross_entropy/1"

PLANS = {
    "quick": TimingPlan(block_s=0.003, rounds_min=5, rounds_max=7, case_budget_s=0.1),
    "cpu": TimingPlan(block_s=0.04, rounds_min=5, rounds_max=15, case_budget_s=10.0),
    "cuda": TimingPlan(block_s=0.01, rounds_min=5, rounds_max=15, case_budget_s=0.8),
}
# Buffers for the bandwidth kernels, larger than the last-level cache (an H100's L2 is 50 MB).
BANDWIDTH_BYTES = {"quick": 32 * 2**20, "cpu": 256 * 2**20, "cuda": 2**30}


def cpu_grid(quick: bool) -> list[Case]:
    """float32 index targets at the practical shapes and a C sweep; extras as named cases."""
    cpu = "cpu"
    if quick:
        return [
            Case(cpu, "float32", 64, 10, with_compile=False),
            Case(cpu, "float32", 256, 1000),
            *[Case(cpu, "float32", 64, c, group="sweep", with_compile=False)
              for c in (16, 256, 4096)],
            *[Case(cpu, "float32", 64, 100, targets=k, group="extra", with_compile=False)
              for k in ("probability", "ignore_index", "label_smoothing")],
            Case(cpu, "bfloat16", 64, 100, group="extra", with_compile=False),
        ]
    named = [Case(cpu, "float32", n, c) for n, c in ((64, 10), (256, 1000), (4096, 32000))]
    sweep = [Case(cpu, "float32", 512, c, group="sweep")
             for c in (16, 256, 1024, 4096, 16384, 65536)]
    extras = [Case(cpu, "float32", n, c, targets=k, group="extra", with_compile=False)
              for n, c in ((256, 1000), (1024, 32000))
              for k in ("probability", "ignore_index", "label_smoothing")]
    extras += [Case(cpu, "bfloat16", n, c, group="extra", with_compile=False)
               for n, c in ((256, 1000), (1024, 32000))]
    return named + sweep + extras


# Compiling with triton costs seconds per case: only at the language-model widths.
COMPILED_ON_CUDA = {("bfloat16", 32000), ("bfloat16", 131072), ("float32", 32000)}


def cuda_grid(quick: bool) -> list[Case]:
    """float32/bfloat16/float16 over practical shapes and a C sweep at N=4096 (up to 131072);
    torch.compile only at ``COMPILED_ON_CUDA`` (compile budget)."""
    cuda = "cuda"
    if quick:
        return [Case(cuda, "float32", 256, 1000),
                Case(cuda, "bfloat16", 4096, 32000, with_compile=False)]
    cases: list[Case] = []
    for dtype in ("float32", "bfloat16", "float16"):
        cases += [Case(cuda, dtype, n, c, with_compile=False)
                  for n, c in ((64, 10), (256, 1000))]
        cases += [Case(cuda, dtype, 4096, c, group="sweep",
                       with_compile=(dtype, c) in COMPILED_ON_CUDA)
                  for c in (1024, 4096, 16384, 32000, 65536, 131072)]
    cases += [Case(cuda, "bfloat16", 4096, 32000, targets=k, group="extra", with_compile=False)
              for k in ("probability", "ignore_index", "label_smoothing")]
    return cases


_OOM_ERROR = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def _is_oom(exc: BaseException) -> bool:
    """CUDA's out-of-memory error, or the host's (MemoryError, or RuntimeError from ATen)."""
    return isinstance(exc, _OOM_ERROR) or (
        isinstance(exc, (RuntimeError, MemoryError)) and (
            isinstance(exc, MemoryError) or "out of memory" in str(exc)
            or "can't allocate memory" in str(exc)))


def _base_record(case: Case, pass_: str, variant: str, threads: int) -> dict[str, Any]:
    return {
        "variant": variant, "kind": VARIANTS[variant], "device": case.device,
        "dtype": case.dtype, "N": case.N, "C": case.C, "targets": case.targets,
        "group": case.group, "pass": pass_, "threads": threads, "status": "ok", "reason": None,
        "median_s": None, "q1_s": None, "q3_s": None, "iqr_s": None, "blocks": None,
        "calls_per_block": None, "peak_bytes": None, "peak_over_logits": None,
        "peak_method": None, "min_bytes": case.min_bytes(pass_), "gbps": None,
        "roof_gbps": None, "roof_kernel": None, "roofline_fraction": None,
        "max_rel_diff_vs_fused": None, "agrees": None, "compile_s": None,
    }


def _roof(bandwidth: dict[str, Any], pass_: str) -> tuple[float, str]:
    """The plain kernel with the same access pattern: reads only (forward), read + write."""
    if pass_ == FORWARD:
        return bandwidth["read_gbps"], "read (sum)"
    return bandwidth["copy_gbps"], "copy"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure_pass(case: Case, pass_: str, x: torch.Tensor, t: torch.Tensor, compiled: Any,
                 compiled_reason: str | None, plan: TimingPlan, threads: int,
                 bandwidth: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records (one per variant) and paired ratios for one case and pass."""
    prep = prepare(case, pass_, x, t, compiled=compiled, compiled_reason=compiled_reason)
    records: dict[str, dict[str, Any]] = {}
    for name, reason in prep.skipped.items():
        rec = _base_record(case, pass_, name, threads)
        rec.update(status="skipped", reason=reason)
        records[name] = rec

    # Warm-up and agreement: every variant must compute what F.cross_entropy computes.
    # Compared in float32 on the device (float64 for float64 cases).
    cmp_dtype = torch.float64 if case.dtype == "float64" else torch.float32
    expected = as_tensor(prep.calls[FUSED_F](), case.device, cmp_dtype)
    scale = max(float(expected.abs().max()), 1e-30)
    tol = agreement_tolerance(case.dtype)
    for name in list(prep.calls):
        rec = _base_record(case, pass_, name, threads)
        records[name] = rec
        try:
            got = as_tensor(prep.calls[name](), case.device, cmp_dtype)
            _sync(case.device)
        except Exception as exc:
            if _is_oom(exc):
                raise
            del prep.calls[name]
            rec.update(status="error", reason=f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        rel = float((got.reshape(expected.shape) - expected).abs().max()) / scale
        rec.update(max_rel_diff_vs_fused=rel, agrees=bool(rel <= tol))
        if name == COMPILED:
            rec["compile_s"] = prep.compile_s
        del got
    del expected  # free before timing and before the peak-memory probes

    timings = interleaved(prep.calls, plan, threads)
    roof, roof_kernel = _roof(bandwidth, pass_)
    for name, (times, number) in timings.items():
        s = summarize(times, number)
        rec = records[name]
        gbps = case.min_bytes(pass_) / s.median_s / 1e9
        rec.update(median_s=s.median_s, q1_s=s.q1_s, q3_s=s.q3_s, iqr_s=s.iqr_s,
                   blocks=s.blocks, calls_per_block=number, gbps=gbps, roof_gbps=roof,
                   roof_kernel=roof_kernel, roofline_fraction=gbps / roof)
        peak, method = peak_bytes(prep.calls[name], case.device, numpy_variant=name == REFERENCE)
        rec.update(peak_bytes=peak, peak_method=method,
                   peak_over_logits=None if peak is None else peak / case.logits_bytes)

    ratios = []
    for num, den in RATIO_PAIRS:
        if num in timings and den in timings:
            ri = paired_ratio(timings[num][0], timings[den][0])
            ratios.append({
                "numerator": num, "denominator": den,
                "label": f"{VARIANTS[num]}/{VARIANTS[den]}" if VARIANTS[num] != VARIANTS[den]
                else f"{num}/{den}",
                "device": case.device, "dtype": case.dtype, "N": case.N, "C": case.C,
                "targets": case.targets, "group": case.group, "pass": pass_,
                "ratio": ri.ratio, "ci_low": ri.low, "ci_high": ri.high, "pairs": ri.pairs,
                "confidence": ri.confidence,
                "method": "geometric mean of paired block ratios; Student-t interval on log "
                          "ratios",
            })
    order = list(VARIANTS)
    return sorted(records.values(), key=lambda r: order.index(r["variant"])), ratios


def run_case(case: Case, plan: TimingPlan, threads: int, compile_enabled: bool,
             compile_backend: str, bandwidth: dict[str, Any],
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Both passes of one case; running out of memory is recorded as ``status: oom``."""
    records: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    try:
        x, t = make_inputs(case)
        compiled, reason = build_compiled(case, compile_enabled, compile_backend)
        for pass_ in PASSES:
            recs, rats = measure_pass(case, pass_, x, t, compiled, reason, plan, threads,
                                      bandwidth)
            records += recs
            ratios += rats
    except Exception as exc:
        if not _is_oom(exc):
            raise
        done = {(r["pass"], r["variant"]) for r in records}
        for pass_ in PASSES:
            for name in VARIANTS:
                if (pass_, name) not in done:
                    rec = _base_record(case, pass_, name, threads)
                    rec.update(status="oom", reason=f"{type(exc).__name__}: "
                                                    f"{str(exc).splitlines()[0][:200]}")
                    records.append(rec)
    finally:
        x = t = compiled = None
        gc.collect()
        if case.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return records, ratios


def _loadavg() -> list[float] | None:
    """1, 5 and 15-minute load averages (Unix), or None."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _output_paths(out: Path) -> list[Path]:
    existing = [out / "results.json", out / "results.md"]
    if out.is_dir():
        existing += sorted(out.glob("*.png"))
    return existing


def refuse_existing(out: Path, overwrite: bool) -> None:
    """Raise ``FileExistsError`` if ``out`` already holds results and ``overwrite`` is false."""
    for path in _output_paths(out):
        claim_output(path, overwrite)


def run(device: str, quick: bool, out: Path, threads: int, compile_enabled: bool = True,
        compile_backend: str = "inductor", overwrite: bool = False, progress: bool = True,
        cases: list[Case] | None = None) -> dict[str, Any]:
    """Run the grid, writing ``results.json`` after each case, then results.md and the PNGs."""
    refuse_existing(out, overwrite)
    torch.set_num_threads(threads)
    kind = "quick" if quick else ("cuda" if device == "cuda" else "cpu")
    plan = PLANS[kind]
    if cases is None:
        cases = cuda_grid(quick) if device == "cuda" else cpu_grid(quick)
    from benchmarks._timing import bandwidth as measure_bandwidth

    bw = measure_bandwidth(device, threads, BANDWIDTH_BYTES["cuda" if device == "cuda" else kind],
                           min_run_time=0.1 if quick else 0.5)
    payload: dict[str, Any] = {
        "schema": SCHEMA,
        "environment": environment(device),
        "config": {"device": device, "quick": quick, "threads": threads,
                   "compile": compile_enabled, "compile_backend": compile_backend,
                   "plan": asdict(plan), "cases": [asdict(c) for c in cases]},
        "bandwidth": bw, "records": [], "ratios": [], "complete": False,
    }
    # Other processes competing for the cores show up as noise: record the load around the run.
    payload["config"]["loadavg_start"] = _loadavg()
    results_json = out / "results.json"
    write_json(results_json, payload, overwrite=True)  # claimed above by refuse_existing
    bar = progress_bar(len(cases), desc=f"cross_entropy {device}", disable=not progress)
    try:
        for case in cases:
            bar.set_postfix_str(f"{case.dtype} {case.label()} {case.targets}")
            records, ratios = run_case(case, plan, threads, compile_enabled, compile_backend, bw)
            payload["records"] += records
            payload["ratios"] += ratios
            write_json(results_json, payload, overwrite=True)  # atomic: tmp file + os.replace
            bar.update(1)
        payload["complete"] = True
        payload["config"]["loadavg_end"] = _loadavg()
        write_json(results_json, payload, overwrite=True)
    finally:
        bar.close()
        _report.render(payload, out, overwrite=True)  # even for an interrupted run
    return payload


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cross_entropy",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run for CI (< 60 s)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default results/benchmarks/<stamp>-<device>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing results in --out")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch and the Timer (default: torch.get_num_threads())")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--compile-backend", default="inductor",
                   help="torch.compile backend (default inductor)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                   help="only render results.md and plots from an existing results.json "
                        "(into --out, default: the json's directory)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.render is not None:
        if not args.render.is_file():
            print(f"error: --render {str(args.render)!r}: no such file", file=sys.stderr)
            return 2
        payload = json.loads(args.render.read_text(encoding="utf-8"))
        out = args.out or args.render.parent
        try:
            written = _report.render(payload, out, overwrite=args.overwrite)
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print("\n".join(str(p) for p in written))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: --device cuda, but torch {torch.__version__} sees no CUDA GPU "
              f"(torch.version.cuda={torch.version.cuda}); run on a GPU machine or use "
              "--device cpu", file=sys.stderr)
        return 2
    threads = args.threads if args.threads is not None else torch.get_num_threads()
    if threads < 1:
        print(f"error: --threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    out = args.out or default_output_dir("benchmarks", args.device)
    try:
        payload = run(args.device, args.quick, out, threads, not args.no_compile,
                      args.compile_backend, args.overwrite, not args.no_progress)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: partial results kept in {out}", file=sys.stderr)
        return 130
    print(_report.summary_table(payload))
    print(f"\nresults written to {out}/ (results.json, results.md, *.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
