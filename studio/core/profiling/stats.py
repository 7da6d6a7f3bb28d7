"""Latency statistics: the figures every run reports, computed the same way everywhere.

Percentiles use numpy's default (linear interpolation) so a user can reproduce them from the raw
per-run latencies that a saved run keeps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from studio.core.errors import BadInputError


@dataclass
class LatencyStats:
    """Summary of one measured loop. Times in milliseconds; throughput in inferences per second.

    ``throughput_ips`` divides the number of runs by the wall time of the whole loop (so it
    includes the harness's own overhead and is never flattering), not by the sum of latencies.
    """

    count: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    total_ms: float
    wall_s: float
    throughput_ips: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyStats:
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise BadInputError(f"latency stats lack {', '.join(sorted(missing))}")
        return cls(**{k: data[k] for k in names})


def latency_stats(latencies_ms: Any, wall_s: float | None = None) -> LatencyStats:
    """Statistics over per-run latencies (ms). ``wall_s`` is the loop's wall time, if known.

    Raises BadInputError for an empty array or non-finite values: a statistic over nothing, or
    over a broken clock reading, would be a number that was not measured.
    """
    arr = np.asarray(latencies_ms, dtype=np.float64).ravel()
    if arr.size == 0:
        raise BadInputError("no latencies to summarise (0 runs were measured)")
    if not np.all(np.isfinite(arr)):
        raise BadInputError("latencies contain non-finite values")
    total_ms = float(arr.sum())
    wall = float(wall_s) if wall_s and wall_s > 0 else total_ms / 1000.0
    p50, p95, p99 = (float(v) for v in np.percentile(arr, [50, 95, 99]))
    return LatencyStats(
        count=int(arr.size),
        mean_ms=float(arr.mean()),
        std_ms=float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        min_ms=float(arr.min()),
        max_ms=float(arr.max()),
        total_ms=total_ms,
        wall_s=wall,
        throughput_ips=float(arr.size / wall) if wall > 0 else 0.0,
    )


def value_stats(values: Any) -> dict[str, float]:
    """mean/std/min/max/p50 of any per-run series (backend times, cycles); empty dict if none."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {}
    return {
        "count": int(arr.size),
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
        "min": float(arr.min()),
        "p50": float(np.percentile(arr, 50)),
        "max": float(arr.max()),
    }


def downsample(values: list[float], max_points: int) -> tuple[list[float], int]:
    """Keep at most ``max_points`` evenly strided values; returns (values, stride).

    Long sustained runs produce hundreds of thousands of runs; the saved record keeps a
    strided sample for plots while the statistics are computed on every run.
    """
    if max_points <= 0 or len(values) <= max_points:
        return list(values), 1
    stride = math.ceil(len(values) / max_points)
    return list(values[::stride]), stride


def timeline_bins(offsets_s: Any, latencies_ms: Any, bin_s: float) -> list[dict[str, float]]:
    """Latency over time for sustained runs: per time bin, the count, mean, p95 and max.

    Drift or throttling shows as a rising mean/p95 across bins; one bin per ``bin_s`` seconds.
    """
    t = np.asarray(offsets_s, dtype=np.float64).ravel()
    lat = np.asarray(latencies_ms, dtype=np.float64).ravel()
    if t.size != lat.size:
        raise BadInputError(f"timeline has {t.size} offsets but {lat.size} latencies")
    if t.size == 0 or bin_s <= 0:
        return []
    idx = np.floor(t / bin_s).astype(np.int64)
    out: list[dict[str, float]] = []
    for b in np.unique(idx):
        sel = lat[idx == b]
        out.append(
            {
                "t_s": float((b + 0.5) * bin_s),
                "count": int(sel.size),
                "mean_ms": float(sel.mean()),
                "p95_ms": float(np.percentile(sel, 95)),
                "max_ms": float(sel.max()),
            }
        )
    return out
