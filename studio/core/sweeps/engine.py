"""Ray as the sweep engine: connect, ship inputs once, run points as tasks, stream results.

Why Ray rather than a home-made scheduler: a team already runs it, it places tasks by resource
request on any number of nodes, moves objects between nodes, and survives a task's process
dying. What the studio adds is small and lives here:

* ``connect``: a local Ray with this machine's cores by default (``address="local"``, so a head
  node that happens to run here is not picked up by surprise), or ``--ray-address`` /
  ``RAY_ADDRESS``. Usage-stats reporting is off (``RAY_USAGE_STATS_ENABLED=0``) for the driver
  and, through the job's runtime env, for every worker.
* each point is one task with a CPU request; its native work runs one level further down, in
  a fresh studio worker process (``run_in_worker``), so QNN's per-process backend state never
  outlives a point and a native crash comes back as an ordinary failed result naming the
  signal and the last lines. The Ray worker itself never loads QNN, so Ray may reuse it
  (``max_calls=0``, the default: measured here a fresh Ray worker per point, ``max_calls=1``,
  costs several CPU-seconds more per point); the sweep option ``ray_max_calls`` sets it.
* inputs travel by content hash (see :mod:`.inputs`); a small actor (the "board") hears when a
  point starts and where, so the progress table can show queued / running / done per node.
* cancel: queued points are dropped, running ones are force-cancelled (their worker process
  group dies with them); finished results are already with the caller.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import BackendUnavailableError, ConfigError, StudioError
from studio.core.jobs.protocol import CancelToken

USAGE_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])
BOARD_POLL_S = 0.2


def _ray():
    try:
        import ray
    except ImportError as exc:  # a dependency, but say so plainly if an install lacks it
        raise BackendUnavailableError(f"sweeps need Ray (pip install 'ray>=2.60'): {exc}") from exc
    return ray


def resolve_address(address: str | None) -> str | None:
    """The cluster to use: the explicit address, else ``RAY_ADDRESS``, else None (local)."""
    value = address or os.environ.get("RAY_ADDRESS") or None
    return value.strip() if value else None


@dataclass
class Cluster:
    """A connection to Ray for one sweep; ``info`` goes into the sweep file."""

    address: str | None = None
    num_cpus: int | None = None
    started_here: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> Cluster:
        os.environ.update(USAGE_ENV)
        ray = _ray()
        address = resolve_address(self.address)
        env_vars = {
            **USAGE_ENV,
            "PYTHONPATH": os.pathsep.join(
                p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p
            ),
        }
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "warning",
            "runtime_env": {"env_vars": env_vars},
            "namespace": "npu-studio",
        }
        if ray.is_initialized():  # a caller (the GUI's worker, a test) already connected
            self.started_here = False
        else:
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    ray.init(address="local", num_cpus=self.num_cpus or os.cpu_count(), **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a local Ray"
                raise BackendUnavailableError(
                    f"cannot start or reach Ray at {where}: {exc}"
                ) from exc
            self.started_here = True
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.info = {
            "ray_version": ray.__version__,
            "cluster": {
                "address": address or "local",
                "nodes": len(nodes),
                "cpus": float(ray.cluster_resources().get("CPU", 0.0)),
                "node_ips": sorted({str(n.get("NodeManagerAddress")) for n in nodes}),
            },
        }
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started_here:
            _ray().shutdown()


class _Board:
    """Ray actor: points report here when they start (and where), the driver drains it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def started(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        out, self.events = self.events, []
        return out


def _where() -> dict[str, Any]:
    ray = _ray()
    rc = ray.get_runtime_context()
    return {
        "node_id": rc.get_node_id()[:12],
        "ip": ray.util.get_node_ip_address(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def _point_task(
    task: dict[str, Any], refs: dict[str, list[Any]], board: list[Any]
) -> dict[str, Any]:
    """Runs on a Ray worker: fetch the blobs this node lacks, run the point's job, report.

    ``refs`` maps a blob's hash to ``[ObjectRef]``: wrapped in a list, Ray hands the ref over
    instead of fetching the value, so a node that already holds the blob fetches nothing.
    Never raises for a failing point: the error is part of the result.
    """
    from studio.core.jobs.client import run_in_worker
    from studio.core.jobs.protocol import JobContext
    from studio.core.sweeps.inputs import cached_blob, node_cache_dir, store_blob

    ray = _ray()
    t0 = time.time()
    where = _where()
    board[0].started.remote({"key": task["key"], "where": where, "at": t0})
    fetched, paths = 0, {}
    root = node_cache_dir(task.get("node_cache"))
    out: dict[str, Any] = {"key": task["key"], "where": where, "started_at": t0}
    try:
        for role, blob in task["blobs"].items():
            path = cached_blob(root, blob)
            if path is None:
                data = ray.get(refs[blob["sha256"]][0])
                fetched += len(data)
                path = store_blob(root, blob, data)
            paths[role] = str(path)
        work = root / "points" / task["key"]
        request = {
            "model": paths["model"],
            "calib": paths["calib"],
            "eval": paths["eval"],
            "params": task["params"],
            "options": task["options"],
            "label": task.get("label"),
            "work_dir": str(work),
            "cache_dir": str(root / "calibration"),
            **task.get("extra", {}),
        }
        t1 = time.time()
        timeout = float(task["options"].get("timeout_s") or 0) or None
        # run_in_worker's crash message already quotes the job's last log lines
        result = run_in_worker(task["job"], request, JobContext(), timeout_s=timeout)
        out.update(ok=True, result=result, worker_s=time.time() - t1)
    except StudioError as exc:
        out.update(
            ok=False,
            error={
                "kind": type(exc).__name__,
                "message": str(exc),
                "detail": (exc.detail or "")[-4000:] if getattr(exc, "detail", None) else None,
            },
        )
    out.update(fetched_bytes=fetched, finished_at=time.time(), task_s=time.time() - t0)
    return out


@dataclass
class PointTask:
    """What the driver sends for one point (small: parameters and blob names, no data)."""

    key: str
    params: dict[str, Any]
    blobs: dict[str, dict[str, Any]]  # role -> Blob JSON
    options: dict[str, Any]
    job: str
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    node_cache: str | None = None  # the node-local cache folder; None: the node's own default

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


Event = Callable[[str, dict[str, Any]], None]  # ("started"|"finished", payload)


def run_points(
    points: Iterable[PointTask],
    blob_data: dict[str, bytes],
    on_event: Event,
    *,
    token: CancelToken | None = None,
    num_cpus: float = 1.0,
    max_in_flight: int | None = None,
    max_calls: int = 0,
) -> dict[str, Any]:
    """Run ``points`` on the connected cluster, calling ``on_event`` as each starts and ends.

    Every blob is put in the object store once, here, whatever the number of points. Returns
    the traffic and scheduling figures of the run (bytes put, per point request/result sizes).
    ``max_calls=1`` retires each Ray worker after its point; 0 lets Ray reuse it (the point's
    native work still runs in a fresh studio worker process either way).
    """
    ray = _ray()
    if not ray.is_initialized():
        raise ConfigError("run_points needs a connected Ray (use sweeps.engine.Cluster)")
    token = token or CancelToken()
    t_put = time.perf_counter()
    refs = {sha: [ray.put(data)] for sha, data in blob_data.items()}
    put_s = time.perf_counter() - t_put
    board = ray.remote(num_cpus=0)(_Board).remote()
    remote = ray.remote(num_cpus=num_cpus, max_calls=max_calls, max_retries=0)(_point_task)
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    cap = max_in_flight or max(4, int(2 * cpus / max(num_cpus, 0.01)))
    queue = list(points)
    queue.reverse()
    in_flight: dict[Any, tuple[PointTask, float, int]] = {}
    stats = {
        "put_bytes": sum(len(d) for d in blob_data.values()),
        "put_s": put_s,
        "tasks": len(queue),
        "cancelled": False,
    }

    def drain_board() -> None:
        for ev in ray.get(board.drain.remote()):
            on_event("started", ev)

    try:
        while queue or in_flight:
            if token.cancelled:
                stats["cancelled"] = True
                break
            while queue and len(in_flight) < cap:
                pt = queue.pop()
                payload = pt.to_json()
                wanted = {b["sha256"]: refs[b["sha256"]] for b in pt.blobs.values()}
                ref = remote.remote(payload, wanted, [board])
                in_flight[ref] = (pt, time.time(), len(json.dumps(payload)))
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=BOARD_POLL_S)
            drain_board()
            for ref in ready:
                pt, submitted, req_bytes = in_flight.pop(ref)
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the Ray worker itself died
                    res = {
                        "key": pt.key,
                        "ok": False,
                        "error": {
                            "kind": type(exc).__name__,
                            "message": str(exc).splitlines()[0][:500],
                        },
                    }
                res["submitted_at"] = submitted
                res["request_bytes"] = req_bytes
                res["result_bytes"] = len(json.dumps(res.get("result") or res.get("error") or {}))
                on_event("finished", res)
    finally:
        if in_flight or queue:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            for pt, _, _ in in_flight.values():
                on_event("cancelled", {"key": pt.key})
            for pt in queue:
                on_event("cancelled", {"key": pt.key})
        try:
            drain_board()
        except Exception:  # noqa: BLE001 - the board may already be gone at shutdown
            pass
        # the board actor goes with its last handle (killing it would log a "worker died")
    return stats
