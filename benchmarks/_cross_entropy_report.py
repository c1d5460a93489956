"""Render a cross-entropy benchmark payload (``results.json``) as Markdown tables and PNG plots,
and a reproducibility comparison of two runs.

Pure functions of the payload, so ``--render`` regenerates the same files from a JSON measured
elsewhere (the GPU run). Every table is preceded by a one-line machine caption and every PNG
carries the machine in its title and the full environment block in its PNG metadata. A
contended run opens with a warning, and its ratio cells are marked (:func:`ratio_cell`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks._render import (
    calibration_lines,
    contention_markdown,
    format_bytes,
    format_time,
    machine_line,
    plot_panels,
    plot_title,
    png_metadata,
    precision_lines,
    ratio_cell,
    write_report,
)
from benchmarks._variants import PASSES, VARIANTS
from lossproofs.environment import claim_output, environment_markdown, write_text

__all__ = ["format_bytes", "format_time", "machine_line", "markdown", "plots", "ratio_cell",
           "render", "reproducibility_summary", "summary_table", "write_reproducibility"]


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
            cells.append("" if r is None else ratio_cell(r))
        lines.append(f"| {n}×{c} | {pass_} | " + " | ".join(cells) + " |")
    return [*lines, ""]


METHOD_TEXT = """\
- Repeats: every point (case × pass) is measured in k **independent worker processes**, one
  after another and spread over the run (repeat 2 of every point after repeat 1 of every
  point). In each, every variant is warmed up (`torch.compile` compiles here: excluded from
  the timings, first-repeat compile time listed below), a block of calls is sized to a fixed
  duration, and rounds of one block per variant run in an order rotated every round. CPU blocks
  are timed with `perf_counter`, CUDA blocks with events after a synchronise.
- Cells: median per call (the median of the repeats' medians), IQR over all blocks of all
  repeats in parentheses. ⚠ after a time marks a variant whose result differed from
  `F.cross_entropy` by more than the agreement bound.
- Ratios: per repeat, the median of the paired per-round block ratios; the estimate is
  the geometric mean over the k repeats and the **95 % interval is a Student-t interval over
  the k repeats' log ratios** (`exp(mean ± t·sd/√k)`), so it includes the variation between
  processes that a rerun meets, not only the noise within one. Points get more repeats until
  every ratio's half-width is below the target or the time cap is reached. Below 1 means the
  numerator is faster. Markers: `⚠` measured under contention, `†` precision target not
  reached, `~` indicative (a `--quick` smoke run).
- Roofline: the least a pass must move (forward reads the N·C logits and the targets once;
  forward+backward also writes the N·C gradient) divided by the median time, as a fraction of
  the bandwidth measured in the same run by a plain kernel with the same access pattern
  (forward: `sum` read; forward+backward: `copy`).
- Peak memory (first repeat): extra bytes held during one call above what was live before it
  (inputs excluded; the returned gradient included), and as a multiple of the logits' size.
  Method per record in `results.json` (`peak_method`): CUDA `max_memory_allocated` after a
  reset; CPU torch profiler allocation events (tensor storage only); NumPy via `tracemalloc`.
- `forward` is the training-mode forward: the logits require grad, so it includes saving what
  backward needs.
- Contention: before the grid, an idle sample of other processes' CPU use and a probe kernel at
  the run's thread count and at one thread; around every point in every worker, other
  processes' CPU use, CPU steal and the probe again (`benchmarks/_contention.py`).
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
        *contention_markdown(payload),
        *([] if not cfg.get("quick") else [
            "> **Indicative only**: a `--quick` smoke run (tiny blocks, 3 repeats, no precision "
            "target). Do not cite these numbers.", ""]),
        f"Run: {'quick' if cfg.get('quick') else 'full'} grid, {cfg.get('threads')} thread(s), "
        f"torch.compile {'on' if cfg.get('compile') else 'off'}"
        f" ({cfg.get('compile_backend')}), {payload.get('elapsed_s', 0):.0f} s. "
        + ("Complete." if payload.get("complete") else
           "**INCOMPLETE: the run was interrupted; these are the points it finished.**"),
        "",
        *calibration_lines(payload.get("calibration") or {}),
        *precision_lines(payload),
    ]
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
    out += ["## Ratios with 95 % intervals over worker repeats", ""]
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
    contended = _unique((r["point"], "; ".join(r["contention_reasons"])) for r in records
                        if r.get("contended"))
    if contended:
        out += ["## Points measured under contention", "", "| point | observed |", "|---|---|"]
        out += [f"| {k} | {why} |" for k, why in contended]
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
            f"{'composed':>9s} {'fused/comp [95% CI]':>26s} {'compiled/fused':>15s} "
            f"{'fused roof':>10s}")
    lines = [machine_line(payload["environment"]), head, "-" * len(head)]
    for key in _unique(k[:5] for k in recs):
        fused = recs.get((*key, "F.cross_entropy"))
        comp = recs.get((*key, "F.nll_loss(F.log_softmax)"))
        ratio = rats.get((*key, "F.cross_entropy"))
        comp_ratio = rats.get((*key, "torch.compile(F.cross_entropy)"))
        ok = fused is not None and fused["status"] == "ok"
        lines.append(
            f"{key[0]:9s} {f'{key[1]}×{key[2]}':>12s} {key[3]:15s} {key[4]:16s} "
            f"{format_time(fused['median_s']) if ok else '—':>9s} "
            f"{format_time(comp['median_s']) if comp and comp['status'] == 'ok' else '—':>9s} "
            + (ratio_cell(ratio, 2) if ratio else "—").rjust(26)
            + " " + (f"{comp_ratio['ratio']:.2f}" if comp_ratio else "—").rjust(15)
            + " " + (f"{100 * fused['roofline_fraction']:.1f}%" if ok else "—").rjust(10))
    lines.append("markers: ~ indicative (quick run), ⚠ contended, † precision target not reached")
    if payload.get("contended"):
        lines.append("CONTENDED RUN: " + " | ".join(payload.get("warnings", [])))
    return "\n".join(lines)


