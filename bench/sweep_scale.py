"""What one sweep point costs on Ray, measured on this machine, for the scale section of the README.

Prints one JSON object:
- ``ray_init_s``: starting a local Ray (``ray.init(address="local")``, usage stats off);
- ``overhead``: ``--noop`` points whose job does nothing (``studio.core.jobs.testing:echo``) run
  exactly as real points are (one Ray task each, ``max_calls=1``, inputs fetched by hash, the
  job in a fresh studio worker process): ``per_point_s`` = wall time / points x CPUs, i.e. the
  CPU-seconds a point costs before it does any work (Ray worker start, fetch, worker process
  and its imports, result); ``bare_ray_task_s`` is the same for an empty Ray task with
  ``max_calls=1`` (Ray's own share);
- ``points``: a real sweep (``--grid`` on MODEL, HTP profile off) with, per point, the stage
  times, the bytes of its request, of the blobs it fetched and of its result;
- ``object_store``: bytes put once per sweep (model + calibration + evaluation ``.npz``).
``load_avg_1m`` says how busy the machine was (figures on a shared 2-core host move with it).

Usage: ``python bench/sweep_scale.py [MODEL] [--cpus 2] [--noop 8]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default=str(ROOT / "resources/models/demo_cnn.onnx"))
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--noop", type=int, default=8)
    parser.add_argument("--no-sweep", action="store_true", help="only the overhead figures")
    args = parser.parse_args()

    import ray

    from studio.core.jobs import testing as job_testing
    from studio.core.jobs.protocol import job_kind
    from studio.core.sweeps import SweepSpec, run_sweep
    from studio.core.sweeps.engine import Cluster, PointTask, run_points
    from studio.core.sweeps.inputs import materialise

    tmp = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    os.environ["STUDIO_SWEEP_CACHE"] = str(tmp / "node-cache")
    t = time.perf_counter()
    cluster = Cluster(num_cpus=args.cpus).__enter__()
    init_s = time.perf_counter() - t

    @ray.remote(num_cpus=1, max_calls=1)
    def empty() -> int:
        return os.getpid()

    @ray.remote(num_cpus=1)
    def empty_reused() -> int:
        return os.getpid()

    t = time.perf_counter()
    ray.get([empty.remote() for _ in range(args.noop)])
    bare = (time.perf_counter() - t) / args.noop * args.cpus
    ray.get([empty_reused.remote() for _ in range(args.cpus)])  # warm the reusable workers
    t = time.perf_counter()
    ray.get([empty_reused.remote() for _ in range(args.noop)])
    bare_reused = (time.perf_counter() - t) / args.noop * args.cpus

    mi = materialise(args.model, "random:8", None, 4)
    blobs = {"model": mi.model.to_json(), "calib": mi.calib.to_json(), "eval": mi.eval.to_json()}
    tasks = [
        PointTask(
            f"noop{i}",
            {"i": i},
            blobs,
            {"timeout_s": 300},
            job_kind(job_testing.echo),
            node_cache=os.environ["STUDIO_SWEEP_CACHE"],
        )
        for i in range(args.noop)
    ]
    finished: list[dict] = []
    t = time.perf_counter()
    run_points(tasks, mi.data, lambda kind, p: finished.append(p) if kind == "finished" else None)
    noop_wall = time.perf_counter() - t
    reused: list[dict] = []
    t = time.perf_counter()
    run_points(
        tasks,
        mi.data,
        lambda kind, p: reused.append(p) if kind == "finished" else None,
        max_calls=0,
    )
    reused_wall = time.perf_counter() - t
    noop = {
        "per_point_s_ray_worker_reused": reused_wall / args.noop * args.cpus,
        "bare_ray_task_reused_s": bare_reused,
        "points": args.noop,
        "wall_s": noop_wall,
        "per_point_s": noop_wall / args.noop * args.cpus,
        "bare_ray_task_s": bare,
        "task_s_median": statistics.median(p["task_s"] for p in finished if "task_s" in p),
        "worker_s_median": statistics.median(p["worker_s"] for p in finished if "worker_s" in p),
        "failed": sum(1 for p in finished if not p.get("ok")),
    }

    if args.no_sweep:
        cluster.__exit__(None, None, None)
        print(
            json.dumps(
                {"load_avg_1m": os.getloadavg()[0], "ray_init_s": init_s, "overhead": noop},
                indent=1,
            )
        )
        return 0
    spec = SweepSpec(
        models=[args.model],
        grid={"act_bw": [8, 16], "per_channel": [True, False]},
        calib="random:8",
        options={"profile_runs": 0},
    )
    t = time.perf_counter()
    doc = run_sweep(spec, tmp / "SWEEP.json", rerun=True)
    wall = time.perf_counter() - t
    cluster.__exit__(None, None, None)
    rows = doc["rows"]
    points = [
        {
            "label": r["label"],
            "status": r["status"],
            "sqnr_db": r.get("sqnr_db"),
            "estimated_ms": r.get("estimated_ms"),
            "task_s": r["timing"]["task_s"],
            "overhead_s": r["timing"]["overhead_s"],
            "stages_s": r["timing"]["stages_s"],
            **r["transfer"],
        }
        for r in rows
    ]
    out = {
        "model": args.model,
        "cpus": args.cpus,
        "load_avg_1m": os.getloadavg()[0],
        "ray_version": ray.__version__,
        "ray_init_s": init_s,
        "overhead": noop,
        "sweep_wall_s": wall,
        "sweep_per_point_cpu_s": wall / len(rows) * args.cpus,
        "points": points,
        "object_store": {
            "put_bytes": doc["summary"]["object_store_put_bytes"],
            "model_bytes": mi.model.size,
            "calib_bytes": mi.calib.size,
            "eval_bytes": mi.eval.size,
        },
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
