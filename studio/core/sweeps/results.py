"""The sweep's result file: one row per point, the Pareto front, and what re-runs may reuse.

``SWEEP.json`` is written atomically after every finished point, so a cancelled or killed sweep
keeps what it finished. Each row carries its ``key``: the hash of the model, the calibration and
evaluation data, the point's parameters and the versions of every package that could change a
figure. A re-run reuses a finished row whose key is unchanged and runs the rest.

Pareto: a point is on the front when no other finished point of the same device is at least as
accurate (output SQNR) and at least as fast (on-device latency: measured, else estimated) and
strictly better in one. Emulator wall time is never used for it (DESIGN.md "every number").
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import ConfigError

SCHEMA_VERSION = 1
STATUSES = ("queued", "running", "done", "failed", "cancelled")


def package_versions() -> dict[str, str]:
    """Versions of what a point's figures depend on (part of every point's key)."""
    import numpy
    import onnx

    from studio import __version__
    from studio.core.engine.registry import versions

    return {
        "npu-studio": __version__,
        "onnx": onnx.__version__,
        "numpy": numpy.__version__,
        **versions(),
    }


def point_key(
    point: dict[str, Any],
    hashes: dict[str, str],
    options: dict[str, Any],
    versions: dict[str, str],
    job: str,
) -> str:
    """The identity of a point's result: same key, same figures (so a re-run may skip it)."""
    params = {k: v for k, v in point.items() if k != "model"}
    payload = {
        "params": params,
        "inputs": hashes,
        "options": options,
        "versions": versions,
        "job": job,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def latency_of(row: dict[str, Any]) -> tuple[float | None, str | None]:
    """The device latency a decision may use: measured on hardware, else estimated."""
    for key, kind in (("measured_ms", "measured"), ("estimated_ms", "estimated")):
        value = row.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            return float(value), kind
    return None, None


def mark_pareto(rows: list[dict[str, Any]]) -> None:
    """Set ``pareto`` on every row: True on the (SQNR up, latency down) front of its device."""
    for row in rows:
        row["pareto"] = False
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        lat, _ = latency_of(row)
        db = row.get("sqnr_db")
        if row.get("status") != "done" or lat is None or not isinstance(db, int | float):
            continue
        groups.setdefault(str(row.get("device")), []).append(row)
    for members in groups.values():
        for row in members:
            lat, db = latency_of(row)[0], float(row["sqnr_db"])
            dominated = False
            for other in members:
                if other is row:
                    continue
                olat, odb = latency_of(other)[0], float(other["sqnr_db"])
                if olat <= lat and odb >= db and (olat < lat or odb > db):
                    dominated = True
                    break
            row["pareto"] = not dominated


def new_document(spec_json: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "engine": "ray",
        **cluster,
        "spec": spec_json,
        "rows": [],
        "summary": {},
    }


def write(path: str | Path, doc: dict[str, Any]) -> None:
    mark_pareto(doc["rows"])
    counts = {s: sum(1 for r in doc["rows"] if r.get("status") == s) for s in STATUSES}
    doc["summary"] = {**doc.get("summary", {}), "counts": counts}
    atomic_write_json(path, doc)


def load(path: str | Path) -> dict[str, Any]:
    data = read_json_strict(path, error_type=ConfigError)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ConfigError("not a sweep result (no 'rows')", path=str(path))
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ConfigError(f"sweep result schema_version {version!r} not readable", path=str(path))
    return data


def reusable_rows(path: str | Path) -> dict[str, dict[str, Any]]:
    """Finished rows of an earlier run of this sweep file, by key (nothing when there is none)."""
    p = Path(path)
    if not p.is_file():
        return {}
    try:
        old = load(p)
    except ConfigError:
        return {}
    return {r["key"]: r for r in old["rows"] if r.get("status") == "done" and r.get("key")}
