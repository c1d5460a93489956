"""Render a cross-entropy benchmark payload (``results.json``) as Markdown tables and PNG plots.

Pure functions of the payload, so ``--render`` regenerates the same files from a JSON measured
elsewhere (the GPU run). Every table is preceded by a one-line machine caption and every PNG
carries the machine in its title and the full environment block in its PNG metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks._variants import PASSES, VARIANTS
from lossproofs.environment import claim_output, environment_markdown, write_text


def format_time(seconds: float | None) -> str:
    """``1.23 ms``-style text with three significant digits; ``—`` for None."""
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def machine_line(env: dict[str, Any]) -> str:
    """One line naming the machine, for the caption above every table and plot."""
    parts = [env.get("gpu_name") or None, env.get("cpu_model"),
             f"{env.get('torch_num_threads')} thread(s)", f"torch {env.get('torch')}",
             f"commit {str(env.get('git_commit', 'unknown'))[:12]}"]
    return " · ".join(str(p) for p in parts if p)


def _unique(items: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _cell(rec: dict[str, Any] | None, what: str) -> str:
    if rec is None:
        return ""
    if rec["status"] != "ok":
        return rec["status"]
    if what == "time":
        mark = "" if rec.get("agrees") in (True, None) else " ⚠"
        return f"{format_time(rec['median_s'])} ({format_time(rec['iqr_s'])}){mark}"
    if what == "roofline":
        return f"{100 * rec['roofline_fraction']:.3g}% ({rec['gbps']:.3g} GB/s)"
    if rec["peak_over_logits"] is None:
        return "not measured"
    return f"{rec['peak_over_logits']:.3g}× ({format_bytes(rec['peak_bytes'])})"


def _table(records: list[dict[str, Any]], what: str, caption: str) -> list[str]:
    variants = [v for v in VARIANTS if any(r["variant"] == v and r["status"] != "skipped"
                                           for r in records)]
    if not variants:
        return []
    shapes = _unique((r["N"], r["C"]) for r in records)
    lines = [caption, "", "| N×C | " + " | ".join(f"`{v}`" for v in variants) + " |",
             "|---|" + "---:|" * len(variants)]
    by_key = {(r["N"], r["C"], r["variant"]): r for r in records}
    for n, c in shapes:
        cells = [_cell(by_key.get((n, c, v)), what) for v in variants]
        lines.append(f"| {n}×{c} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _ratio_table(ratios: list[dict[str, Any]], caption: str) -> list[str]:
    labels = _unique(f"{r['numerator']} / {r['denominator']}" for r in ratios)
    if not labels:
        return []
    lines = [caption, "", "| N×C | pass | " + " | ".join(f"`{lab}`" for lab in labels) + " |",
             "|---|---|" + "---:|" * len(labels)]
    rows = _unique((r["N"], r["C"], r["pass"]) for r in ratios)
    by_key = {(r["N"], r["C"], r["pass"], f"{r['numerator']} / {r['denominator']}"): r
              for r in ratios}
    for n, c, pass_ in rows:
        cells = []
        for lab in labels:
            r = by_key.get((n, c, pass_, lab))
            cells.append("" if r is None else
                         f"{r['ratio']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}]")
        lines.append(f"| {n}×{c} | {pass_} | " + " | ".join(cells) + " |")
    return [*lines, ""]


METHOD_TEXT = """\
- Time: `torch.utils.benchmark.Timer` (explicit `num_threads`; CUDA synchronised by the Timer's
  clock). A `blocked_autorange` per variant warms up (and, for `torch.compile`, compiles: compile
  time is excluded and reported separately) and sizes a block; then rounds of one block per
  variant run in rotated order so drift hits every variant alike. Cells: median per call over
  the blocks (IQR in parentheses). ⚠ marks a variant whose result differed from
  `F.cross_entropy` by more than the agreement bound.
- Ratios: geometric mean of the paired per-round block ratios, with a 95 % Student-t interval on
  the log ratios (`exp(mean ± t·sd/√n)`). Below 1 means the numerator is faster.
- Roofline: the least a pass must move (forward reads the N·C logits and the targets once;
  forward+backward also writes the N·C gradient) divided by the median time, as a fraction of
  the bandwidth measured in the same run by a plain kernel with the same access pattern
  (forward: `sum` read; forward+backward: `copy`).
- Peak memory: extra bytes held during one call above what was live before it (inputs
  excluded; the returned gradient included), and as a multiple of the logits' size. Method per
  record in `results.json` (`peak_method`): CUDA `max_memory_allocated` after a reset; CPU torch
  profiler allocation events (tensor storage only); NumPy via `tracemalloc`.
- `forward` is the training-mode forward: the logits require grad, so it includes saving what
  backward needs.
