"""The measurement core every benchmark shares: worker processes, contention checks,
precision-targeted repeats. A benchmark script supplies variants and points; this returns
records it can render.

API (all in this module)::

    suite = Suite(setup="benchmarks.my_bench:setup_point",       # imported in each worker
                  pairs=(("fused", "composed"), ("compiled", "fused")),  # ratios A/B
                  device="cpu")                                  # or "cuda"
    points = [Point(key="float32 64×10 forward", params={"N": 64, "C": 10, ...}), ...]
    result = measure(suite, points, MeasureConfig(threads=1, target=0.02, time_cap_s=600),
                     on_update=lambda partial: ..., progress=bar)

- ``setup(params: dict, repeat: int) -> Prepared`` runs **in the worker**, once per point and
  repeat. It builds the inputs for ``params`` (JSON-able; the script's own description of a
  shape/dtype/pass) and returns :class:`Prepared`: ``calls`` (variant name → zero-argument
  callable for that pass), ``excluded`` (name → ``(status, reason)`` for variants that cannot
  or must not run: ``"skipped"``, ``"error"``) and ``info`` (name → JSON-able facts such as an
  agreement check, compile seconds or peak memory; measure them only for ``repeat == 0`` if
  they are expensive). It may keep a per-process cache (the same inputs for two passes).
  Raise an out-of-memory error and the point is recorded as ``oom``.
- Each **repeat** is one fresh worker process (``python -m benchmarks._measure``, standard
  library ``subprocess``) that measures every pending point in turn: warm up every variant,
  size a block of calls to about ``block_s`` seconds, then ``rounds`` rounds of one block per
  variant in an order rotated every round (CPU: ``perf_counter``; CUDA: events after a
  synchronise; the garbage collector off during a block). Repeats are spread over the run
  (repeat 2 of every point after repeat 1 of every point), so slow drift lands in the spread.
- **Intervals** (see :mod:`benchmarks._stats`): per repeat, the median paired log ratio of its
  rounds; across the k repeats, ``exp(mean ± t_{k−1}·sd/√k)``. A point gets ``min_repeats``
  repeats, then more, one per pass, while any of its ratios is wider than ``target`` (relative
  half-width), it has fewer than ``max_repeats`` and the run is younger than ``time_cap_s``.
  Each ratio records the precision it reached (``rel_half_width``, ``target_met``).
- **Contention** (see :mod:`benchmarks._contention`): an idle sample and thread probe before the
  grid; around every point in every worker, other processes' CPU use, steal and the probe.
  Each point carries its observations and ``contended``; the result carries ``contended`` and
  ``warnings``. With ``strict=True`` a contended calibration or point raises
  :class:`ContentionError` (its ``result`` holds what was measured).

``measure`` returns a dict: ``calibration`` (the pre-grid observation), ``points`` (per point:
``key``, ``params``, ``status``, ``repeats``, ``variants`` {name: ``status``, ``reason``,
``median_s`` (median of the repeats' medians), ``q1_s``/``q3_s`` (all blocks), ``blocks``,
``repeat_medians_s``, ``calls_per_block``, ``info``}, ``ratios`` [``numerator``,
``denominator``, ``ratio``, ``ci_low``, ``ci_high``, ``rel_half_width``, ``repeats``,
``repeat_ratios``, ``target_met``, ``indicative``, ``contended``], ``contended``,
``contention_reasons``, ``observations``), ``contended``, ``warnings``, ``complete``,
``elapsed_s``, ``config`` and ``method``. Everything is JSON-able.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _contention
from benchmarks._stats import paired_log_ratio, repeat_interval, summarize

REPO_ROOT = Path(__file__).resolve().parent.parent
METHOD = ("per point, k worker processes (repeats); in each, rotated rounds of one block per "
          "variant; a ratio's estimate per repeat is the median of its paired block ratios, "
          "and its interval is a Student-t interval over the k repeats' log estimates")


@dataclass(frozen=True)
class Point:
    """One thing to measure: a unique ``key`` and JSON-able ``params`` for the setup."""

    key: str
    params: dict[str, Any]


@dataclass
class Prepared:
    """What a setup returns for one point: callables, excluded variants, per-variant facts."""

    calls: dict[str, Callable[[], Any]] = field(default_factory=dict)
    excluded: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (status, why)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """The variants' setup (``"module:function"``), the ratios to report, the device."""

    setup: str
    pairs: tuple[tuple[str, str], ...]
    device: str = "cpu"


