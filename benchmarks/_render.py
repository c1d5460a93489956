"""Rendering helpers shared by the benchmark reports: number formats, the machine caption,
strict JSON, PNG metadata, the contention warning every output carries, and the note (on the
terminal and in the results) when matplotlib is missing and no plots were written."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

MATPLOTLIB_MISSING = ("matplotlib is not installed, so no plots were written "
                      "(pip install 'lossproofs[bench]')")
_ANNOUNCED: set[str] = set()  # notes already printed by this process


def missing_plots_note() -> str | None:
    """:data:`MATPLOTLIB_MISSING` when matplotlib cannot be imported here, else None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return MATPLOTLIB_MISSING
    return None


def announce(note: str) -> None:
    """Print ``lossproofs: <note>`` on stderr, once per process (a ``--reproducibility`` run
    renders twice)."""
    if note not in _ANNOUNCED:
        _ANNOUNCED.add(note)
        print(f"lossproofs: {note}", file=sys.stderr)


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


def fmt(value: Any, spec: str = ".3g") -> str:
    """A table cell: ``—`` for None, yes/no for booleans, ``spec`` for floats."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def json_safe(value: Any) -> Any:
    """Replace non-finite floats by the strings ``"nan"``, ``"inf"``, ``"-inf"`` (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def machine_line(env: dict[str, Any]) -> str:
    """One line naming the machine, for the caption above every table and plot."""
    parts = [env.get("gpu_name") or None, env.get("cpu_model"),
             f"{env.get('torch_num_threads')} thread(s)", f"torch {env.get('torch')}",
             f"commit {str(env.get('git_commit', 'unknown'))[:12]}"]
    return " · ".join(str(p) for p in parts if p)


def png_metadata(env: dict[str, Any], software: str) -> dict[str, str]:
    """PNG text chunks: the producing script and the full environment block."""
    return {"Software": software, "Description": json.dumps(env, default=str)}


def contention_markdown(payload: dict[str, Any]) -> list[str]:
    """The warning block for a contended run (empty list for a quiet one)."""
    if not payload.get("contended"):
        return []
    return ["> **⚠ CONTENDED RUN.** Other work competed for this machine while it was measured; "
            "its times and ratios describe that machine state, not the code alone, and may "
            "not survive a rerun. Observed:", ">",
            *[f"> - {w}" for w in payload.get("warnings", [])], ""]


def ratio_cell(r: dict[str, Any], digits: int = 3) -> str:
    """``0.95 [0.93, 0.97]`` with markers: ``~`` indicative (quick run), ``⚠`` contended,
    ``†`` the precision target was not reached; no interval with fewer than 2 repeats."""
    mark = ("~" if r.get("indicative") and not r.get("contended") else "")
    text = f"{mark}{r['ratio']:.{digits}g}"
    if r.get("ci_low") is not None:
        text += f" [{r['ci_low']:.{digits}g}, {r['ci_high']:.{digits}g}]"
    else:
        text += " (no interval)"
    if r.get("contended"):
        text += " ⚠"
    if r.get("ci_low") is not None and not r.get("target_met"):
        text += " †"
    return text


def precision_lines(payload: dict[str, Any]) -> list[str]:
    ratios = [r for r in payload["ratios"] if r.get("ci_low") is not None]
    if not ratios:
        return []
    cfg = payload["config"].get("measure", {})
    met = sum(bool(r.get("target_met")) for r in ratios)
    widths = sorted(r["rel_half_width"] for r in ratios)
    reps = sorted(r["repeats"] for r in ratios)
    return [f"Precision: {met} of {len(ratios)} ratios reached the target half-width "
            f"{100 * cfg.get('target', 0):.3g} %; median half-width "
            f"{100 * widths[len(widths) // 2]:.2g} %, widest {100 * widths[-1]:.2g} %; "
            f"{reps[0]}–{reps[-1]} repeats per ratio (time cap {cfg.get('time_cap_s')} s).", ""]


def calibration_lines(cal: dict[str, Any]) -> list[str]:
    if not cal:
        return []
    probe = cal.get("probe") or {}
    others = cal.get("others_busy_cores")
    return [f"Before the grid: other processes used "
            f"{'—' if others is None else f'{others:.2f}'} cores "
            f"(±{cal.get('resolution_cores') or 0:.2f}), load average {cal.get('loadavg')}, "
            f"steal {100 * (cal.get('steal_fraction') or 0):.1f} %, probe kernel "
            f"{format_time(probe.get('threads_s'))} at {probe.get('threads')} thread(s) vs "
            f"{format_time(probe.get('one_thread_s'))} at 1: "
            + ("**contended**." if cal.get("contended") else "quiet."), ""]


Series = tuple[str, list[float], list[float], list[float] | None, list[float] | None, str]
"""One line of a plot: label, x, y, lower and upper ends of its error bars (absolute values, or
None for no bars), line style."""


def plot_panels(path: Path, panels: list[tuple[str, list[Series]]], *, xlabel: str,
                ylabel: str, suptitle: str, meta: dict[str, str], hline: float | None = None,
                sharey: bool = False) -> Path | None:
    """A row of log-log panels (one per pass) saved to ``path`` (already claimed) with the
    PNG metadata; None when matplotlib is missing or no panel has a line."""
    if not any(series for _, series in panels):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.8), sharey=sharey,
                             squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        for label, x, y, lo, hi, style in series:
            bars = lo is not None and hi is not None and None not in lo and None not in hi
            yerr = None if not bars else [
                [v - a for v, a in zip(y, lo, strict=True)],
                [b - v for v, b in zip(y, hi, strict=True)]]
            ax.errorbar(x, y, yerr=yerr, marker="o", ms=3, capsize=2, ls=style, label=label)
        if hline is not None:
            ax.axhline(hline, color="black", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(True, which="both", alpha=0.3)
    first = None
    for ax in axes[0]:  # a legend wherever a panel's lines differ from the first panel's
        labels = ax.get_legend_handles_labels()[1]
        if labels and labels != first:
            ax.legend(fontsize=7)
            first = first if first is not None else labels
    fig.suptitle(suptitle, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=meta)
    plt.close(fig)
    return path


def plot_title(payload: dict[str, Any], what: str) -> str:
    """A plot's title: what it shows, the contention mark, the machine."""
    return (what + (" (CONTENDED RUN)" if payload.get("contended") else "")
            + f" — {machine_line(payload['environment'])}")


def write_report(out: Path, markdown_text: str, pngs: list[Path], overwrite: bool) -> list[Path]:
    """results.md (the Markdown, then the plots embedded, or why there are none) into
    ``out``; returns every file written, results.md first. Refuses an existing results.md
    unless ``overwrite``. Without matplotlib, says so on stderr and in results.md."""
    from lossproofs.environment import write_text

    if pngs:
        markdown_text += ("\n## Plots\n\n"
                          + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n")
    elif (note := missing_plots_note()) is not None:
        announce(note)
        markdown_text += f"\n## Plots\n\nNone: {note}.\n"
    return [write_text(Path(out) / "results.md", markdown_text, overwrite), *pngs]
