"""Render a linear cross-entropy benchmark payload (``results.json``) as Markdown tables and
PNG plots of time and peak memory against the vocabulary size V.

Pure functions of the payload, so ``--render`` regenerates the files from a JSON measured
elsewhere (the GPU run). Every table follows the machine caption; every PNG carries the machine
in its title and the environment block in its metadata; a contended run opens with a warning
and its ratio cells are marked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from benchmarks import _render as shared
from benchmarks._linear_variants import LABELS, MATMUL, PASSES, UNFUSED, VARIANTS
from lossproofs.environment import claim_output, environment_markdown

METHOD_TEXT = """\
- Measurement: as `benchmarks.cross_entropy` (`benchmarks/_measure.py`): every point (shape ×
  pass) in k independent worker processes; in each, rotated rounds of one block of calls per
  variant; the ratio's 95 % interval is a Student-t interval over the k repeats' log ratios,
  so it includes the variation between processes a rerun meets. Markers: `⚠` contended,
  `†` precision target not reached, `~` indicative (`--quick`).
- Inputs: x (N × D) and W (V × D) with unit-variance logits, int64 targets of which 1/8 are
  `ignore_index` (−100); `forward` under `torch.no_grad()`, `forward+backward` returns the loss
  and the gradients of x and W.
- Peak: extra bytes held during one call above what was live before it (the inputs), first
  repeat; `× logits` divides it by the N × V logits' bytes in the input's dtype (what the
  chunked path avoids materialising); `÷ floor` is (inputs + peak) over (inputs + the
  gradients the pass must return), 1 being the least any implementation can hold.
- Roofline: the time this pass's matmuls (forward: x Wᵀ; backward also dx and dW, each
  2·N·D·V flops) take at the speed of `x @ Wᵀ` measured at the same point, over the variant's
  time: 100 % is nothing but matmuls at that speed. The backward's two matmuls have another
  inner dimension (N or V instead of D) and may run faster than the forward's, so a
  forward+backward figure above 100 % is possible: read it as relative between variants.
- Agreement: every variant's loss is checked against the unfused one within the dtype's bound
  (`benchmarks/_variants.py: agreement_tolerance`); this guards that the timed calls compute
  the same thing. Accuracy is the test suite's job.
