"""Is anything else competing for the machine while we time? Observations and one verdict.

A benchmark on a shared machine measures its neighbours as much as its kernels: two OpenMP
threads on two cores next to one busy process wait for a descheduled sibling and every case
takes milliseconds. Before the grid and around every point the benchmarks record:

- **other processes' CPU use**: from ``/proc/stat`` (Linux) over the measuring window, minus
  the measuring process's own CPU time (``time.process_time``, all its threads), divided by the
  wall time: the average number of cores others kept busy. Jiffy counters are coarse (10 ms),
  so each figure carries its resolution and the verdict only counts what exceeds it;
- **CPU steal** where the OS reports it (a VM's hypervisor running someone else on our core);
- **load average** and the instantaneous count of runnable tasks (``/proc/loadavg``);
- **oversubscription probe**: a fixed kernel (``torch.exp`` over 2²⁰ float32, which ATen runs
  in parallel) timed at the run's thread count and at one thread; with threads > 1 it must not
  be slower than with one (a descheduled OpenMP sibling makes it so);
- **GPU**: other processes on the device through NVML (``pynvml``) where it is installed, else
  the device memory in use that this process did not allocate (``torch.cuda.mem_get_info``).

:func:`assess` turns observations into ``(contended, reasons)``; the thresholds are the module
constants below, and every reason names the number that crossed one.
"""

from __future__ import annotations

import os
import time
from typing import Any

OTHERS_BUSY_MAX_CORES = 0.25
"""Other processes may use at most this many cores on average (a CPU-bound neighbour is 1)."""
STEAL_MAX_FRACTION = 0.05
"""At most this share of the machine's CPU time may be stolen by the hypervisor."""
OVERSUBSCRIBED_SPEEDUP = 1.0
"""With threads > 1 the probe kernel must run faster than on one thread (speedup above this)."""
GPU_OTHER_MEMORY_MAX_BYTES = 2 * 2**30
"""Device memory in use beyond this process's (NVML unavailable): above this, someone else is
on the GPU (a CUDA context of our own costs a few hundred MB, hence the margin)."""
PROBE_ELEMENTS = 2**20

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat() -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies summed over all CPUs, or None where /proc/stat is absent."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    v = [int(x) for x in fields[1:]] + [0] * 10
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    busy = user + nice + system + irq + softirq  # guest time is already inside user
    return busy, steal, busy + idle + iowait + steal


def loadavg() -> dict[str, Any] | None:
    """1/5/15-minute load averages and the runnable tasks right now (Unix), or None."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            parts = f.read().split()
        running = int(parts[3].split("/")[0])
        return {"loadavg": [float(p) for p in parts[:3]], "runnable_now": running}
    except (OSError, IndexError, ValueError):
        try:
            return {"loadavg": [round(x, 2) for x in os.getloadavg()], "runnable_now": None}
        except (AttributeError, OSError):
            return None


class CpuMonitor:
    """Other processes' CPU use while this process measures: ``start()``, then ``stop()``."""

    def start(self) -> CpuMonitor:
        self._stat, self._own, self._wall = _proc_stat(), time.process_time(), time.monotonic()
        return self

    def stop(self) -> dict[str, Any]:
        """Observation over the window: ``others_busy_cores`` (± ``resolution_cores``),
        ``steal_fraction``, ``own_cores``, ``wall_s``, the load average at the end."""
        stat, own, wall = _proc_stat(), time.process_time(), time.monotonic()
        elapsed = max(wall - self._wall, 1e-9)
        out: dict[str, Any] = {"wall_s": elapsed, "own_cores": (own - self._own) / elapsed,
                               "others_busy_cores": None, "resolution_cores": None,
                               "steal_fraction": None, **(loadavg() or {})}
        if stat is not None and self._stat is not None:
            busy, steal, total = (b - a for a, b in zip(self._stat, stat))
            cores = os.cpu_count() or 1
            out["others_busy_cores"] = max(0.0, busy / _HZ / elapsed - out["own_cores"])
            # Each CPU's counters tick in whole jiffies: ±1 per CPU at each end of the window.
            out["resolution_cores"] = 2 * cores / _HZ / elapsed
            out["steal_fraction"] = steal / total if total > 0 else 0.0
        return out


def idle_sample(seconds: float) -> dict[str, Any]:
    """Others' CPU use while this process sleeps for ``seconds`` (before the grid)."""
    mon = CpuMonitor().start()
    time.sleep(seconds)
    return mon.stop()


def thread_probe(threads: int, device: str = "cpu", calls: int = 9) -> dict[str, Any]:
    """Median time of the probe kernel at ``threads`` and at one thread (CPU), or on the GPU.

    CPU: ``speedup = t(1 thread) / t(threads)``; below :data:`OVERSUBSCRIBED_SPEEDUP` with
    threads > 1 the threads are waiting for each other. GPU: the kernel's time alone (a
    fingerprint to compare between points; no verdict).
    """
    import torch

    x = torch.rand(PROBE_ELEMENTS, device=device)
    y = torch.empty_like(x)

    def median_time() -> float:
        times = []
        for _ in range(calls):
            if device.startswith("cuda"):
                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
                torch.exp(x, out=y)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                torch.exp(x, out=y)
                times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    if device.startswith("cuda"):
        median_time()  # warm-up
        return {"kernel": f"torch.exp over {PROBE_ELEMENTS} float32", "device_s": median_time()}
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        median_time()  # warm-up: thread pool up, pages touched
        at_threads = median_time()
        torch.set_num_threads(1)
        at_one = median_time()
    finally:
        torch.set_num_threads(previous)
    return {"kernel": f"torch.exp over {PROBE_ELEMENTS} float32", "threads": threads,
            "threads_s": at_threads, "one_thread_s": at_one, "speedup": at_one / at_threads}


