"""What every benchmark script's command line shares: its common options, the measurement
configuration they select, the calibrate → refuse or measure → save → render run, the
contention warnings on the terminal, and the exit statuses.

A script supplies its grid (points), its payload builder (the measurement core's result →
its own records) and its renderer; :func:`measure_grid` does the rest, the same way for
``benchmarks.cross_entropy`` and ``benchmarks.linear_cross_entropy``:

1. the pre-grid calibration (:func:`benchmarks._measure.calibrate`), warned on the terminal;
2. under ``--strict``, a contended calibration writes what it observed and raises
   :class:`benchmarks._measure.ContentionError` before anything is timed;
3. :func:`benchmarks._measure.measure` over the points, ``results.json`` rewritten after every
   repeat (an interrupted run keeps what it measured), the renderer run at the end even when
   interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks._measure import ContentionError, MeasureConfig, Point, Suite, calibrate, measure
from benchmarks._progress import progress_bar
from benchmarks._render import missing_plots_note
from lossproofs.environment import claim_output, write_json

EXIT_USAGE = 2
"""Exit status for a usage error or a refused overwrite."""
EXIT_CONTENDED = 3
"""Exit status of ``--strict`` when contention was observed."""
EXIT_INTERRUPTED = 130

QUICK = MeasureConfig(block_s=0.003, rounds_min=3, rounds_max=5, point_budget_s=0.08,
                      min_repeats=3, max_repeats=3, time_cap_s=60.0, indicative=True,
                      idle_sample_s=0.3)
"""A ``--quick`` smoke run: short blocks, a fixed number of repeats, a minute at most, its
intervals labelled indicative."""
CUDA = MeasureConfig(block_s=0.01, rounds_min=3, rounds_max=10, point_budget_s=0.5,
                     min_repeats=3, max_repeats=8, time_cap_s=240.0)
"""A CUDA grid: 10 ms blocks timed with events, 3–8 repeats."""


def refuse_existing(out: Path, overwrite: bool) -> None:
    """Raise ``FileExistsError`` if ``out`` already holds results (results.json, results.md,
    PNGs) and ``overwrite`` is false: checked before anything is measured."""
    existing = [out / "results.json", out / "results.md"]
    if out.is_dir():
        existing += sorted(out.glob("*.png"))
    for path in existing:
        claim_output(path, overwrite)


class _NotPrecision(argparse.Action):
    """``--target`` on a benchmark: a usage error pointing at ``--precision`` (elsewhere in
    lossproofs ``--target`` names the implementation under test)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error("--target names an implementation elsewhere in lossproofs; the precision "
                     "half-width is --precision")


def add_common_arguments(p: argparse.ArgumentParser, quick_help: str) -> None:
    """The options every benchmark takes (device, output, threads, contention, precision)."""
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default results/benchmarks/<stamp>-<device>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing results in --out")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch in every worker (default 1: a thread count above "
                        "the free cores is oversubscription; the calibration checks it)")
    p.add_argument("--strict", action="store_true",
                   help=f"refuse to go on (exit {EXIT_CONTENDED}) when contention is observed")
    p.add_argument("--precision", type=float, default=None, metavar="F",
                   help="stop adding repeats once each ratio's 95 %% interval is within "
                        "±this fraction (default 0.02)")
    p.add_argument("--target", nargs="?", action=_NotPrecision, help=argparse.SUPPRESS)
    p.add_argument("--time-cap", type=float, default=None, metavar="SECONDS",
                   help="start no repeat beyond the minimum after this many seconds")
    p.add_argument("--min-repeats", type=int, default=None, help="worker processes per point")
    p.add_argument("--max-repeats", type=int, default=None)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    p.add_argument("--compile-backend", default="inductor",
                   help="torch.compile backend (default inductor)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                   help="only render results.md and plots from an existing results.json "
                        "(into --out, default: the json's directory)")


def start(out: Path, overwrite: bool, config: MeasureConfig, device: str, quick: bool,
          cases: list[Any] | None, grids: dict[str, Callable[[bool], list[Any]]]) -> list[Any]:
    """Before anything is measured: refuse existing results, set torch's threads, and return
    the cases (``cases``, else ``grids[device](quick)``)."""
    import torch

    refuse_existing(out, overwrite)
    torch.set_num_threads(config.threads)
    return list(cases) if cases is not None else grids[device](quick)


def base_payload(schema: str, device: str, quick: bool, config: MeasureConfig,
                 compile_enabled: bool, compile_backend: str, cases: list[Any],
                 **extra_config: Any) -> dict[str, Any]:
    """What every results.json starts with: schema, the environment, the run's settings, and
    ``notes`` when something optional is missing (matplotlib: no plots)."""
    from dataclasses import asdict

    from lossproofs.environment import environment

    note = missing_plots_note()
    return {"schema": schema, "environment": environment(device),
            "config": {"device": device, "quick": quick, "threads": config.threads,
                       "compile": compile_enabled, "compile_backend": compile_backend,
                       "measure": asdict(config), "cases": [asdict(c) for c in cases],
                       **extra_config},
            **({"notes": [note]} if note else {})}


def measured_points(result: dict[str, Any], cases: list[Any], passes: tuple[str, ...]):
    """``(case, pass, point result)`` for every case and pass the run measured, in grid order
    (a case's ``key(pass)`` is its point's key)."""
    by_key = {p["key"]: p for p in result["points"]}
    for case in cases:
        for pass_ in passes:
            if (pt := by_key.get(case.key(pass_))) is not None:
                yield case, pass_, pt


