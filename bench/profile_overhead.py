"""Harness overhead of the profile loop vs a bare ``session.run`` loop (target ratio <= 1.02).

One session, one set of inputs. Each round runs, in alternating order:
- ours: ``studio.core.profiling.measure.measure_loop`` exactly as the profile job calls it
  (``functools.partial(sess.run, None, feeds)``, a JobContext with a progress callback and, as
  in the worker, a live-data callback that serialises each payload to JSON), giving
  the reported mean latency (``stats.mean_ms``) and the loop's wall time per run;
- bare: ``for _ in range(n): sess.run(None, feeds)`` timed as a whole, wall / n.

A third loop, a second bare one, gives ``control_ratio_bare_vs_bare``: how far two identical loops
differ on this machine at this moment (the noise floor the ratios should be read against).

Prints one JSON object: the medians over rounds of ``ours_mean_ms`` (what a profile reports),
``ours_wall_per_run_ms`` (what the loop really costs, harness included) and ``bare_mean_ms``, and
``ratio_mean`` / ``ratio_wall`` = ours / bare. Machines are noisy: rounds are interleaved and the
medians taken; every figure is measured in this process on this machine.

Usage: ``python bench/profile_overhead.py [MODEL] [--backend cpu|htp] [--runs 300] [--rounds 31]``
(default model: resources/models/demo_cnn.onnx on CPU; small models are the hard case, as the
harness's fixed cost per run is then largest relative to the run).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core.engine.sessions import make_session, random_inputs  # noqa: E402
from studio.core.jobs.protocol import JobContext  # noqa: E402
from studio.core.profiling.measure import measure_loop  # noqa: E402
from studio.core.profiling.stats import latency_stats  # noqa: E402


def _ours(sess, feeds, runs: int) -> tuple[float, float]:
    ctx = JobContext(
        on_progress=lambda f, t: None, on_data=lambda p: json.dumps(p), min_interval_s=0.02
    )
    once = functools.partial(sess.run, None, feeds)
    loop = measure_loop(once, runs=runs, ctx=ctx)
    stats = latency_stats(list(loop.latencies_ms), loop.wall_s)
    return stats.mean_ms, loop.wall_s * 1000.0 / runs


def _bare(sess, feeds, runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        sess.run(None, feeds)
    return (time.perf_counter() - start) * 1000.0 / runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(ROOT / "resources/models/demo_cnn.onnx"))
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--runs", type=int, default=300, help="runs per loop per round")
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads (CPU)")
    args = parser.parse_args()

    sess, info = make_session(
        args.model,
        args.backend,
        intra_op_num_threads=args.threads if args.backend == "cpu" else None,
    )
    feeds = random_inputs(sess)
    for _ in range(max(10, args.runs // 20)):
        sess.run(None, feeds)
    ours_mean, ours_wall, bare, control = [], [], [], []
    orders = [(0, 1, 2), (1, 2, 0), (2, 0, 1)]  # each loop goes first, second, third in turn
    for i in range(args.rounds):
        for which in orders[i % 3]:
            if which == 0:
                m, w = _ours(sess, feeds, args.runs)
                ours_mean.append(m)
                ours_wall.append(w)
            elif which == 1:
                bare.append(_bare(sess, feeds, args.runs))
            else:
                control.append(_bare(sess, feeds, args.runs))
    med = statistics.median
    result = {
        "model": str(args.model),
        "backend": args.backend,
        "providers": info.providers,
        "runs_per_round": args.runs,
        "rounds": args.rounds,
        "host": platform.machine(),
        "ours_mean_ms": med(ours_mean),
        "ours_wall_per_run_ms": med(ours_wall),
        "bare_mean_ms": med(bare),
        "ratio_mean": med(ours_mean) / med(bare),
        "ratio_wall": med(ours_wall) / med(bare),
        # A second bare loop against the first: the noise floor of this machine right now.
        "control_ratio_bare_vs_bare": med(control) / med(bare),
        "target_ratio": 1.02,
    }
    result["ok"] = result["ratio_mean"] <= 1.02 and result["ratio_wall"] <= 1.02
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
