"""Benchmark ``F.linear_cross_entropy`` (torch ≥ 2.13): the reference path (linear, then
cross_entropy: the N × V logits materialised) against the chunked path under each
``acc_policy``: time and peak memory, forward and forward+backward.

Usage (from the repository root)::

    python -m benchmarks.linear_cross_entropy                 # the CPU grid
    python -m benchmarks.linear_cross_entropy --quick         # smoke run, < 60 s, indicative
    python -m benchmarks.linear_cross_entropy --device cuda   # the GPU grid
    python -m benchmarks.linear_cross_entropy --out DIR

Writes ``results.json`` (rewritten after every repeat) and ``results.md`` into ``--out``
(default ``results/benchmarks/linear_cross_entropy-<UTC stamp>-<device>``). Each record has
``variant, device, dtype, N, D, V, pass, status, median_s, iqr_s, peak_bytes`` (and the
interquartile range's ends, the repeats, the peak measured relative to the logits' size, and
the variant's agreement with the reference path); each ratio is a chunked variant's time over
the reference path's, with its 95 % interval.

How it measures: :mod:`benchmarks._measure`, the measurement core ``benchmarks.cross_entropy``
uses (worker processes, rotated rounds, contention checks, precision-targeted repeats); peak
memory by :func:`benchmarks._memory.peak_bytes`. Variants: ``reference`` (``options=None``) and
``chunked[<policy>]`` for accurate/balanced/compact/auto, each with torch's default chunking
(``chunking_method="auto"``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmarks._measure import MeasureConfig, Point, Prepared, Suite, calibrate, measure
from benchmarks._memory import peak_bytes
from benchmarks._progress import progress_bar
from benchmarks._variants import agreement_tolerance, as_tensor
from lossproofs.environment import (
    claim_output,
    default_output_dir,
    environment,
    environment_markdown,
    write_json,
    write_text,
)

SCHEMA = "lossproofs.benchmarks.linear_cross_entropy/1"
REFERENCE = "reference"
POLICIES = ("accurate", "balanced", "compact", "auto")
VARIANTS = (REFERENCE, *(f"chunked[{p}]" for p in POLICIES))
PASSES = ("forward", "forward+backward")
RATIO_PAIRS = tuple((v, REFERENCE) for v in VARIANTS[1:])

CONFIGS = {
    "quick": MeasureConfig(block_s=0.003, rounds_min=3, rounds_max=5, point_budget_s=0.1,
                           min_repeats=2, max_repeats=2, time_cap_s=60.0, indicative=True,
                           idle_sample_s=0.3),
    "cpu": MeasureConfig(block_s=0.05, rounds_min=3, rounds_max=8, point_budget_s=2.0,
                         min_repeats=3, max_repeats=6, time_cap_s=900.0),
    "cuda": MeasureConfig(block_s=0.01, rounds_min=3, rounds_max=10, point_budget_s=0.5,
                          min_repeats=3, max_repeats=8, time_cap_s=300.0),
}


@dataclass(frozen=True)
class LinearCase:
    """One shape: N tokens of hidden size D, a vocabulary of V classes, in ``dtype``."""

    device: str
    dtype: str
    N: int
    D: int
    V: int

    @property
    def logits_bytes(self) -> int:
        """Bytes of the N × V logits in the input's dtype: what the chunked path avoids."""
        return self.N * self.V * torch.tensor([], dtype=getattr(torch, self.dtype)).element_size()

    def key(self, pass_: str) -> str:
        return f"{self.dtype} N={self.N} D={self.D} V={self.V} {pass_}"


def cpu_grid(quick: bool) -> list[LinearCase]:
    """float32 at two vocabulary sizes, and bfloat16 (where the CPU's policies differ most:
    only "accurate" runs its weight-gradient matmul in float32, the others hit emulated
    low-precision matmuls)."""
    if quick:
        return [LinearCase("cpu", "float32", 256, 64, 4096),
                LinearCase("cpu", "bfloat16", 128, 64, 4096)]
    return [LinearCase("cpu", "float32", 1024, 256, 8192),
            LinearCase("cpu", "float32", 1024, 256, 32000),
            LinearCase("cpu", "bfloat16", 512, 256, 32000)]


def cuda_grid(quick: bool) -> list[LinearCase]:
    """Language-model heads: bfloat16 (and float32, float16) at V = 32000 and 131072."""
    if quick:
        return [LinearCase("cuda", "bfloat16", 4096, 1024, 32000)]
    cases = [LinearCase("cuda", "bfloat16", n, 2048, v) for n in (4096, 16384)
             for v in (32000, 131072)]
    cases += [LinearCase("cuda", "float32", 4096, 2048, 32000),
              LinearCase("cuda", "float16", 4096, 2048, 131072)]
    return cases