def run_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The measurement core's verdict on a run, copied into every payload."""
    return {k: result[k] for k in ("calibration", "contended", "warnings", "elapsed_s",
                                   "complete")}


def config_from(args: argparse.Namespace, configs: dict[str, MeasureConfig]) -> MeasureConfig:
    """``configs["quick" | "cuda" | "cpu"]`` with the command line's overrides (``--precision``
    is the configuration's ``target``, the ratios' wanted relative half-width); raises
    ``ValueError`` (naming the setting) for inconsistent repeat counts or a precision ≤ 0."""
    kind = "quick" if args.quick else ("cuda" if args.device == "cuda" else "cpu")
    if args.precision is not None and not args.precision > 0:
        raise ValueError(f"--precision must be a fraction > 0 (0.02 is ±2 %), "
                         f"got {args.precision}")
    config = replace(configs[kind], threads=args.threads, strict=args.strict)
    changes = {k: v for k, v in (("target", args.precision), ("time_cap_s", args.time_cap),
                                 ("min_repeats", args.min_repeats),
                                 ("max_repeats", args.max_repeats)) if v is not None}
    if "min_repeats" in changes and "max_repeats" not in changes:
        changes["max_repeats"] = max(config.max_repeats, changes["min_repeats"])
    return replace(config, **changes)


def warn_terminal(reasons: list[str] | None, when: str) -> None:
    """One ``WARNING: contention …`` line on stderr per reason."""
    for reason in reasons or []:
        print(f"WARNING: contention {when}: {reason}", file=sys.stderr)


def terminate_as_interrupt() -> Any:
    """SIGTERM (``timeout``, a job scheduler) ends the run like Ctrl-C: the worker process is
    killed and the repeats measured so far are kept. Returns the previous handler (None if
    none was installed)."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding caller): leave signals alone
        return None


def restore_signal(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def cuda_unavailable_message(torch_module: Any) -> str | None:
    """Why ``--device cuda`` cannot run here, or None when a GPU is visible."""
    if torch_module.cuda.is_available():
        return None
    return (f"--device cuda, but torch {torch_module.__version__} sees no CUDA GPU "
            f"(torch.version.cuda={torch_module.version.cuda}); run on a GPU machine or use "
            "--device cpu")


def measure_grid(*, suite: Suite, points: list[Point], config: MeasureConfig, out: Path,
                 base: dict[str, Any], payload_from: Callable[[dict[str, Any]], dict[str, Any]],
                 render: Callable[[dict[str, Any]], Any], progress: bool, desc: str,
                 before_grid: Callable[[], None] | None = None) -> dict[str, Any]:
    """Calibrate, refuse under ``--strict`` if contended, measure ``points`` (saving
    ``out/results.json`` after every repeat), render; returns the payload.

    ``payload_from(result)`` turns the measurement core's (partial) result into the script's
    payload (it must carry ``base``); ``render(payload)`` writes results.md and plots;
    ``before_grid()`` runs after a calm calibration, before the first point (a bandwidth
    kernel, say). Raises :class:`ContentionError` under ``config.strict``, partial results kept.
    """
    calibration = calibrate(suite.device, config.threads, config.idle_sample_s)
    warn_terminal(calibration.get("reasons"), "before the grid")
    state: dict[str, Any] = {"payload": None}

    def save(result: dict[str, Any]) -> None:
        state["payload"] = payload_from(result)
        write_json(out / "results.json", state["payload"], overwrite=True)  # atomic replace

    if config.strict and calibration["contended"]:  # refuse before anything else is measured
        save({"calibration": calibration, "points": [], "contended": True, "complete": False,
              "warnings": ["before the grid: " + "; ".join(calibration["reasons"])],
              "elapsed_s": 0.0})
        render(state["payload"])
        raise ContentionError("contended before the grid: " + "; ".join(calibration["reasons"]),
                              state["payload"])
    if before_grid is not None:
        before_grid()
    bar = progress_bar(len(points), desc=desc, disable=not progress, unit="point")
    try:
        save(measure(suite, points, config, on_update=save, progress=bar,
                     calibration=calibration))
    finally:
        bar.close()
        if state["payload"] is not None:
            render(state["payload"])  # even for an interrupted run
    return state["payload"]


def config_or_status(args: argparse.Namespace, configs: dict[str, MeasureConfig],
                     ) -> MeasureConfig | int:
    """The run's :class:`MeasureConfig`, or :data:`EXIT_USAGE` after saying why not (no GPU
    for ``--device cuda``, inconsistent repeat counts)."""
    import torch

    if args.device == "cuda" and (why := cuda_unavailable_message(torch)):
        print(f"error: {why}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return config_from(args, configs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def guarded(measure: Callable[[], None], out: Path) -> int:
    """Run ``measure`` with SIGTERM as Ctrl-C; a refused overwrite, ``--strict``'s refusal and
    an interruption become their message and exit status (partial results stay in ``out``)."""
    previous = terminate_as_interrupt()
    try:
        measure()
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ContentionError as exc:
        print(f"error: --strict: {exc}; nothing further measured, partial results in {out}",
              file=sys.stderr)
        return EXIT_CONTENDED
    except KeyboardInterrupt:
        print(f"\ninterrupted: partial results kept in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        restore_signal(previous)
    return 0