"""


def _groups(records: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    """(device, dtype, N, D) in first-seen order: one set of tables per head shape."""
    seen: dict[tuple[str, str, int, int], None] = {}
    for r in records:
        seen.setdefault((r["device"], r["dtype"], r["N"], r["D"]), None)
    return list(seen)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.3g} %"


def _cells(records: list[dict[str, Any]], ratios: dict[tuple, dict[str, Any]],
           variant: str, what: str) -> list[str]:
    cells = []
    for r in records:
        if r["status"] != "ok" and what != "peak":
            cells.append(r["status"])
        elif what == "time":
            mark = " ⚠" if r.get("agrees") is False else ""
            median, iqr = shared.format_time(r["median_s"]), shared.format_time(r["iqr_s"])
            cells.append(f"{median} ({iqr}){mark}")
        elif what == "ratio":
            q = ratios.get((r["point"], variant))
            cells.append("—" if q is None else shared.ratio_cell(q))
        elif what == "peak":
            peak = shared.format_bytes(r["peak_bytes"])
            cells.append("—" if r["peak_bytes"] is None else
                         f"{peak} ({r['peak_over_logits']:.2g}× logits, "
                         f"{r['total_over_floor']:.2g}× floor)")
        else:
            cells.append(_pct(r["roofline"]) if variant != MATMUL else
                         f"{r['tflops']:.3g} TFLOP/s")
    return cells


TABLES = (("time", "Median time per call (IQR)"),
          ("ratio", "Time over `F.cross_entropy(x @ Wᵀ)` (95 % interval over worker repeats)"),
          ("peak", "Peak extra memory (× the logits' size, × the inputs + gradients floor)"),
          ("roofline", "Roofline: the pass's matmuls at the measured matmul speed, over the time"))


def _tables(payload: dict[str, Any], group: tuple[str, str, int, int]) -> list[str]:
    device, dtype, n, d = group
    sel = [r for r in payload["records"] if (r["device"], r["dtype"], r["N"], r["D"]) == group]
    ratios = {(q["point"], q["numerator"]): q for q in payload["ratios"]}
    lines = [f"## {device} {dtype}, N = {n} tokens, D = {d}", ""]
    for pass_ in PASSES:
        rows = [r for r in sel if r["pass"] == pass_]
        vs = sorted({r["V"] for r in rows})
        for what, caption in TABLES:
            lines += [f"**{pass_}: {caption}**", "",
                      "| variant | " + " | ".join(f"V = {v}" for v in vs) + " |",
                      "|---|" + "---:|" * len(vs)]
            for variant in VARIANTS:
                if what == "ratio" and variant in (MATMUL, UNFUSED):
                    continue  # no ratio: the yardstick, and the denominator itself
                by_v = {r["V"]: r for r in rows if r["variant"] == variant}
                if not any(r["status"] == "ok" for r in by_v.values()):
                    continue
                cells = _cells([by_v[v] for v in vs], ratios, variant, what)
                lines.append(f"| {LABELS[variant]} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def markdown(payload: dict[str, Any]) -> str:
    """results.md: environment, contention, precision, method, the tables per head shape and
    pass, then the variants not timed (with the reason) and any agreement failure."""
    env = payload["environment"]
    out = ["# Linear cross-entropy: the LM head and its loss, fused and unfused", "",
           f"_Machine: {shared.machine_line(env)}_", ""]
    if not payload.get("complete", True):
        out += ["> **INCOMPLETE RUN**: interrupted or capped; the points below are what was "
                "measured.", ""]
    out += [*shared.contention_markdown(payload), environment_markdown(env), "",
            *shared.calibration_lines(payload.get("calibration") or {}),
            *shared.precision_lines(payload)]
    for group in _groups(payload["records"]):
        out += _tables(payload, group)
    skipped = sorted({(r["variant"], r["status"], r["reason"]) for r in payload["records"]
                      if r["status"] not in ("ok", "missing") and r.get("reason")})
    if skipped:
        out += ["## Not timed", "", "| variant | status | why |", "|---|---|---|",
                *[f"| {LABELS.get(v, v)} | {s} | {why} |" for v, s, why in skipped], ""]
    bad = [r for r in payload["records"] if r.get("agrees") is False]
    if bad:
        out += ["## Disagreements", "", "A variant whose loss differed from the unfused one "
                "beyond the agreement bound (⚠ in the time table):", "",
                *[f"- {r['point']}: {LABELS[r['variant']]}, relative difference "
                  f"{r['max_rel_diff_vs_unfused']:.3g}" for r in bad], ""]
    out += ["## Method", "", METHOD_TEXT]
    return "\n".join(out)


def _sweeps(records: list[dict[str, Any]]) -> list[tuple[str, str, int, int]]:
    """Head shapes measured at two or more V (a line against V needs two points)."""
    return [g for g in _groups(records)
            if len({r["V"] for r in records
                    if (r["device"], r["dtype"], r["N"], r["D"]) == g}) >= 2]


def plots(payload: dict[str, Any], out: Path, overwrite: bool) -> list[Path]:
    """time_vs_V_<device>_<dtype>.png and memory_vs_V_<device>_<dtype>.png per V sweep: one
    line per variant, the logits' size and the gradients' floor drawn for scale."""
    meta = shared.png_metadata(payload["environment"], "lossproofs benchmarks.linear_cross_entropy")
    written: list[Path] = []
    for group in _sweeps(payload["records"]):
        device, dtype, n, d = group
        sel = [r for r in payload["records"] if r["status"] == "ok"
               and (r["device"], r["dtype"], r["N"], r["D"]) == group]
        panels: dict[str, list] = {"time": [], "memory": []}
        for pass_ in PASSES:
            rows = [r for r in sel if r["pass"] == pass_]
            time_lines, memory_lines = [], []
            for variant in VARIANTS:
                pts = sorted((r["V"], r) for r in rows if r["variant"] == variant)
                style = "--" if variant == MATMUL else "-"
                if len(pts) >= 2:
                    # median_s is the median of the repeats' medians, q1_s/q3_s are over all
                    # blocks: on a busy machine the median can lie outside [q1, q3], and
                    # matplotlib refuses a negative error bar, so each bar reaches the median
                    time_lines.append((LABELS[variant], [v for v, _ in pts],
                                       [r["median_s"] for _, r in pts],
                                       [min(r["q1_s"], r["median_s"]) for _, r in pts],
                                       [max(r["q3_s"], r["median_s"]) for _, r in pts], style))
                mem = [(v, r["peak_bytes"]) for v, r in pts if r["peak_bytes"]]
                if len(mem) >= 2:
                    memory_lines.append((LABELS[variant], [v for v, _ in mem],
                                         [b for _, b in mem], None, None, style))
            scale = sorted({r["V"]: r for r in rows}.items())
            if memory_lines:
                memory_lines.append(("N × V logits", [v for v, _ in scale],
                                     [r["logits_bytes"] for _, r in scale], None, None, ":"))
                if pass_ != "forward":
                    memory_lines.append(("dx + dW (the floor)", [v for v, _ in scale],
                                         [r["gradients_bytes"] for _, r in scale], None, None,
                                         "-."))
            title = f"{device} {dtype} N={n} D={d}: {pass_}"
            panels["time"].append((title, time_lines))
            panels["memory"].append((title, memory_lines))
        for what, ylabel in (("time", "median seconds per call (IQR bars)"),
                             ("memory", "peak extra bytes during one call")):
            path = claim_output(out / f"{what}_vs_V_{device}_{dtype}.png", overwrite)
            title = shared.plot_title(payload, f"linear cross-entropy: {what} vs V")
            if shared.plot_panels(path, panels[what], xlabel="vocabulary V", ylabel=ylabel,
                                  suptitle=title, meta=meta):
                written.append(path)
    return written


def render(payload: dict[str, Any], out: Path, overwrite: bool = False) -> list[Path]:
    """Write results.md and the PNGs into ``out``; refuses existing files unless ``overwrite``."""
    return shared.write_report(Path(out), markdown(payload), plots(payload, Path(out), overwrite),
                        overwrite)


def render_file(results_json: Path, out: Path | None, overwrite: bool) -> int:
    """``--render``: results.md and plots again from a results.json; an exit status."""
    if not results_json.is_file():
        print(f"error: --render {str(results_json)!r}: no such file", file=sys.stderr)
        return 2
    payload = json.loads(results_json.read_text(encoding="utf-8"))
    try:
        written = render(payload, out or results_json.parent, overwrite)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(str(p) for p in written))
    return 0


def summary(payload: dict[str, Any]) -> str:
    """The terminal's table: one line per point and variant, time, ratio, peak, roofline."""
    ratios = {(q["point"], q["numerator"]): q for q in payload["ratios"]}
    lines = [f"linear cross-entropy — {shared.machine_line(payload['environment'])}"
             + (" — CONTENDED" if payload.get("contended") else "")]
    for r in payload["records"]:
        q = ratios.get((r["point"], r["variant"]))
        time = r["status"] if r["median_s"] is None else shared.format_time(r["median_s"])
        lines.append(f"{r['point']:<48} {r['variant']:<18} {time:>10}  "
                     f"{(shared.ratio_cell(q, 2) if q else '—'):>24}  "
                     f"{shared.format_bytes(r['peak_bytes']):>9}  {_pct(r['roofline']):>8}")
    return "\n".join(lines)