# -- in the worker ---------------------------------------------------------------------------
_CACHE: dict[str, Any] = {}


def make_inputs(case: LinearCase):
    """Hidden states, LM-head weight and targets (1/8 of them ignored), seeded; logits of a
    few units, as a trained head's."""
    g = torch.Generator().manual_seed(0)
    dt = getattr(torch, case.dtype)
    x = (torch.randn(case.N, case.D, generator=g) / case.D ** 0.25).to(case.device, dt)
    w = (torch.randn(case.V, case.D, generator=g) / case.D ** 0.25).to(case.device, dt)
    t = torch.randint(0, case.V, (case.N,), generator=g)
    t[torch.rand(case.N, generator=g) < 0.125] = -100
    return x, w, t.to(case.device)


def _options(variant: str):
    if variant == REFERENCE:
        return None
    return torch.nn.LinearCrossEntropyOptions(acc_policy=variant[len("chunked["):-1])


def _call(variant: str, pass_: str, x, w, t):
    options = _options(variant)
    if pass_ == "forward":
        def forward():
            with torch.no_grad():
                return torch.nn.functional.linear_cross_entropy(x, w, t, options=options)
        return forward
    xg = x.detach().requires_grad_(True)
    wg = w.detach().requires_grad_(True)

    def forward_backward():
        loss = torch.nn.functional.linear_cross_entropy(xg, wg, t, options=options)
        gx, gw = torch.autograd.grad(loss, (xg, wg))
        return loss.detach(), gx, gw
    return forward_backward


def setup_point(params: dict[str, Any], repeat: int) -> Prepared:
    """:class:`benchmarks._measure.Prepared` for one case and pass; on the first repeat also
    each variant's agreement with the reference path and its peak memory."""
    case = LinearCase(**params["case"])
    pass_ = params["pass"]
    if _CACHE.get("case") != case:
        _CACHE.clear()
        _CACHE.update(case=case, inputs=make_inputs(case))
    x, w, t = _CACHE["inputs"]
    out = Prepared(calls={v: _call(v, pass_, x, w, t) for v in VARIANTS})
    if repeat == 0:
        _check_agreement(case, out)
        for name, fn in out.calls.items():
            peak, method = peak_bytes(fn, case.device)
            out.info.setdefault(name, {}).update(peak_bytes=peak, peak_method=method)
    return out


def _first(value):
    return value[0] if isinstance(value, tuple) else value


def _check_agreement(case: LinearCase, prepared: Prepared) -> None:
    """Every variant's loss must be the reference path's (a guard that the timed calls
    compute the same thing, not an accuracy claim: the test suite makes those)."""
    expected = as_tensor(_first(prepared.calls[REFERENCE]()), case.device, torch.float64)
    scale = max(float(expected.abs().max()), 1e-30)
    for name in list(prepared.calls):
        try:
            got = as_tensor(_first(prepared.calls[name]()), case.device, torch.float64)
        except Exception as exc:
            if "out of memory" in str(exc):
                raise
            del prepared.calls[name]
            prepared.excluded[name] = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        rel = float((got - expected).abs().max()) / scale
        prepared.info.setdefault(name, {}).update(
            max_rel_diff_vs_reference=rel, agrees=bool(rel <= agreement_tolerance(case.dtype)))


# -- the run ---------------------------------------------------------------------------------
def _record(case: LinearCase, pass_: str, variant: str, pt: dict[str, Any]) -> dict[str, Any]:
    v = pt["variants"].get(variant) or {}
    status = pt["status"] if pt["status"] != "ok" else v.get("status", "missing")
    info = v.get("info", {})
    peak = info.get("peak_bytes")
    rec = {"point": pt["key"], "variant": variant, "device": case.device, "dtype": case.dtype,
           "N": case.N, "D": case.D, "V": case.V, "pass": pass_, "status": status,
           "reason": pt["reason"] if pt["status"] != "ok" else v.get("reason"),
           "median_s": None, "q1_s": None, "q3_s": None, "iqr_s": None,
           "repeats": pt["repeats"], "contended": pt["contended"],
           "peak_bytes": peak, "peak_method": info.get("peak_method"),
           "logits_bytes": case.logits_bytes,
           "peak_over_logits": None if peak is None else peak / case.logits_bytes,
           "max_rel_diff_vs_reference": info.get("max_rel_diff_vs_reference"),
           "agrees": info.get("agrees")}
    if status == "ok":
        rec.update({k: v[k] for k in ("median_s", "q1_s", "q3_s", "iqr_s")})
    return rec