@dataclass(frozen=True)
class MeasureConfig:
    """How long and how precisely to measure (see the module docstring)."""

    threads: int = 1
    block_s: float = 0.02
    rounds_min: int = 3
    rounds_max: int = 10
    point_budget_s: float = 1.5  # per repeat and point: rounds beyond rounds_min while within
    min_repeats: int = 3
    max_repeats: int = 8
    target: float = 0.02  # wanted relative half-width of every ratio's interval
    time_cap_s: float = 900.0  # no further repeats are started after this many seconds
    confidence: float = 0.95
    indicative: bool = False  # a smoke run: intervals are labelled indicative
    strict: bool = False
    idle_sample_s: float = 1.0

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not 2 <= self.min_repeats <= self.max_repeats:
            raise ValueError(f"need 2 <= min_repeats <= max_repeats, got {self}")
        if not 1 <= self.rounds_min <= self.rounds_max:
            raise ValueError(f"need 1 <= rounds_min <= rounds_max, got {self}")
        if self.block_s <= 0 or self.target <= 0 or self.time_cap_s <= 0:
            raise ValueError(f"block_s, target and time_cap_s must be positive, got {self}")


class ContentionError(RuntimeError):
    """Raised under ``strict=True`` when contention is observed; ``result`` is what was
    measured up to then."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def is_oom(exc: BaseException) -> bool:
    """CUDA's out-of-memory error, or the host's (MemoryError, or RuntimeError from ATen)."""
    name = type(exc).__name__
    text = str(exc)
    return name in {"OutOfMemoryError", "MemoryError"} or (
        isinstance(exc, RuntimeError) and ("out of memory" in text
                                           or "can't allocate memory" in text))


# ---------------------------------------------------------------------------------------------
# In the worker


def _block_time(fn: Callable[[], Any], number: int, cuda: bool) -> float:
    """Mean seconds per call over ``number`` back-to-back calls (CUDA: events)."""
    import torch

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if cuda:
            torch.cuda.synchronize()
            start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            start.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / number
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_was_enabled:
            gc.enable()


def time_rounds(calls: dict[str, Callable[[], Any]], config: MeasureConfig, cuda: bool,
                ) -> dict[str, dict[str, Any]]:
    """Per variant: ``{"blocks": [seconds per call, one per round], "number": calls/block}``."""
    names = list(calls)
    number: dict[str, int] = {}
    per_call: dict[str, float] = {}
    for name in names:
        fn = calls[name]
        _block_time(fn, 1, cuda)  # warm-up
        t = _block_time(fn, 1, cuda)
        if t < config.block_s / 20:  # cheap call: a better estimate from a few more
            t = _block_time(fn, max(2, int(config.block_s / 20 / max(t, 1e-9))), cuda)
        per_call[name] = max(t, 1e-9)
        number[name] = max(1, round(config.block_s / per_call[name]))
    round_s = sum(per_call[n] * number[n] for n in names)
    rounds = int(min(config.rounds_max,
                     max(config.rounds_min, config.point_budget_s // max(round_s, 1e-9))))
    blocks: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:  # rotated: each variant leads equally often
            blocks[name].append(_block_time(calls[name], number[name], cuda))
    return {n: {"blocks": blocks[n], "number": number[n]} for n in names}


def _load_setup(spec: str) -> Callable[[dict[str, Any], int], Prepared]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def measure_point_in_worker(setup: Callable[[dict[str, Any], int], Prepared], point: Point,
                            config: MeasureConfig, device: str, repeat: int) -> dict[str, Any]:
    """One point in this process: setup, rounds, and the contention observed around them."""
    cuda = device.startswith("cuda")
    monitor = _contention.CpuMonitor().start()
    # The probe gives a verdict only with threads > 1 (one thread cannot wait for a sibling).
    probe = _contention.thread_probe(config.threads, "cpu") if config.threads > 1 else None
    out: dict[str, Any] = {"key": point.key, "repeat": repeat, "status": "ok", "reason": None,
                           "variants": {}, "excluded": {}, "info": {}}
    try:
        prepared = setup(point.params, repeat)
        out["excluded"] = {k: list(v) for k, v in prepared.excluded.items()}
        out["info"] = prepared.info
        if prepared.calls:
            out["variants"] = time_rounds(prepared.calls, config, cuda)
        del prepared
    except Exception as exc:
        out["status"] = "oom" if is_oom(exc) else "error"
        first_line = (str(exc).splitlines() or [""])[0]
        out["reason"] = f"{type(exc).__name__}: {first_line[:200]}"
        if out["status"] == "error":
            out["traceback"] = traceback.format_exc(limit=6)[-2000:]
    finally:
        if cuda:  # return the point's blocks to the device (a full gc pass costs ~0.1 s)
            import torch

            torch.cuda.empty_cache()
    obs = monitor.stop()
    obs["probe"] = probe
    if cuda:
        obs["gpu"] = _contention.gpu_observation(device)
    out["observation"] = obs
    return out


def example_setup(params: dict[str, Any], repeat: int) -> Prepared:
    """A worked example of a setup (and the tests' suite): ``"a"`` sums ``n`` float32 values,
    ``"b"`` sums their squares. ``params["fail"]`` raises, ``params["oom"]`` runs out of
    memory, ``params["skip_b"]`` excludes ``"b"``."""
    import torch

    if params.get("fail"):
        raise ValueError("example setup asked to fail")
    if params.get("oom"):
        raise MemoryError("example setup: out of memory")
    x = torch.rand(int(params.get("n", 1000)))
    calls: dict[str, Callable[[], Any]] = {"a": lambda: x.sum(), "b": lambda: (x * x).sum()}
    out = Prepared(calls=calls, info={"a": {"repeat_seen": repeat}})
    if params.get("skip_b"):
        del calls["b"]
        out.excluded["b"] = ("skipped", "asked to skip b")
    return out


def _write_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _worker_main(argv: Sequence[str]) -> int:
    """``python -m benchmarks._measure TASK.json RESULT.json``: one repeat of the given points."""
    task = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result_path = Path(argv[1])
    import torch

    config = MeasureConfig(**task["config"])
    torch.set_num_threads(config.threads)
    setup = _load_setup(task["setup"])
    done: list[dict[str, Any]] = []
    for p in task["points"]:
        done.append(measure_point_in_worker(setup, Point(p["key"], p["params"]), config,
                                            task["device"], task["repeat"]))
        _write_atomic(result_path, done)  # after every point: a crash keeps what was measured
    return 0


# ---------------------------------------------------------------------------------------------
# In the parent


def _run_worker(suite: Suite, points: list[Point], config: MeasureConfig, repeat: int,
                sink: list[dict[str, Any]],
                on_output: Callable[[dict[str, Any]], bool] | None = None) -> str | None:
    """One repeat in a fresh process; its per-point outputs are appended to ``sink`` as they
    arrive (also when interrupted). ``on_output(output)`` returning True stops the worker.
    Returns why the worker died or was stopped, or None."""
    with tempfile.TemporaryDirectory(prefix="lossproofs-bench-") as tmp:
        task_path, result_path, log_path = (Path(tmp) / n for n in
                                            ("task.json", "result.json", "worker.log"))
        task_path.write_text(json.dumps({
            "setup": suite.setup, "device": suite.device, "repeat": repeat,
            "config": asdict(config), "points": [asdict(p) for p in points]}, default=str),
            encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          env.get("PYTHONPATH")]))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # no pool larger than we use
            env[var] = str(config.threads)
        stopped = None

        def collect() -> None:
            nonlocal stopped
            new = _read(result_path)[len(sink) - start:] if result_path.exists() else []
            for o in new:
                if stopped is not None:
                    break
                sink.append(o)
                if on_output is not None and on_output(o) and stopped is None:
                    stopped = f"stopped after {o['key']}"

        start = len(sink)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "benchmarks._measure",
                                     str(task_path), str(result_path)],
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                while proc.poll() is None and stopped is None:
                    time.sleep(0.5)
                    collect()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                collect()
        if stopped is not None:  # on purpose (strict): the unreached points are not errors
            return None
        if proc.returncode != 0 or len(sink) - start < len(points):
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-800:]
            return f"worker exited with status {proc.returncode}: {tail.strip()}"
        return None


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def aggregate_point(point: Point, outputs: list[dict[str, Any]], suite: Suite,
                    config: MeasureConfig) -> dict[str, Any]:
    """One point's repeats → its variants' summaries, ratios and contention verdict."""
    ok = [o for o in outputs if o["status"] == "ok"]
    failed = [o for o in outputs if o["status"] != "ok"]
    obs = [o["observation"] for o in outputs]
    verdicts = [_contention.assess(x, config.threads) for x in obs]
    reasons = sorted({r for _, rs in verdicts for r in rs})
    contended = any(c for c, _ in verdicts)
    variants: dict[str, dict[str, Any]] = {}
    for o in outputs:
        for name, (status, reason) in o.get("excluded", {}).items():
            variants.setdefault(name, {"status": status, "reason": reason})
    for name in _unique(n for o in ok for n in o["variants"]):
        runs = [o["variants"][name] for o in ok if name in o["variants"]]
        pooled = [b for r in runs for b in r["blocks"]]
        s = summarize(pooled)
        medians = [float(np.median(r["blocks"])) for r in runs]
        variants[name] = {
            "status": "ok", "reason": None, "median_s": float(np.median(medians)),
            "q1_s": s.q1_s, "q3_s": s.q3_s, "iqr_s": s.iqr_s, "blocks": s.blocks,
            "repeat_medians_s": medians, "calls_per_block": [r["number"] for r in runs]}
    for name, v in variants.items():
        v["info"] = next((o["info"][name] for o in outputs if o.get("info", {}).get(name)), {})
    ratios = []
    for num, den in suite.pairs:
        logs = [paired_log_ratio(o["variants"][num]["blocks"], o["variants"][den]["blocks"])
                for o in ok if num in o["variants"] and den in o["variants"]]
        if not logs:
            continue
        rec: dict[str, Any] = {"numerator": num, "denominator": den, "repeats": len(logs),
                               "repeat_ratios": [float(np.exp(x)) for x in logs],
                               "ratio": float(np.exp(np.mean(logs))), "ci_low": None,
                               "ci_high": None, "rel_half_width": None, "target": config.target,
                               "target_met": False, "confidence": config.confidence,
                               "indicative": config.indicative or contended,
                               "contended": contended}
        if len(logs) >= 2:
            ri = repeat_interval(logs, config.confidence)
            rec.update(ratio=ri.ratio, ci_low=ri.low, ci_high=ri.high,
                       rel_half_width=ri.rel_half_width,
                       target_met=ri.rel_half_width <= config.target)
        ratios.append(rec)
    status = failed[0]["status"] if failed and not ok else "ok"
    return {"key": point.key, "params": point.params, "status": status,
            "reason": failed[0]["reason"] if failed else None, "repeats": len(ok),
            "variants": variants, "ratios": ratios, "contended": contended,
            "contention_reasons": reasons, "observations": obs}


def _unique(items: Any) -> list[Any]:
    return list(dict.fromkeys(items))


def needs_more_repeats(agg: dict[str, Any] | None, outputs: list[dict[str, Any]],
                       config: MeasureConfig, elapsed: float) -> bool:
    """Precision targeting: another repeat for this point? (``elapsed``: the run's age.)"""
    if any(o["status"] != "ok" for o in outputs):
        return False  # oom / error / dead worker: repeating would only repeat it
    n = len(outputs)
    if n < config.min_repeats:
        return True
    if n >= config.max_repeats or elapsed >= config.time_cap_s or agg is None:
        return False
    return any(not r["target_met"] for r in agg["ratios"])


def _merge(pending: list[Point], got: list[dict[str, Any]],
           outputs: dict[str, list[dict[str, Any]]], aggregated: dict[str, dict[str, Any]],
           suite: Suite, config: MeasureConfig, repeat: int, died: str | None) -> None:
    """Add one repeat's outputs; a point the worker never reached gets an error output,
    unless the repeat was interrupted (``died`` None and no output: nothing to add)."""
    by_key = {o["key"]: o for o in got}
    for p in pending:
        o = by_key.get(p.key)
        if o is None:
            if died is None:
                continue
            o = {"key": p.key, "repeat": repeat, "status": "error", "reason": died,
                 "variants": {}, "observation": {}}
        outputs[p.key].append(o)
        aggregated[p.key] = aggregate_point(p, outputs[p.key], suite, config)


def calibrate(device: str, threads: int, seconds: float = 1.0) -> dict[str, Any]:
    """The pre-grid observation, with its verdict (``contended``, ``reasons``)."""
    return _contention.observe_idle(threads, device, seconds)


def measure(suite: Suite, points: Sequence[Point], config: MeasureConfig, *,
            on_update: Callable[[dict[str, Any]], None] | None = None,
            progress: Any = None, calibration: dict[str, Any] | None = None,
            ) -> dict[str, Any]:
    """Measure ``points`` (see the module docstring); ``progress`` has ``update(n)`` and
    ``total`` (grown as repeats are added); ``on_update(result)`` after every repeat."""
    keys = [p.key for p in points]
    if len(set(keys)) != len(keys):
        raise ValueError("point keys must be unique")
    start = time.monotonic()
    calibration = calibration or calibrate(suite.device, config.threads, config.idle_sample_s)
    outputs: dict[str, list[dict[str, Any]]] = {p.key: [] for p in points}
    aggregated: dict[str, dict[str, Any]] = {}

    def result(complete: bool) -> dict[str, Any]:
        pts = [aggregated[p.key] for p in points if p.key in aggregated]
        contended = bool(calibration.get("contended")) or any(p["contended"] for p in pts)
        warnings = []
        if calibration.get("contended"):
            warnings.append("before the grid: " + "; ".join(calibration["reasons"]))
        bad = [p for p in pts if p["contended"]]
        if bad:
            warnings.append(f"{len(bad)} of {len(pts)} points measured under contention: "
                            + _contention.describe([o for p in bad for o in p["observations"]],
                                                   config.threads))
        return {"calibration": calibration, "points": pts, "contended": contended,
                "warnings": warnings, "complete": complete,
                "elapsed_s": time.monotonic() - start, "config": asdict(config),
                "method": METHOD}

    if config.strict and calibration.get("contended"):
        raise ContentionError("contended before the grid: " + "; ".join(
            calibration["reasons"]), result(False))
    if progress is not None:
        progress.total = len(points) * config.min_repeats
    repeat = 0
    while True:
        elapsed = time.monotonic() - start
        pending = [p for p in points
                   if needs_more_repeats(aggregated.get(p.key), outputs[p.key], config, elapsed)]
        if not pending:
            break
        if progress is not None and repeat >= config.min_repeats:
            progress.total += len(pending)
        got: list[dict[str, Any]] = []

        def on_output(o: dict[str, Any]) -> bool:
            if progress is not None:
                progress.update(1)
            return config.strict and _contention.assess(o["observation"], config.threads)[0]

        try:
            died = _run_worker(suite, pending, config, repeat, got, on_output)
        except BaseException:  # interrupted: keep what this repeat finished, then go
            _merge(pending, got, outputs, aggregated, suite, config, repeat, None)
            if on_update is not None:
                on_update(result(False))
            raise
        _merge(pending, got, outputs, aggregated, suite, config, repeat, died)
        repeat += 1
        current = result(False)
        if on_update is not None:
            on_update(current)
        if config.strict and current["contended"]:
            raise ContentionError("contention during the grid: " + "; ".join(
                current["warnings"]), current)
    return result(True)


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