"""


def markdown(payload: dict[str, Any]) -> str:
    """results.md: header with the environment, method, then time / roofline / memory / ratio
    tables per (targets, dtype, pass), then skipped variants and agreement failures."""
    env = payload["environment"]
    cfg = payload.get("config", {})
    bw = payload.get("bandwidth", {})
    records, ratios = payload["records"], payload["ratios"]
    device = cfg.get("device", env.get("device"))
    caption = f"_Machine: {machine_line(env)}_"
    out = [
        f"# Cross-entropy benchmarks: {device}",
        "",
        "<!-- generated by `python -m benchmarks.cross_entropy`; do not edit by hand -->",
        "",
        environment_markdown(env),
        "",
        f"Run: {'quick' if cfg.get('quick') else 'full'} grid, {cfg.get('threads')} thread(s), "
        f"torch.compile {'on' if cfg.get('compile') else 'off'}"
        f" ({cfg.get('compile_backend')}). "
        + ("Complete." if payload.get("complete") else
           "**INCOMPLETE: the run was interrupted; these are the cases it finished.**"),
        "",
    ]
    if cfg.get("loadavg_start") is not None:
        out += [f"Load average (1, 5, 15 min) at start {cfg['loadavg_start']}, at end "
                f"{cfg.get('loadavg_end')}: other processes on these cores add noise.", ""]
    if bw:
        out += [f"Measured bandwidth ({format_bytes(bw['buffer_bytes'])} buffer): read "
                f"{bw['read_gbps']:.3g} GB/s, copy {bw['copy_gbps']:.3g} GB/s.", ""]
    out += ["## Method", "", METHOD_TEXT]
    groups = _unique((r["targets"], r["dtype"]) for r in records)
    for title, what in (("Time per call: median (IQR)", "time"),
                        ("Roofline: fraction of the measured bandwidth (achieved GB/s)",
                         "roofline"),
                        ("Peak memory: multiple of the logits' size (bytes)", "memory")):
        out += [f"## {title}", ""]
        for targets, dtype in groups:
            for pass_ in PASSES:
                sel = [r for r in records if (r["targets"], r["dtype"], r["pass"])
                       == (targets, dtype, pass_)]
                if sel:
                    out += [f"### {title.split(':')[0]}: {targets} targets, {dtype}, {pass_}",
                            ""]
                    out += _table(sel, what, caption)
    out += ["## Paired ratios with 95 % intervals", ""]
    for targets, dtype in groups:
        sel = [r for r in ratios if (r["targets"], r["dtype"]) == (targets, dtype)]
        if sel:
            out += [f"### {targets} targets, {dtype}", ""]
            out += _ratio_table(sel, caption)
    skipped = _unique((r["variant"], r["status"], r["reason"]) for r in records
                      if r["status"] != "ok")
    if skipped:
        out += ["## Not measured", "", "| variant | status | reason |", "|---|---|---|"]
        out += [f"| `{v}` | {s} | {reason} |" for v, s, reason in skipped]
        out += [""]
    disagree = [r for r in records if r.get("agrees") is False]
    if disagree:
        out += ["## Variants that disagreed with F.cross_entropy", ""]
        out += [f"- `{r['variant']}` {r['dtype']} {r['N']}×{r['C']} {r['targets']} {r['pass']}: "
                f"max relative difference {r['max_rel_diff_vs_fused']:.3g}" for r in disagree]
        out += [""]
    compiles = [r for r in records if r.get("compile_s") is not None]
    if compiles:
        out += ["## torch.compile time (first call, excluded from the timings)", "", caption, "",
                "| dtype | N×C | pass | seconds |", "|---|---|---|---:|"]
        out += [f"| {r['dtype']} | {r['N']}×{r['C']} | {r['pass']} | {r['compile_s']:.3g} |"
                for r in compiles]
        out += [""]
    return "\n".join(out)


def summary_table(payload: dict[str, Any]) -> str:
    """A short plain-text table for the terminal: fused vs composed per case and pass."""
    recs = {(r["dtype"], r["N"], r["C"], r["targets"], r["pass"], r["variant"]): r
            for r in payload["records"]}
    rats = {(r["dtype"], r["N"], r["C"], r["targets"], r["pass"], r["numerator"]): r
            for r in payload["ratios"]}
    head = (f"{'dtype':9s} {'N×C':>12s} {'targets':15s} {'pass':16s} {'fused':>9s} "
            f"{'composed':>9s} {'fused/comp [95% CI]':>22s} {'compiled/fused':>15s} "
            f"{'fused roof':>10s}")
    lines = [machine_line(payload["environment"]), head, "-" * len(head)]
    keys = _unique(k[:5] for k in recs)
    for key in keys:
        fused, comp = recs.get((*key, "F.cross_entropy")), recs.get(
            (*key, "F.nll_loss(F.log_softmax)"))
        ratio = rats.get((*key, "F.cross_entropy"))
        comp_ratio = rats.get((*key, "torch.compile(F.cross_entropy)"))
        ok = fused is not None and fused["status"] == "ok"
        lines.append(
            f"{key[0]:9s} {f'{key[1]}×{key[2]}':>12s} {key[3]:15s} {key[4]:16s} "
            f"{format_time(fused['median_s']) if ok else '—':>9s} "
            f"{format_time(comp['median_s']) if comp and comp['status'] == 'ok' else '—':>9s} "
            + (f"{ratio['ratio']:.2f} [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}]"
               if ratio else "—").rjust(22)
            + " " + (f"{comp_ratio['ratio']:.2f}" if comp_ratio else "—").rjust(15)
            + " " + (f"{100 * fused['roofline_fraction']:.1f}%" if ok else "—").rjust(10))
    return "\n".join(lines)


def _sweeps(records: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(device, dtype, N) groups of index-target sweep records with at least 3 widths."""
    keys = _unique((r["device"], r["dtype"], r["N"]) for r in records
                   if r["group"] == "sweep" and r["targets"] == "index")
    return [k for k in keys if len({r["C"] for r in records if r["group"] == "sweep"
                                    and (r["device"], r["dtype"], r["N"]) == k}) >= 3]


