"""The timed loop: per-run latency, CPU use and memory of this process, with progress and cancel.

Why it looks bare: on a small model one ``session.run`` takes tens of microseconds, so anything we
do per iteration shows in the figures. Each iteration only reads the clock twice and appends two
floats to preallocated ``array('d')`` buffers; progress, cancel and memory sampling happen at most
every ``check_interval_s`` (a clock comparison otherwise). ``bench/profile_overhead.py`` checks
the result against a bare ``session.run`` loop.

Live data: with a listener on ``ctx.data`` (the worker always has one), every ``live_interval_s``
the loop sends the runs measured since the last send as ``{"kind": "latencies", "start", "stride",
"latencies_ms", "offsets_s", "count", "elapsed_s"}``: the new runs from index ``start`` on, every
``stride``-th when more than ``LIVE_MAX_POINTS`` arrived, so a payload stays a few KB however fast
the model runs. A live view appends them; the final record replaces them.

CPU use is ``CPU seconds of this process (all threads, CLOCK_PROCESS_CPUTIME_ID) / wall seconds``
over the loop (100 % is one core busy; psutil's cpu_times tick at 10 ms, too coarse for short
loops). Memory: resident set size before/after and its maximum seen at the checks, plus
the process's lifetime peak (``ru_maxrss``), which in a worker process is this job's peak.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

import psutil

MB = 1024.0 * 1024.0
LIVE_INTERVAL_S = 0.25
LIVE_MAX_POINTS = 256


def rss_mb() -> float:
    return psutil.Process(os.getpid()).memory_info().rss / MB


def peak_rss_mb() -> float | None:
    """Lifetime peak resident set size of this process (None where the OS does not say)."""
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 1024.0 if os.uname().sysname != "Darwin" else peak / MB


@dataclass
class LoopResult:
    """What one measured loop produced."""

    latencies_ms: array = field(default_factory=lambda: array("d"))
    offsets_s: array = field(default_factory=lambda: array("d"))
    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_max_mb: float = 0.0

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def resources(self) -> dict[str, Any]:
        return {
            "cpu_percent": self.cpu_percent,
            "cpu_s": self.cpu_s,
            "logical_cpus": psutil.cpu_count(logical=True),
            "rss_start_mb": self.rss_start_mb,
            "rss_end_mb": self.rss_end_mb,
            "rss_max_mb": self.rss_max_mb,
            "rss_delta_mb": self.rss_end_mb - self.rss_start_mb,
        }


def live_chunk(res: LoopResult, start: int, elapsed_s: float) -> dict[str, Any]:
    """The runs from ``start`` on as a live-data payload, thinned to ``LIVE_MAX_POINTS``."""
    count = len(res.latencies_ms)
    stride = max(1, -(-(count - start) // LIVE_MAX_POINTS))  # ceil
    return {
        "kind": "latencies",
        "start": start,
        "stride": stride,
        "latencies_ms": res.latencies_ms[start:count:stride].tolist(),
        "offsets_s": res.offsets_s[start:count:stride].tolist(),
        "count": count,
        "elapsed_s": elapsed_s,
    }


def measure_loop(
    run_once: Callable[[], Any],
    *,
    runs: int | None = None,
    duration_s: float | None = None,
    ctx: JobContext | None = None,
    check_interval_s: float = 0.1,
    live_interval_s: float = LIVE_INTERVAL_S,
) -> LoopResult:
    """Call ``run_once`` ``runs`` times, or for ``duration_s`` seconds (sustained mode).

    With both, stops at whichever comes first. Cancel (``ctx``) is honoured between runs and
    raises JobCancelledError; the runs already measured are lost with it, by design: a cancelled
    profile is not a result.
    """
    if not runs and not duration_s:
        raise BadInputError("give a number of runs or a duration for the measured loop")
    if runs is not None and runs < 0:
        raise BadInputError(f"runs must be >= 0 (got {runs})")
    limit = int(runs) if runs else 1 << 62
    deadline = float(duration_s) if duration_s else float("inf")
    proc = psutil.Process(os.getpid())
    ctx = ctx or JobContext()
    res = LoopResult()
    res.rss_start_mb = res.rss_max_mb = proc.memory_info().rss / MB
    lat, off = res.latencies_ms, res.offsets_s
    cpu0 = time.process_time()
    perf = time.perf_counter
    start = perf()
    next_check = start + check_interval_s
    live = ctx.wants_data
    next_live, sent = start + live_interval_s, 0
    count = 0
    while count < limit:
        t0 = perf()
        run_once()
        t1 = perf()
        lat.append((t1 - t0) * 1000.0)
        off.append(t0 - start)
        count += 1
        if t1 >= next_check:
            next_check = t1 + check_interval_s
            ctx.check_cancelled()
            res.rss_max_mb = max(res.rss_max_mb, proc.memory_info().rss / MB)
            elapsed = t1 - start
            if duration_s:
                ctx.progress(min(1.0, elapsed / deadline), f"{count} runs, {elapsed:.1f} s")
            else:
                ctx.progress(count / limit, f"{count}/{limit} runs")
            if live and t1 >= next_live:
                next_live = t1 + live_interval_s
                ctx.data(live_chunk(res, sent, elapsed))
                sent = count
            if elapsed >= deadline:
                break
        elif duration_s and t1 - start >= deadline:
            break
    res.wall_s = perf() - start
    res.cpu_s = time.process_time() - cpu0
    res.rss_end_mb = proc.memory_info().rss / MB
    res.rss_max_mb = max(res.rss_max_mb, res.rss_end_mb)
    return res
