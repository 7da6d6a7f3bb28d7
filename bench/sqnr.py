"""Per-layer SQNR analysis time vs one plain inference pass over the same samples.

Prints one JSON line:
- ``analyse_s``: ``Analyser.analyse`` on CPU (instrumented float + QDQ sessions built, both run on
  every sample, per-layer/weight/output SQNR computed), end to end;
- ``float_pass_s``: one plain pass of the float model over the same samples (session creation +
  runs), the reference; ``ratio`` = analyse / float pass (target <= 3);
- ``qdq_pass_s`` and ``ratio_vs_qdq_pass``: the same against one plain pass of the QDQ model;
- ``layers``: how many activations were measured;
each the best (minimum) of ``--repeat`` interleaved rounds in this process on this machine (the
minimum is the least disturbed by other processes; ``load_avg`` says how busy the machine was).
``analyse_cpu_s`` / ``float_pass_cpu_s`` / ``cpu_ratio``: the same rounds in process CPU time
(all threads), which moves far less than wall time on a shared machine.

Usage: ``python bench/sqnr.py [MODEL] [--samples 32] [--repeat 5]``
(default model: resources/models/demo_cnn.onnx).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core.accuracy import Analyser  # noqa: E402
from studio.core.calibration import calibrate, load_fixed, model_inputs  # noqa: E402
from studio.core.quantize import QuantPlan, build_qdq  # noqa: E402


def _plain_pass(path: str, feeds: list[dict[str, np.ndarray]]) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    for feed in feeds:
        sess.run(None, feed)
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(ROOT / "resources/models/demo_cnn.onnx"))
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    rng = np.random.default_rng(0)
    specs = model_inputs(load_fixed(args.model, None))
    feeds = [
        {s.name: rng.normal(0.0, 1.0, s.shape).astype(s.dtype) for s in specs}
        for _ in range(args.samples)
    ]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        np.savez(
            tmp / "calib.npz", **{s.name: np.concatenate([f[s.name] for f in feeds]) for s in specs}
        )
        stats = calibrate(args.model, tmp / "calib.npz", cache_dir=tmp / "cache")
        qdq = build_qdq(stats, QuantPlan(), tmp / "q.onnx").qdq_path
        float_path = str(stats.prepared_model)
        analyse_t, float_t, qdq_t, analyse_c, float_c = [], [], [], [], []
        layers = 0
        for _ in range(args.repeat):
            wall, cpu = _plain_pass(float_path, feeds)
            float_t.append(wall)
            float_c.append(cpu)
            start, cpu = time.perf_counter(), time.process_time()
            report = Analyser(float_path, cache_float=False).analyse(qdq, feeds)
            analyse_t.append(time.perf_counter() - start)
            analyse_c.append(time.process_time() - cpu)
            layers = len(report.layers)
            qdq_t.append(_plain_pass(qdq, feeds)[0])
    a, f, q = (min(v) for v in (analyse_t, float_t, qdq_t))
    print(
        json.dumps(
            {
                "bench": "sqnr",
                "model": args.model,
                "samples": args.samples,
                "layers": layers,
                "analyse_s": round(a, 4),
                "float_pass_s": round(f, 4),
                "ratio": round(a / f, 3),
                "target_ratio": 3.0,
                "analyse_cpu_s": round(min(analyse_c), 4),
                "float_pass_cpu_s": round(min(float_c), 4),
                "cpu_ratio": round(min(analyse_c) / min(float_c), 3),
                "qdq_pass_s": round(q, 4),
                "ratio_vs_qdq_pass": round(a / q, 3),
                "output_sqnr_db": round(report.output_sqnr_db, 2),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
