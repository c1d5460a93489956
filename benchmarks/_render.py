"""Rendering helpers shared by the benchmark reports: number formats, the machine caption,
strict JSON, PNG metadata and the contention warning every output carries."""

from __future__ import annotations

import json
import math
from typing import Any


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
