"""Views of one ``ProfileRun`` shaped for plots and tables (no Qt, no new figures).

The record holds per-layer rows that carry either simulator cycles (QNN HTP) or kernel time (ORT
CPU, and nodes an HTP session left on the CPU EP). A chart can only rank like with like, so every
view here picks one *measure* and uses only the rows measured that way; nothing is converted or
estimated across measures.
"""

from __future__ import annotations

import math
from typing import Any

from studio.core.overlay import NodeOverlay
from studio.core.profiling.records import MEASURE_CYCLES, MEASURE_TIME, LayerRow, ProfileRun

MEASURE_LABEL = {MEASURE_CYCLES: "cycles", MEASURE_TIME: "time (µs)"}


def primary_measure(run: ProfileRun) -> str | None:
    """The measure the per-layer charts rank by: cycles when the backend reported any."""
    return run.primary_measure


def rows_with(
    run: ProfileRun, measure: str | None, include_inserted: bool = True
) -> list[LayerRow]:
    rows = run.all_rows if include_inserted else run.layers
    return [r for r in rows if measure and r.measure == measure and r.value is not None]


def slowest(run: ProfileRun, n: int = 12) -> list[LayerRow]:
    """The ``n`` costliest rows of the primary measure, costliest first."""
    return run.ranked()[:n]


def op_type_breakdown(run: ProfileRun) -> list[tuple[str, float, float]]:
    """[(op type, summed value, share of total)] for the primary measure, largest first."""
    totals: dict[str, float] = {}
    for row in rows_with(run, primary_measure(run)):
        totals[row.op_type or "?"] = totals.get(row.op_type or "?", 0.0) + float(row.value or 0.0)
    grand = sum(totals.values())
    out = [(op, v, v / grand if grand > 0 else 0.0) for op, v in totals.items()]
    return sorted(out, key=lambda t: t[1], reverse=True)


def overlay_for(run: ProfileRun) -> NodeOverlay | None:
    """Per-ONNX-node cost in the primary measure (cycles, or milliseconds for kernel time).

    Rows inserted by the backend have no ONNX node and are left out; nodes fused into another
    node's row carry no value of their own.
    """
    measure = primary_measure(run)
    rows = rows_with(run, measure, include_inserted=False)
    if not rows:
        return None
    kind = "emulated" if run.is_emulated() else "measured"
    source = run.label or run.backend.upper()
    if measure == MEASURE_CYCLES:
        values = {r.node_id: float(r.cycles or 0.0) for r in rows}
        return NodeOverlay("cycles", values, "cycles", kind, source, "inferno")
    values = {r.node_id: float(r.time_us or 0.0) / 1000.0 for r in rows}
    return NodeOverlay("time", values, "ms", kind, source, "inferno")


def histogram(values: list[float], bins: int | None = None) -> tuple[list[float], list[int]]:
    """(edges, counts). Bin width by the Freedman-Diaconis rule (10..100 bins), so a few slow
    outliers widen the range without swallowing the bulk of the runs into one bin."""
    import numpy as np

    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return [], []
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-3, 1e-6)
    if bins is None:
        q75, q25 = np.percentile(arr, [75, 25])
        width = 2.0 * float(q75 - q25) / arr.size ** (1.0 / 3.0)
        bins = int(math.ceil((hi - lo) / width)) if width > 0 else 10
        bins = min(100, max(10, bins))
    counts, edges = np.histogram(arr, bins=bins, range=(lo, hi))
    return edges.tolist(), counts.astype(int).tolist()


def run_indices(run: ProfileRun) -> list[float]:
    """Run numbers of the saved latencies (a long run keeps every ``latency_stride``-th one)."""
    stride = max(1, int(run.latency_stride or 1))
    return [float(i * stride) for i in range(len(run.latencies_ms))]


def run_tag(i: int) -> str:
    """Short tag of the i-th compared run (A, B, …) used in column headers and legends."""
    return chr(ord("A") + i) if i < 26 else f"R{i + 1}"


def is_sustained(run: ProfileRun) -> bool:
    return bool(run.options.get("duration_s")) and len(run.timeline) > 1


def fmt_ms(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if value >= 10_000:
        return f"{value / 1000:.1f} s"
    if value >= 100:
        return f"{value:.1f} ms"
    if value >= 1:
        return f"{value:.3f} ms"
    return f"{value * 1000:.1f} µs"


def setup_figures(run: ProfileRun) -> list[tuple[str, str]]:
    """(label, text) pairs of the set-up times the job measured; absent keys are skipped."""
    s: dict[str, Any] = run.setup or {}
    out: list[tuple[str, str]] = []
    if s.get("model_load_s") is not None:
        out.append(("Model load", fmt_ms(float(s["model_load_s"]) * 1000.0)))
    if s.get("qnn_register_s") is not None:
        out.append(("QNN EP load", fmt_ms(float(s["qnn_register_s"]) * 1000.0)))
    if s.get("session_create_s") is not None:
        out.append(("Session creation", fmt_ms(float(s["session_create_s"]) * 1000.0)))
    if s.get("first_run_ms") is not None:
        out.append(("First inference", fmt_ms(float(s["first_run_ms"]))))
    return out


class LiveLatencies:
    """Latencies received while a profile is still measuring (the core loop's ``data`` payloads).

    Each payload holds the runs from index ``start`` on, every ``stride``-th; they are appended
    in order. Past ``max_points`` every other point is dropped, so a long sustained run keeps a
    bounded, evenly thinned picture; the final record replaces all of it.
    """

    def __init__(self, sustained: bool = False, max_points: int = 20000) -> None:
        self.sustained = sustained
        self.max_points = max_points
        self.runs: list[float] = []  # run index of each kept point
        self.times: list[float] = []  # seconds into the loop
        self.values: list[float] = []  # latency, ms
        self.count = 0  # runs measured so far (all of them, kept or not)
        self.elapsed_s = 0.0

    def add(self, payload: dict) -> bool:
        """Append one payload; False (and nothing changed) when it is not a latency payload."""
        if not isinstance(payload, dict) or payload.get("kind") != "latencies":
            return False
        values = payload.get("latencies_ms") or []
        offsets = payload.get("offsets_s") or []
        start, stride = int(payload.get("start", 0)), max(1, int(payload.get("stride", 1)))
        self.runs.extend(float(start + i * stride) for i in range(len(values)))
        self.values.extend(float(v) for v in values)
        self.times.extend(float(t) for t in offsets[: len(values)])
        self.count = int(payload.get("count", self.count))
        self.elapsed_s = float(payload.get("elapsed_s", self.elapsed_s))
        if len(self.values) > self.max_points:
            self.runs, self.values, self.times = self.runs[::2], self.values[::2], self.times[::2]
        return True

    @property
    def x(self) -> list[float]:
        """Plot abscissa: seconds in sustained mode (as the final timeline), else run number."""
        return self.times if self.sustained and len(self.times) == len(self.values) else self.runs
