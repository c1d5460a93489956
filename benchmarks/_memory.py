"""Peak memory of one call (by an honest method per device), and the memory bandwidth that the
roofline compares against.

Peak memory, above what was allocated before the call:

- CUDA: ``torch.cuda.reset_peak_memory_stats`` then ``max_memory_allocated() − allocated before``
  (the caching allocator's own count of live tensor bytes; cached-but-free blocks excluded).
- CPU, torch variants: the torch profiler's allocation events (``profile_memory=True``), replayed
  in time order; the peak of the running sum of allocations minus frees is the most torch's CPU
  allocator held at once during the call. It counts tensor storage only (not Python objects,
  not the allocator's or the OS's slack), which is what "memory per variant" means here.
- CPU, NumPy reference: ``tracemalloc``'s peak (NumPy reports its data buffers to tracemalloc).

Each method returns ``(peak_bytes or None, method string)``; None means not measured, with why.

:func:`bandwidth` times two plain kernels over a buffer larger than the last-level cache: a
read (``src.sum()``) and a copy (``dst.copy_(src)``), median of blocks of calls.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import torch


def _cuda_peak(fn: Callable[[], Any], device: str) -> tuple[int | None, str]:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del out
    return int(peak), "torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus " \
                      "memory_allocated before the call"


def _profiler_allocations(prof: Any) -> list[tuple[int, int]]:
    """(time ns, signed bytes) of every CPU allocation/free event the profiler recorded."""
    from torch._C._profiler import _EventType

    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.typed[0] == _EventType.Allocation:
            fields = event.typed[1]
            if fields.device.type == "cpu":
                events.append((event.start_time_ns, int(fields.alloc_size)))
    events.sort()
    return events


def _cpu_torch_peak(fn: Callable[[], Any]) -> tuple[int | None, str]:
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn()
            del out
        events = _profiler_allocations(prof)
    except Exception as exc:  # private profiler API: degrade to "not measured", never guess
        return None, f"not measured: torch profiler allocation events unavailable ({exc})"
    live = peak = 0
    for _, delta in events:
        live += delta  # allocations are positive, frees negative
        peak = max(peak, live)
    return peak, "torch.profiler profile_memory allocation events: peak of live CPU bytes " \
                 "allocated during the call"


def _tracemalloc_peak(fn: Callable[[], Any]) -> tuple[int | None, str]:
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    del out
    if not already:
        tracemalloc.stop()
    return int(peak - before), "tracemalloc peak (NumPy buffers) minus traced memory before"


def peak_bytes(fn: Callable[[], Any], device: str, numpy_variant: bool = False,
               ) -> tuple[int | None, str]:
    """Peak extra bytes held during one call of ``fn`` on ``device``, and how it was measured."""
    if device.startswith("cuda"):
        return _cuda_peak(fn, device)
    if numpy_variant:
        return _tracemalloc_peak(fn)
    return _cpu_torch_peak(fn)


def _kernel_medians(device: str, n: int, seconds: float) -> dict[str, float]:
    """Median seconds per call of the read and copy kernels over ``n`` float32 values."""
    from benchmarks._measure import _block_time

    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    cuda = device.startswith("cuda")
    medians = {}
    for name, fn in (("read", lambda: src.sum()), ("copy", lambda: dst.copy_(src))):
        _block_time(fn, 1, cuda)  # warm-up: pages touched
        per_call = _block_time(fn, 1, cuda)
        number = max(1, int(seconds / 10 / per_call))
        deadline, times = time.monotonic() + seconds, []
        while time.monotonic() < deadline or len(times) < 3:
            times.append(_block_time(fn, number, cuda))
        medians[name] = sorted(times)[len(times) // 2]
    return medians


def bandwidth(device: str, threads: int, nbytes: int, seconds: float = 0.5) -> dict[str, Any]:
    """Measured memory bandwidth of plain kernels on ``device`` (GB/s = 1e9 B/s).

    read: ``src.sum()`` moves ``nbytes`` (reads once); copy: ``dst.copy_(src)`` moves
    ``2·nbytes`` (reads and writes once). Each: the median of per-call times over blocks
    filling about ``seconds``. ``nbytes`` should exceed the last-level cache.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    n = nbytes // 4
    try:
        medians = _kernel_medians(device, n, seconds)
    finally:
        torch.set_num_threads(previous)
    if device.startswith("cuda"):  # hand the buffers back: the workers need the device to
        torch.cuda.empty_cache()  # themselves, and held memory would read as another tenant
    nbytes = n * 4
    return {
        "buffer_bytes": nbytes, "read_gbps": nbytes / medians["read"] / 1e9,
        "copy_gbps": 2 * nbytes / medians["copy"] / 1e9, "threads": threads,
        "method": "read: src.sum() over buffer_bytes; copy: dst.copy_(src), 2·buffer_bytes; "
                  "median per-call time over blocks",
    }
