"""The saved shape of a profile: :class:`ProfileRun` and its per-layer :class:`LayerRow` s.

One record carries everything a later reader needs without the model or the machine: latency
statistics and the raw per-run latencies (so percentiles can be recomputed), the sustained-mode
timeline, resource use, set-up times, and the per-layer table mapped to ONNX node ids. The CLI's
``--json``, the project file, the report and the UI dashboard all read this one shape.

``from_json`` checks ``schema_version`` and migrates older records; unknown keys are ignored so a
newer studio's record still opens in an older one as far as it can.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.core import jsonread
from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import BadInputError
from studio.core.overlay import NodeOverlay
from studio.core.profiling.stats import LatencyStats

SCHEMA_VERSION = 1

# Where a layer row's figure came from; also the unit of ``LayerRow.value``.
MEASURE_CYCLES = "cycles"
MEASURE_TIME = "time_us"


@dataclass
class LayerRow:
    """One ONNX node (or one backend op that matches none: ``inserted=True``) and its cost.

    ``cycles`` come from the QNN profiler (simulator cycles on x86-64), ``time_us`` from ORT's
    kernel timer; a row has whichever its backend reports. ``share`` is the fraction of the total
    of the same measure over all rows of the run (inserted rows included), so shares of one
    measure add up to 1. ``backend_ops`` are the backend's names that were summed into this row;
    ``fused`` the other ONNX nodes the backend folded into it; ``inferred`` the subset of those the
    backend did not report at all (attributed by graph position, see mapping.py).
    ``value_range`` is [lowest, highest] reading over the profiled runs, where known.
    """

    node_id: str
    op_type: str
    backend: str
    cycles: float | None = None
    time_us: float | None = None
    share: float | None = None
    macs: int = 0
    cycles_per_mac: float | None = None
    backend_ops: list[str] = field(default_factory=list)
    fused: list[str] = field(default_factory=list)
    inferred: list[str] = field(default_factory=list)
    value_range: list[float] | None = None
    inserted: bool = False
    note: str = ""

    @property
    def measure(self) -> str | None:
        if self.cycles is not None:
            return MEASURE_CYCLES
        if self.time_us is not None:
            return MEASURE_TIME
        return None

    @property
    def value(self) -> float | None:
        return self.cycles if self.cycles is not None else self.time_us

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerRow:
        return cls.from_field(jsonread.wrap(data, "layer row"))

    @classmethod
    def from_field(cls, row: jsonread.Field) -> LayerRow:
        """A row of a saved run; errors name the file and the row (``layers[3].node_id``)."""
        names = {f.name for f in fields(cls)}
        row.key("node_id").string()
        return cls(**{k: v for k, v in row.object().items() if k in names})


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ProfileRun:
    """A measured profile of one model on one backend with one set of options."""

    model_path: str
    model_sha256: str
    backend: str
    stats: LatencyStats
    latencies_ms: list[float]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    label: str = ""
    created: str = field(default_factory=_now)
    providers: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    backend_stats: dict[str, Any] = field(default_factory=dict)
    latency_stride: int = 1
    latency_offsets_s: list[float] = field(default_factory=list)
    timeline: list[dict[str, float]] = field(default_factory=list)
    layers: list[LayerRow] = field(default_factory=list)
    extra: list[LayerRow] = field(default_factory=list)
    layer_source: str = ""
    unmapped_nodes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The target device's estimate for this model (studio.core.devices.estimate), the figure a
    # simulated HTP run or a host CPU run leads with; empty when none was made.
    device_estimate: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def device_lead(self) -> tuple[float, str, str] | None:
        """(ms, short caption, full label) of the target-device figure this run leads with.

        A simulated HTP run leads with the NPU estimate (its own times are the emulator's); a run
        on this host's CPU leads with the phone CPU's figure from assumed rates, because the host's
        x86 cores say nothing of a phone's. None when no estimate was made.
        """
        est = self.device_estimate or {}
        if not est:
            return None
        device = str(est.get("device", ""))
        if self.backend == "cpu":
            if not est.get("cpu_total_ms"):
                return None
            return (float(est["cpu_total_ms"]), f"{device} CPU, assumed", str(est["cpu_label"]))
        err = est.get("median_abs_rel_err")
        caption = device + (f" ±{err * 100:.0f}%" if err else "")
        return float(est.get("total_ms", 0.0)), caption, str(est.get("label", ""))

    @property
    def all_rows(self) -> list[LayerRow]:
        return [*self.layers, *self.extra]

    @property
    def primary_measure(self) -> str | None:
        """The unit the backend itself reports layers in: cycles on QNN, µs on CPU.

        On a QNN run, rows in µs are the nodes ORT placed on the CPU; shares are per measure, so
        rankings and heat maps use this measure and list the others apart.
        """
        measures = {r.measure for r in self.all_rows}
        if MEASURE_CYCLES in measures:
            return MEASURE_CYCLES
        return MEASURE_TIME if MEASURE_TIME in measures else None

    def ranked(self, measure: str | None = None) -> list[LayerRow]:
        """Rows of ``measure`` (default: the primary one), costliest first."""
        m = measure or self.primary_measure
        rows = [r for r in self.all_rows if r.measure == m and r.value is not None]
        return sorted(rows, key=lambda r: r.value or 0.0, reverse=True)

    def overlay(self) -> NodeOverlay:
        """Per-node share of cost, keyed by ONNX node id: the heat overlay of the report's graph.

        Fused nodes are listed under the row they were folded into, so they take no value. The
        shares derive from the run's own figures, so the overlay names where those came from.
        """
        m = self.primary_measure
        values = {
            r.node_id: float(r.share) for r in self.layers if r.share is not None and r.measure == m
        }
        what = "emulated" if self.is_emulated() else "measured"
        source = f"share of {m or 'cost'}, {what} ({self.label or self.backend.upper()})"
        return NodeOverlay("share", values, "fraction", "derived", source, "inferno")

    def is_emulated(self) -> bool:
        """HTP on an x86-64 host is the emulator: its times and cycles describe no device."""
        machine = str(self.host.get("machine", "")).lower()
        return self.backend == "htp" and machine in ("x86_64", "amd64")

    def latency_measure(self) -> str:
        """What the latency statistics measured, in words (shown beside p50/p95/p99)."""
        machine = self.host.get("machine", "?")
        if self.is_emulated():
            return f"emulated: wall time of the QNN HTP emulator on this {machine} host, not a device's"
        if self.backend == "cpu":
            return f"measured: this host's CPU ({machine}, ORT CPU EP), not the target's CPU"
        return f"measured on {machine} ({self.backend.upper()})"

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["stats"] = self.stats.to_json()
        data["stats"]["measured"] = self.latency_measure()
        data["layers"] = [r.to_json() for r in self.layers]
        data["extra"] = [r.to_json() for r in self.extra]
        data["schema_version"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "profile run") -> ProfileRun:
        """Read a record (a job's result or a saved file, named by ``source`` in errors)."""
        doc = jsonread.wrap(data, source)
        version = doc.key("schema_version", None).integer(low=1)
        if version > SCHEMA_VERSION:
            raise doc.key("schema_version").fail(
                f"{version} is newer than this studio understands ({SCHEMA_VERSION}); "
                "update npu-studio"
            )
        doc.key("model_path").string()
        doc.key("backend").string()
        doc.key("stats").object()
        doc.key("latencies_ms").array()
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in doc.object().items() if k in names}
        kwargs["stats"] = LatencyStats.from_json(data["stats"])
        kwargs["layers"] = [LayerRow.from_field(r) for r in doc.key("layers", []).elements()]
        kwargs["extra"] = [LayerRow.from_field(r) for r in doc.key("extra", []).elements()]
        kwargs.setdefault("model_sha256", "")
        kwargs["schema_version"] = SCHEMA_VERSION
        return cls(**kwargs)

    def save(self, path: str | Path) -> Path:
        """Write the record atomically as JSON (no NaN/Inf: None where nothing was measured)."""
        atomic_write_json(path, self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ProfileRun:
        return cls.from_json(read_json_strict(path, error_type=BadInputError), str(path))