def gpu_observation(device: str) -> dict[str, Any]:
    """Other processes on the GPU: NVML's process list and utilisation where available, else
    the memory in use that this process's allocator does not account for."""
    import torch

    index = torch.device(device).index or 0
    out: dict[str, Any] = {"method": None, "other_processes": None, "utilization": None,
                           "other_memory_bytes": None}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        ours = {os.getpid(), os.getppid()}  # a worker's parent holds a context too
        out["other_processes"] = sorted({p.pid for p in procs} - ours)
        out["utilization"] = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100
        try:
            out["sm_clock_mhz"] = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
            out["sm_clock_max_mhz"] = pynvml.nvmlDeviceGetMaxClockInfo(handle,
                                                                        pynvml.NVML_CLOCK_SM)
        except Exception:
            pass
        out["method"] = "NVML compute processes and utilisation"
    except Exception:
        free, total = torch.cuda.mem_get_info(index)
        out["other_memory_bytes"] = max(0, total - free - torch.cuda.memory_reserved(index))
        out["method"] = ("torch.cuda.mem_get_info: device memory in use minus this process's "
                         "reserved memory (includes our own CUDA context)")
    return out


def assess(observation: dict[str, Any], threads: int, cores: int | None = None,
           ) -> tuple[bool, list[str]]:
    """``(contended, reasons)`` for one observation (keys as written by the functions above;
    missing keys are not evidence either way)."""
    cores = cores or os.cpu_count() or 1
    reasons: list[str] = []
    others, res = observation.get("others_busy_cores"), observation.get("resolution_cores") or 0
    if others is not None and others - res > OTHERS_BUSY_MAX_CORES:
        reasons.append(f"other processes kept {others:.2f} cores busy (±{res:.2f}; at most "
                       f"{OTHERS_BUSY_MAX_CORES} allowed)")
        if threads + others - res > cores:
            reasons.append(f"oversubscribed: {threads} thread(s) + {others:.2f} busy cores "
                           f"> {cores} cores")
    steal = observation.get("steal_fraction")
    if steal is not None and steal > STEAL_MAX_FRACTION:
        reasons.append(f"CPU steal {100 * steal:.1f} % (at most {100 * STEAL_MAX_FRACTION:.0f} %)")
    probe = observation.get("probe") or {}
    if threads > 1 and probe.get("speedup") is not None and \
            probe["speedup"] <= OVERSUBSCRIBED_SPEEDUP:
        reasons.append(f"{threads} threads ran the probe kernel {1 / probe['speedup']:.2f}× "
                       "the one-thread time (threads waiting for each other)")
    gpu = observation.get("gpu") or {}
    if gpu.get("other_processes"):
        reasons.append(f"other processes on the GPU: pids {gpu['other_processes']}")
    if gpu.get("other_memory_bytes") is not None and \
            gpu["other_memory_bytes"] > GPU_OTHER_MEMORY_MAX_BYTES:
        reasons.append(f"{gpu['other_memory_bytes'] / 2**30:.1f} GiB of device memory held "
                       "outside this process")
    return bool(reasons), reasons


def describe(observations: list[dict[str, Any]], threads: int) -> str:
    """One line summing up many observations: the worst of each kind of evidence."""
    verdicts = [(o, assess(o, threads)) for o in observations]
    bad = [o for o, (c, _) in verdicts if c]
    if not bad:
        return "no contention observed"
    parts = []
    others = [o["others_busy_cores"] for o in bad if o.get("others_busy_cores") is not None]
    if others:
        parts.append(f"other processes kept {min(others):.2f}–{max(others):.2f} cores busy")
    over = sum(any(r.startswith("oversubscribed") for r in rs) for _, (_, rs) in verdicts)
    if over:
        parts.append(f"oversubscribed in {over} of {len(observations)} measurements")
    steal = [o["steal_fraction"] for o in bad if o.get("steal_fraction")]
    if steal and max(steal) > STEAL_MAX_FRACTION:
        parts.append(f"CPU steal up to {100 * max(steal):.1f} %")
    slow = [o["probe"]["speedup"] for o in bad if (o.get("probe") or {}).get("speedup")]
    if threads > 1 and slow and min(slow) <= OVERSUBSCRIBED_SPEEDUP:
        parts.append(f"{threads}-thread probe down to {min(slow):.2f}× the one-thread speed")
    gpus = sorted({p for o in bad for p in (o.get("gpu") or {}).get("other_processes") or []})
    if gpus:
        parts.append(f"other GPU processes {gpus}")
    return "; ".join(parts) or "; ".join(assess(bad[0], threads)[1])


def observe_idle(threads: int, device: str, seconds: float) -> dict[str, Any]:
    """The pre-grid calibration: an idle CPU sample, the thread probe and (GPU) the device."""
    obs = idle_sample(seconds)
    obs["probe"] = thread_probe(threads, "cpu")
    if device.startswith("cuda"):
        obs["gpu"] = gpu_observation(device)
        obs["gpu_probe"] = thread_probe(threads, device)
    contended, reasons = assess(obs, threads)
    obs.update(contended=contended, reasons=reasons)
    return obs
