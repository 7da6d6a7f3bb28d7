"""The sweep as a worker job, for the GUI: rows stream back as ``data`` events.

The GUI runs the sweep driver in a worker process rather than in its own: Ray's driver takes
over signal handlers and starts a local cluster whose processes share the driver's fate, so
cancelling the job (SIGTERM, then SIGKILL of the worker's process group) stops the sweep and
its local Ray without touching the window. Finished rows are in the result file already.
"""

from __future__ import annotations

from typing import Any

from studio.core.jobs.protocol import JobContext, job
from studio.core.sweeps.run import run_sweep
from studio.core.sweeps.spec import SweepSpec


@job
def sweep_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """``{"spec": sweep file JSON, "out": SWEEP.json, "address"?, "num_cpus"?}`` -> the sweep
    document; each changed row is sent as ``{"row": {...}}`` on the way."""
    spec = SweepSpec.from_json(request["spec"], source=str(request.get("source") or "<memory>"))

    final = {"done", "failed", "cancelled"}
    status: dict[str, str] = {}

    def on_row(row: dict[str, Any]) -> None:
        status[row["key"]] = row["status"]
        ctx.data({"row": row})
        finished = sum(1 for s in status.values() if s in final)
        ctx.progress(finished / max(1, len(status)), f"{row['label']}: {row['status']}")

    doc = run_sweep(
        spec,
        request["out"],
        address=request.get("address") or None,
        num_cpus=request.get("num_cpus"),
        token=ctx.token,
        on_row=on_row,
    )
    return doc