def plots(payload: dict[str, Any], out: Path, overwrite: bool) -> list[Path]:
    """time_vs_C_<device>_<dtype>.png and ratio_vs_C_<device>_<dtype>.png per C sweep."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    env = payload["environment"]
    meta = {"Software": "lossproofs benchmarks.cross_entropy",
            "Description": json.dumps(env, default=str)}
    written: list[Path] = []
    records = [r for r in payload["records"] if r["group"] == "sweep" and r["targets"] == "index"]
    ratios = [r for r in payload["ratios"] if r["group"] == "sweep" and r["targets"] == "index"]
    for device, dtype, n in _sweeps(records):
        sel = [r for r in records if (r["device"], r["dtype"], r["N"]) == (device, dtype, n)
               and r["status"] == "ok"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=False)
        for ax, pass_ in zip(axes, PASSES, strict=True):
            for variant in VARIANTS:
                pts = sorted((r["C"], r["median_s"], r["q1_s"], r["q3_s"]) for r in sel
                             if r["variant"] == variant and r["pass"] == pass_)
                if not pts:
                    continue
                c, med, q1, q3 = zip(*pts, strict=True)
                yerr = [[m - lo for m, lo in zip(med, q1, strict=True)],
                        [hi - m for m, hi in zip(med, q3, strict=True)]]
                ax.errorbar(c, med, yerr=yerr, marker="o", ms=3, capsize=2, label=variant)
            ax.set(xscale="log", yscale="log", xlabel="classes C", ylabel="seconds per call",
                   title=f"{pass_}, N={n}, {dtype}")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"cross-entropy time vs C (median, IQR bars) — {machine_line(env)}",
                     fontsize=8)
        fig.tight_layout()
        path = claim_output(out / f"time_vs_C_{device}_{dtype}.png", overwrite)
        fig.savefig(path, dpi=110, metadata=meta)
        plt.close(fig)
        written.append(path)

        rsel = [r for r in ratios if (r["device"], r["dtype"], r["N"]) == (device, dtype, n)]
        if not rsel:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
        for ax, pass_ in zip(axes, PASSES, strict=True):
            for label in _unique(f"{r['numerator']} / {r['denominator']}" for r in rsel):
                pts = sorted((r["C"], r["ratio"], r["ci_low"], r["ci_high"]) for r in rsel
                             if r["pass"] == pass_
                             and f"{r['numerator']} / {r['denominator']}" == label)
                if not pts:
                    continue
                c, ratio, lo, hi = zip(*pts, strict=True)
                yerr = [[r - a for r, a in zip(ratio, lo, strict=True)],
                        [b - r for r, b in zip(ratio, hi, strict=True)]]
                ax.errorbar(c, ratio, yerr=yerr, marker="o", ms=3, capsize=2, label=label)
            ax.axhline(1.0, color="black", lw=0.8)
            ax.set(xscale="log", yscale="log", xlabel="classes C", ylabel="time ratio",
                   title=f"{pass_}, N={n}, {dtype}")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"paired time ratios with 95% t-intervals — {machine_line(env)}", fontsize=8)
        fig.tight_layout()
        path = claim_output(out / f"ratio_vs_C_{device}_{dtype}.png", overwrite)
        fig.savefig(path, dpi=110, metadata=meta)
        plt.close(fig)
        written.append(path)
    return written


def render(payload: dict[str, Any], out: Path, overwrite: bool = False) -> list[Path]:
    """Write results.md and the PNGs into ``out``; refuses existing files unless ``overwrite``."""
    out = Path(out)
    text = markdown(payload)
    pngs = plots(payload, out, overwrite)
    if pngs:
        text += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    return [write_text(out / "results.md", text, overwrite), *pngs]
