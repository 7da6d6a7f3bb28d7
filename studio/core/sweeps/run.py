"""Run a sweep end to end: expand the spec, ship the inputs, run on Ray, stream rows to a file.

``run_sweep(spec, "SWEEP.json")`` is what ``npu-studio sweep`` and the GUI's Sweeps view call.
Rows stream into ``SWEEP.json`` (atomically rewritten, at most every ``WRITE_EVERY_S`` and at the
end) and each finished point's records go to ``SWEEP.points/<key>/``: ``plan.json`` (the
QuantPlan the Quantization workspace loads) and ``profile.json`` (the ProfileRun the Profiling
workspace opens). A re-run with the same output reuses rows whose key is unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json
from studio.core.jobs.protocol import CancelToken, job_kind
from studio.core.sweeps import results
from studio.core.sweeps.engine import Cluster, PointTask, run_points
from studio.core.sweeps.inputs import CACHE_ENV, materialise
from studio.core.sweeps.point import sweep_point
from studio.core.sweeps.spec import POINT_KEYS, SweepSpec

WRITE_EVERY_S = 1.0
RowFn = Callable[[dict[str, Any]], None]


def records_dir(out: str | Path) -> Path:
    p = Path(out)
    return p.with_name(p.stem + ".points")


def point_label(params: dict[str, Any]) -> str:
    """A short name for a point: ``A8W8 pc minmax burst`` (+ device, techniques)."""
    text = f"A{params['act_bw']}W{params['weight_bw']}"
    text += " pc" if params["per_channel"] else " pt"
    text += f" {params['method']}"
    if params["method"] == "percentile":
        text += f"{params['percentile']:g}"
    if params.get("techniques"):
        text += " +" + "+".join(params["techniques"])
    text += f" {params['perf_mode']}"
    if params.get("device"):
        text += f" @{params['device']}"
    return text


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    token: CancelToken | None = None,
    on_row: RowFn | None = None,
    point_job: str | None = None,
    point_extra: dict[str, Any] | None = None,
    rerun: bool = False,
) -> dict[str, Any]:
    """Run every point of ``spec``; returns the document written to ``out``.

    ``on_row`` is called with a row each time one changes (queued, running, done, failed,
    cancelled). ``point_job`` names another ``@job`` to run per point (tests use one that
    crashes on purpose, given ``point_extra`` in its request); ``rerun`` ignores reusable
    rows.
    """
    out = Path(out)
    token = token or CancelToken()
    job = point_job or job_kind(sweep_point)
    started = time.perf_counter()
    points = spec.expand()
    eval_n = int(spec.option("eval_samples"))
    inputs = {
        m: materialise(m, spec.calib, spec.eval, eval_n) for m in {p["model"] for p in points}
    }
    versions = results.package_versions()
    options = {k: spec.option(k) for k in ("profile_runs", "sqnr_backend", "timeout_s")}
    reuse = {} if rerun else results.reusable_rows(out)
    rec_root = records_dir(out)
    rows: list[dict[str, Any]] = []
    by_key: dict[str, dict[str, Any]] = {}
    tasks: list[PointTask] = []
    blob_data: dict[str, bytes] = {}
    for i, point in enumerate(points):
        mi = inputs[point["model"]]
        hashes = {"model": mi.model.sha256, "calib": mi.calib.sha256, "eval": mi.eval.sha256}
        key = results.point_key(point, hashes, options, versions, job)
        params = {k: point[k] for k in POINT_KEYS}
        if key in by_key:  # the same point twice (e.g. two identical models): run it once
            continue
        if key in reuse:
            row = {**reuse[key], "index": i, "reused": True}
        else:
            row = {
                "key": key,
                "index": i,
                "model": point["model"],
                "params": params,
                "label": point_label(params),
                "status": "queued",
                "reused": False,
            }
            blobs = {
                "model": mi.model.to_json(),
                "calib": mi.calib.to_json(),
                "eval": mi.eval.to_json(),
            }
            for b in (mi.model, mi.calib, mi.eval):
                blob_data[b.sha256] = mi.data[b.sha256]
            tasks.append(
                PointTask(
                    key,
                    params,
                    blobs,
                    options,
                    job,
                    label=row["label"],
                    extra=point_extra or {},
                    node_cache=os.environ.get(CACHE_ENV) or None,
                )
            )
        rows.append(row)
        by_key[key] = row
    with Cluster(address=address, num_cpus=num_cpus) as cluster:
        doc = results.new_document(spec.to_json(), cluster.info)
        doc["versions"] = versions
        doc["inputs"] = {
            m: {
                "model": mi.model.to_json(),
                "calib": mi.calib.to_json(),
                "eval": mi.eval.to_json(),
                "calib_samples": mi.calib_samples,
                "eval_samples": mi.eval_samples,
                "notes": mi.notes,
            }
            for m, mi in inputs.items()
        }
        doc["rows"] = rows
        doc["records_dir"] = rec_root.name
        last_write = [0.0, 0.0]  # when, and how long the last write took

        def save(force: bool = False) -> None:
            # at most every WRITE_EVERY_S, and never more than a fifth of the driver's time:
            # 50,000 rows are ~100 MB of JSON, which a fixed 1 s period would rewrite non-stop
            now = time.perf_counter()
            if force or now - last_write[0] >= max(WRITE_EVERY_S, 5 * last_write[1]):
                results.write(out, doc)
                last_write[0], last_write[1] = time.perf_counter(), time.perf_counter() - now

        def changed(row: dict[str, Any]) -> None:
            if on_row is not None:
                on_row(dict(row))

        for row in rows:
            changed(row)
        save(force=True)

        def on_event(kind: str, payload: dict[str, Any]) -> None:
            row = by_key.get(payload.get("key", ""))
            if row is None:
                return
            if kind == "started":
                if row["status"] == "queued":
                    row.update(status="running", where=payload["where"])
                    changed(row)
                return
            if kind == "cancelled":
                if row["status"] in ("queued", "running"):
                    row["status"] = "cancelled"
                    changed(row)
                return
            _finish(row, payload, rec_root)
            changed(row)
            save()

        stats: dict[str, Any] = {"put_bytes": 0, "put_s": 0.0, "cancelled": True}
        try:
            stats = run_points(
                tasks,
                blob_data,
                on_event,
                token=token,
                num_cpus=float(spec.option("num_cpus")),
                max_calls=int(spec.option("ray_max_calls")),
            )
        finally:  # also on Ctrl-C: what finished stays in the file
            doc["summary"] = {
                "elapsed_s": time.perf_counter() - started,
                "points": len(rows),
                "ran": len(tasks),
                "reused": len(rows) - len(tasks),
                "object_store_put_bytes": stats["put_bytes"],
                "object_store_put_s": stats["put_s"],
                "cancelled": bool(stats["cancelled"] or token.cancelled),
            }
            results.write(out, doc)
    return doc


def _finish(row: dict[str, Any], res: dict[str, Any], rec_root: Path) -> None:
    """Fold one task's result into its row and write the point's records."""
    row["where"] = res.get("where", row.get("where"))
    submitted, begun, ended = res.get("submitted_at"), res.get("started_at"), res.get("finished_at")
    job = res.get("result") or {}
    stages = job.get("stages_s") or {}
    work_s = sum(stages.values())
    row["timing"] = {
        "queued_s": (begun - submitted) if begun and submitted else None,
        "task_s": res.get("task_s"),
        "worker_s": res.get("worker_s"),
        "stages_s": stages,
        # what one point costs beyond its own work: Ray worker start, fetches, the studio
        # worker process and its imports
        "overhead_s": (res["task_s"] - work_s) if res.get("task_s") and stages else None,
        "finished_at": ended,
    }
    row["transfer"] = {
        "request_bytes": res.get("request_bytes"),
        "blob_bytes": res.get("fetched_bytes", 0),
        "result_bytes": res.get("result_bytes"),
    }
    if not res.get("ok"):
        row.update(status="failed", error=res.get("error"))
        return
    row.update(job.get("row") or {})
    row["notes"] = job.get("notes", [])
    lat, kind = results.latency_of(row)
    row["latency_kind"] = kind
    folder = rec_root / row["key"]
    folder.mkdir(parents=True, exist_ok=True)
    recs: dict[str, str] = {}
    atomic_write_json(folder / "plan.json", job["plan"])
    recs["plan"] = f"{rec_root.name}/{row['key']}/plan.json"
    if job.get("profile"):
        atomic_write_json(folder / "profile.json", job["profile"])
        recs["profile"] = f"{rec_root.name}/{row['key']}/profile.json"
    row["records"] = recs
    row["plan"] = job["plan"]
    if job.get("error"):
        row.update(status="failed", error=job["error"])
    else:
        row.update(status="done", error=None)