def _sweeps(records: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(device, dtype, N) groups of index-target sweep records with at least 3 widths."""
    keys = _unique((r["device"], r["dtype"], r["N"]) for r in records
                   if r["group"] == "sweep" and r["targets"] == "index")
    return [k for k in keys if len({r["C"] for r in records if r["group"] == "sweep"
                                    and (r["device"], r["dtype"], r["N"]) == k}) >= 3]


def plots(payload: dict[str, Any], out: Path, overwrite: bool) -> list[Path]:
    """time_vs_C_<device>_<dtype>.png and ratio_vs_C_<device>_<dtype>.png per C sweep."""
    meta = png_metadata(payload["environment"], "lossproofs benchmarks.cross_entropy")
    written: list[Path] = []
    records = [r for r in payload["records"] if r["group"] == "sweep" and r["targets"] == "index"
               and r["status"] == "ok"]
    ratios = [r for r in payload["ratios"] if r["group"] == "sweep" and r["targets"] == "index"]
    for device, dtype, n in _sweeps(payload["records"]):
        shape = (device, dtype, n)
        sel = [r for r in records if (r["device"], r["dtype"], r["N"]) == shape]
        time_panels = []
        for pass_ in PASSES:
            series = []
            for variant in VARIANTS:
                pts = sorted((r["C"], r["median_s"], r["q1_s"], r["q3_s"]) for r in sel
                             if r["variant"] == variant and r["pass"] == pass_)
                if pts:
                    c, med, q1, q3 = (list(col) for col in zip(*pts, strict=True))
                    series.append((variant, c, med, q1, q3, "-"))
            time_panels.append((f"{pass_}, N={n}, {dtype}", series))
        rsel = [r for r in ratios if (r["device"], r["dtype"], r["N"]) == shape]
        ratio_panels = []
        for pass_ in PASSES:
            series = []
            for label in _unique(f"{r['numerator']} / {r['denominator']}" for r in rsel):
                pts = sorted((r["C"], r["ratio"], r["ci_low"], r["ci_high"]) for r in rsel
                             if r["pass"] == pass_
                             and f"{r['numerator']} / {r['denominator']}" == label)
                if pts:
                    c, ratio, lo, hi = (list(col) for col in zip(*pts, strict=True))
                    series.append((label, c, ratio, lo, hi, "-"))
            ratio_panels.append((f"{pass_}, N={n}, {dtype}", series))
        for name, panels, ylabel, what, hline in (
                ("time_vs_C", time_panels, "seconds per call",
                 "cross-entropy time vs C (median, IQR bars)", None),
                ("ratio_vs_C", ratio_panels, "time ratio",
                 "time ratios, 95% intervals over worker repeats", 1.0)):
            path = claim_output(out / f"{name}_{device}_{dtype}.png", overwrite)
            if plot_panels(path, panels, xlabel="classes C", ylabel=ylabel,
                           suptitle=plot_title(payload, what), meta=meta, hline=hline,
                           sharey=hline is not None):
                written.append(path)
    return written


def render(payload: dict[str, Any], out: Path, overwrite: bool = False) -> list[Path]:
    """Write results.md and the PNGs into ``out``; refuses existing files unless ``overwrite``."""
    return write_report(Path(out), markdown(payload), plots(payload, Path(out), overwrite),
                        overwrite)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.3g} %"


def reproducibility_markdown(rep: dict[str, Any]) -> str:
    """reproducibility.md: the two runs, the summary figures and every matched ratio."""
    env = rep["a"]["environment"]
    out = ["# Cross-entropy benchmark: reproducibility between two runs", "",
           "<!-- generated by `python -m benchmarks.cross_entropy --reproducibility` or "
           "`--compare`; do not edit by hand -->", "",
           f"_Machine: {machine_line(env)}_", ""]
    for side in ("a", "b"):
        run = rep[side]
        out.append(f"- run {side.upper()}: `{run['path']}`, measured "
                   f"{run['environment'].get('timestamp_utc')}, "
                   f"{(run.get('elapsed_s') or 0):.0f} s, "
                   + ("**contended**: " + "; ".join(run["warnings"]) if run.get("contended")
                      else "not flagged as contended"))
    if rep.get("quick"):
        out += ["", "> Quick runs: indicative only."]
    if not rep.get("matched"):
        return "\n".join([*out, "", "No ratio appears in both runs.", ""])
    out += ["", "| figure | value |", "|---|---:|",
            f"| ratios matched | {rep['matched']} |",
            f"| median run-to-run change \\|r_B/r_A − 1\\| | {_pct(rep['median_change'])} |",
            f"| 90th percentile of the change | {_pct(rep['p90_change'])} |",
            f"| largest change | {_pct(rep['max_change'])} |",
            f"| ratios that moved by more than 5 % | {_pct(rep['share_change_above_5pct'])} |",
            f"| A's 95 % intervals that contain B's estimate | "
            f"{_pct(rep['share_a_contains_b'])} |",
            f"| B's 95 % intervals that contain A's estimate | "
            f"{_pct(rep['share_b_contains_a'])} |",
            f"| pairs of intervals that do not overlap | {rep['non_overlapping']} |",
            f"| pairs in which either run was contended | {rep['contended_pairs']} |", "",
            "A calibrated 95 % interval contains an independent rerun's estimate about 83 % of "
            "the time (the difference of two estimates has √2 times one's standard error); a "
            "Student-t interval from k repeats somewhat more often (91 % at k = 3, 88 % at "
            "k = 5, 86 % at k = 8), because its width is itself estimated.", "",
            "| point | ratio | A [95 %] | B [95 %] | change | A∋B | B∋A |",
            "|---|---|---:|---:|---:|:-:|:-:|"]
    for r in sorted(rep["rows"], key=lambda r: -r["change"]):
        out.append(f"| {r['point']} | `{r['numerator']}` / `{r['denominator']}` | "
                   f"{r['ratio_a']:.3g} [{r['ci_a'][0]:.3g}, {r['ci_a'][1]:.3g}] | "
                   f"{r['ratio_b']:.3g} [{r['ci_b'][0]:.3g}, {r['ci_b'][1]:.3g}] | "
                   f"{_pct(r['change'])} | {'yes' if r['a_contains_b'] else 'no'} | "
                   f"{'yes' if r['b_contains_a'] else 'no'} |")
    out += ["", "## Environment (run A)", "", environment_markdown(env), ""]
    return "\n".join(out)


def write_reproducibility(rep: dict[str, Any], out: Path, overwrite: bool) -> Path:
    return write_text(Path(out) / "reproducibility.md", reproducibility_markdown(rep), overwrite)


def reproducibility_summary(rep: dict[str, Any]) -> str:
    """Two lines for the terminal."""
    if not rep.get("matched"):
        return "reproducibility: no ratio appears in both runs"
    flags = [s.upper() for s in ("a", "b") if rep[s].get("contended")]
    return (f"reproducibility over {rep['matched']} ratios: median run-to-run change "
            f"{_pct(rep['median_change'])}, {_pct(rep['share_change_above_5pct'])} moved > 5 %; "
            f"intervals containing the other run's estimate: A {_pct(rep['share_a_contains_b'])}"
            f", B {_pct(rep['share_b_contains_a'])}"
            + (f"\nWARNING: contended run(s): {', '.join(flags)}" if flags else ""))
