"""CSV and JSON exports of profile runs and their per-layer tables.

CSV for spreadsheets (one header line, plain numbers, no units inside cells; the per-layer
columns are ``columns.LAYER_COLUMNS``); JSON is the ProfileRun record itself (with
``schema_version``) plus the unit and kind of each per-layer column, written atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json, atomic_write_text
from studio.core.profiling.columns import CSV, columns
from studio.core.profiling.records import ProfileRun


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ";".join(str(x) for x in v)
    return v


def layers_csv(run: ProfileRun) -> str:
    """The per-layer table (ONNX nodes first, then rows the backend inserted)."""
    cols = columns(CSV)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([c.key for c in cols])
    for r in run.all_rows:
        w.writerow([_cell(c.get(r)) for c in cols])
    return buf.getvalue()


def run_json(run: ProfileRun) -> dict[str, Any]:
    """The record as exported: the ProfileRun JSON plus what each per-layer figure is.

    ``layer_columns`` (key, label, unit, kind) is for readers of the file; ``ProfileRun.load``
    ignores it, so the export still opens as a record.
    """
    data = run.to_json()
    data["layer_columns"] = [c.describe(run) for c in columns(CSV)]
    return data


RUN_COLUMNS = [
    "id",
    "label",
    "backend",
    "model_path",
    "model_sha256",
    "created",
    "count",
    "mean_ms",
    "std_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "min_ms",
    "max_ms",
    "throughput_ips",
    "session_create_s",
    "first_run_ms",
    "cpu_percent",
    "rss_max_mb",
    "accelerator_cycles_p50",
]


def runs_csv(runs: list[ProfileRun]) -> str:
    """One line per run: identity, latency statistics, set-up and resources."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(RUN_COLUMNS)
    for run in runs:
        s = run.stats
        accel = (run.backend_stats.get("accelerator_cycles") or {}).get("p50")
        w.writerow(
            [
                _cell(x)
                for x in (
                    run.id,
                    run.label,
                    run.backend,
                    run.model_path,
                    run.model_sha256,
                    run.created,
                    s.count,
                    s.mean_ms,
                    s.std_ms,
                    s.p50_ms,
                    s.p95_ms,
                    s.p99_ms,
                    s.min_ms,
                    s.max_ms,
                    s.throughput_ips,
                    run.setup.get("session_create_s"),
                    run.setup.get("first_run_ms"),
                    run.resources.get("cpu_percent"),
                    run.resources.get("rss_max_mb"),
                    accel,
                )
            ]
        )
    return buf.getvalue()


def latencies_csv(run: ProfileRun) -> str:
    """Per-run latencies as saved (every ``latency_stride``-th run of a long loop)."""
    lines = ["run_index,latency_ms"]
    lines += [f"{i * run.latency_stride},{v:.6f}" for i, v in enumerate(run.latencies_ms)]
    return "\n".join(lines) + "\n"


def export_run(run: ProfileRun, folder: str | Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>_layers.csv`` and ``<stem>_latencies.csv`` into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    name = stem or f"profile_{run.backend}_{run.id}"
    paths = {
        "json": out / f"{name}.json",
        "layers_csv": out / f"{name}_layers.csv",
        "latencies_csv": out / f"{name}_latencies.csv",
    }
    atomic_write_json(paths["json"], run_json(run))
    atomic_write_text(paths["layers_csv"], layers_csv(run))
    atomic_write_text(paths["latencies_csv"], latencies_csv(run))
    return paths