def payload_from(result: dict[str, Any], cases: list[LinearCase], base: dict[str, Any]):
    by_key = {p["key"]: p for p in result["points"]}
    records, ratios = [], []
    for case in cases:
        for pass_ in PASSES:
            pt = by_key.get(case.key(pass_))
            if pt is None:
                continue
            records += [_record(case, pass_, v, pt) for v in VARIANTS]
            ratios += [{"point": pt["key"], "dtype": case.dtype, "N": case.N, "D": case.D,
                        "V": case.V, "pass": pass_, **r} for r in pt["ratios"]]
    return {**base, "calibration": result["calibration"], "contended": result["contended"],
            "warnings": result["warnings"], "elapsed_s": result["elapsed_s"],
            "records": records, "ratios": ratios, "complete": result["complete"]}


def _fmt(v, unit=""):
    return "—" if v is None else f"{v:.3g}{unit}"


def render(payload: dict[str, Any]) -> str:
    """results.md: one table of time and peak memory per case, pass and variant."""
    lines = ["# linear_cross_entropy: reference path vs chunked path", "",
             environment_markdown(payload["environment"]), "",
             "Times are medians over blocks of calls (interquartile range in brackets); peak is "
             "the extra memory held during one call, also as a multiple of the N × V logits.",
             "" if not payload.get("contended") else
             "**Contention was observed during this run: treat the times as indicative.**", "",
             "| dtype | N | D | V | pass | variant | median | IQR | peak | peak / logits | "
             "vs reference (95 % CI) | agrees |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratio = {(r["point"], r["numerator"]): r for r in payload["ratios"]}
    for r in payload["records"]:
        q = ratio.get((r["point"], r["variant"]))
        rel = "—" if q is None else f"{q['ratio']:.2f} [{q['ci_low']:.2f}, {q['ci_high']:.2f}]"
        time = (f"{r['status']}" if r["median_s"] is None else f"{r['median_s'] * 1e3:.3g} ms")
        iqr = "—" if r["iqr_s"] is None else f"{r['iqr_s'] * 1e3:.2g} ms"
        peak = "—" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.3g} MiB"
        lines.append(f"| {r['dtype']} | {r['N']} | {r['D']} | {r['V']} | {r['pass']} | "
                     f"{r['variant']} | {time} | {iqr} | {peak} | "
                     f"{_fmt(r['peak_over_logits'], '×')} | {rel} | {r['agrees']} |")
    return "\n".join(lines) + "\n"


def run(device: str, quick: bool, out: Path, config: MeasureConfig, overwrite: bool = False,
        progress: bool = True, cases: list[LinearCase] | None = None) -> dict[str, Any]:
    """Calibrate, measure the grid (``results.json`` after every repeat), render."""
    for path in (out / "results.json", out / "results.md"):
        claim_output(path, overwrite)
    torch.set_num_threads(config.threads)
    if cases is None:
        cases = cuda_grid(quick) if device == "cuda" else cpu_grid(quick)
    calibration = calibrate(device, config.threads, config.idle_sample_s)
    base = {"schema": SCHEMA, "environment": environment(device),
            "config": {"device": device, "quick": quick, "threads": config.threads,
                       "measure": asdict(config), "cases": [asdict(c) for c in cases],
                       "variants": list(VARIANTS)}}
    state: dict[str, Any] = {"payload": None}

    def save(result: dict[str, Any]) -> None:
        state["payload"] = payload_from(result, cases, base)
        write_json(out / "results.json", state["payload"], overwrite=True)

    points = [Point(key=c.key(p), params={"case": asdict(c), "pass": p})
              for c in cases for p in PASSES]
    suite = Suite("benchmarks.linear_cross_entropy:setup_point", RATIO_PAIRS, device)
    bar = progress_bar(len(points), desc=f"linear_cross_entropy {device}", disable=not progress,
                       unit="point")
    try:
        save(measure(suite, points, config, on_update=save, progress=bar,
                     calibration=calibration))
    finally:
        bar.close()
        if state["payload"] is not None:
            write_text(out / "results.md", render(state["payload"]), overwrite=True)
    return state["payload"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.linear_cross_entropy",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run (< 60 s), indicative")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not hasattr(torch.nn.functional, "linear_cross_entropy"):
        print(f"error: torch {torch.__version__} has no F.linear_cross_entropy (torch ≥ 2.13)",
              file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA GPU", file=sys.stderr)
        return 2
    kind = "quick" if args.quick else ("cuda" if args.device == "cuda" else "cpu")
    config = replace(CONFIGS[kind], threads=args.threads)
    out = args.out or default_output_dir("benchmarks", f"linear_cross_entropy-{args.device}")
    try:
        payload = run(args.device, args.quick, out, config, args.overwrite, not args.no_progress)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: partial results kept in {out}", file=sys.stderr)
        return 130
    print(render(payload))
    print(f"results written to {out}/")
    print(json.dumps({"contended": payload["contended"], "warnings": payload["warnings"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
