"""Calibration + QDQ build speed vs onnxruntime.quantization, and rebuild-after-edit time.

Prints one JSON line:
- ``ours_s``: our calibration pass (min/max AND 2048-bin histograms of every activation, cache
  disabled) + building the QDQ model through ORT with our ranges;
- ``ort_minmax_s``: ``onnxruntime.quantization.quantize_static`` with MinMax calibration over the
  same model and the same samples (QDQ, uint8 activations, int8 per-channel weights);
- ``ratio`` = ours / ORT (target <= 1.1);
- ``rebuild_after_edit_s``: one per-tensor edit (a tensor to 16 bits) -> new QDQ model, no
  recalibration (target <= 1 s);
each the best (minimum) of ``--repeat`` interleaved rounds, measured in this process on this
machine (the minimum is the least disturbed by other processes; ``load_avg_1m`` says how busy
the machine was). ``ours_cpu_s`` / ``ort_minmax_cpu_s`` / ``cpu_ratio`` are the same rounds in
process CPU time (all threads): on a shared machine they move far less than wall time does.

Usage: ``python bench/calibration.py [MODEL] [--samples 32] [--repeat 3]``
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.core.calibration import calibrate, load_fixed, model_inputs  # noqa: E402
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq  # noqa: E402


def _samples(model: Path, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in model_inputs(load_fixed(model, None)):
        shape = [n, *spec.shape[1:]] if spec.shape and spec.shape[0] == 1 else [n, *spec.shape]
        feeds[spec.name] = rng.normal(0.0, 1.0, shape).astype(spec.dtype)
    return feeds


def _ort_minmax(model: Path, data: dict[str, np.ndarray], out: Path) -> float:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            n = len(next(iter(data.values())))
            self.items = iter([{k: v[i : i + 1] for k, v in data.items()} for i in range(n)])

        def get_next(self):
            return next(self.items, None)

    start, cpu = time.perf_counter(), time.process_time()
    quantize_static(
        str(model),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(ROOT / "resources/models/demo_cnn.onnx"))
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    model = Path(args.model)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = _samples(model, args.samples)
        np.savez(tmp / "calib.npz", **data)
        ours, theirs, rebuild, ours_cpu, theirs_cpu = [], [], [], [], []
        for i in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            stats = calibrate(
                model, tmp / "calib.npz", cache_dir=tmp / f"cache{i}", use_cache=False
            )
            build_qdq(stats, QuantPlan(), tmp / "ours.onnx")
            ours.append(time.perf_counter() - start)
            ours_cpu.append(time.process_time() - cpu)
            wall, cpu_s = _ort_minmax(model, data, tmp / "ort.onnx")
            theirs.append(wall)
            theirs_cpu.append(cpu_s)
            plan = QuantPlan()
            edited = stats.tensor_names()[len(stats.tensor_names()) // 2]
            plan.set_override(TensorOverride(edited, bitwidth=16))
            start = time.perf_counter()
            build_qdq(stats, plan, tmp / "edited.onnx")
            rebuild.append(time.perf_counter() - start)
    ours_s, ort_s = min(ours), min(theirs)
    print(
        json.dumps(
            {
                "bench": "calibration",
                "model": str(model),
                "samples": args.samples,
                "activation_tensors": len(stats.histograms),
                "ours_s": round(ours_s, 4),
                "ort_minmax_s": round(ort_s, 4),
                "ratio": round(ours_s / ort_s, 3),
                "target_ratio": 1.1,
                "ours_cpu_s": round(min(ours_cpu), 4),
                "ort_minmax_cpu_s": round(min(theirs_cpu), 4),
                "cpu_ratio": round(min(ours_cpu) / min(theirs_cpu), 3),
                "rebuild_after_edit_s": round(min(rebuild), 4),
                "rebuild_after_edit_max_s": round(max(rebuild), 4),
                "target_rebuild_s": 1.0,
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
