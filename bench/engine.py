"""Engine figures: worker-process cost, cancel latency, and what a context binary buys at load.

Measured, in this process, on this machine:
- ``worker_roundtrip_ms``: a no-op job through ``run_in_worker`` (spawn, import, JSON both ways):
  the price of running every native job in its own process;
- ``cancel_latency_ms``: from ``token.cancel()`` to ``run_in_worker`` raising JobCancelledError for
  a job that ignores SIGTERM (so the SIGKILL path is what is timed); the target is < 1000 ms;
- for the demo model quantised for QNN (ORT ``get_qnn_qdq_config``): the embedded compile time, and
  the HTP session creation time from the source QDQ ONNX vs from the compiled EPContext model
  (``load_ratio_ctx_vs_onnx`` < 1 means the context binary loads faster). On an x86-64 host HTP is
  the simulator: these are host times, not phone times.

Prints one JSON object of medians. Usage: ``python bench/engine.py [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from studio.core.engine.sessions import make_session  # noqa: E402
from studio.core.errors import JobCancelledError  # noqa: E402
from studio.core.jobs.client import run_in_worker  # noqa: E402
from studio.core.jobs.protocol import CancelToken, JobContext  # noqa: E402

DEMO = ROOT / "resources" / "models" / "demo_cnn.onnx"


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def worker_roundtrip(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run_in_worker("studio.core.jobs.testing:echo", {"n": 1})
        times.append(time.perf_counter() - start)
    return _median_ms(times)


def cancel_latency(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        token = CancelToken()
        ctx = JobContext(token=token)
        started = threading.Event()
        ctx.on_log = lambda line, started=started: started.set()
        done: list[float] = []

        def go(ctx: JobContext = ctx, done: list[float] = done) -> None:
            try:
                run_in_worker(
                    "studio.core.jobs.testing:sleep", {"seconds": 30, "ignore_cancel": True}, ctx
                )
            except JobCancelledError:
                done.append(time.perf_counter())

        thread = threading.Thread(target=go)
        thread.start()
        started.wait(30)
        t0 = time.perf_counter()
        token.cancel()
        thread.join(10)
        times.append(done[0] - t0)
    return _median_ms(times)


def quantize_demo(folder: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    sess, _ = make_session(DEMO, "cpu")
    inp = sess.get_inputs()[0]
    rng = np.random.default_rng(0)
    batches = [{inp.name: rng.random(inp.shape, dtype=np.float32)} for _ in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self):  # noqa: ANN201 - ORT's interface
            return next(self._it, None)

    out = folder / "demo_qdq.onnx"
    quantize(str(DEMO), str(out), get_qnn_qdq_config(str(DEMO), Reader()))
    return out


def context_figures(rounds: int) -> dict[str, float]:
    from studio.core.toolchain.compile import compile_model

    with tempfile.TemporaryDirectory() as tmp:
        qdq = quantize_demo(Path(tmp))
        start = time.perf_counter()
        result = compile_model(qdq, Path(tmp) / "bundle", provider_options={"soc_model": "60"})
        compile_s = time.perf_counter() - start
        ctx_model = Path(result["context_model"])
        onnx_load, ctx_load = [], []
        for _ in range(rounds):  # interleaved, medians taken
            t = time.perf_counter()
            make_session(qdq, "htp", provider_options={"soc_model": "60"})
            onnx_load.append(time.perf_counter() - t)
            t = time.perf_counter()
            make_session(ctx_model, "htp", provider_options={"soc_model": "60"})
            ctx_load.append(time.perf_counter() - t)
    return {
        "compile_ms": round(compile_s * 1000, 1),
        "htp_load_from_onnx_ms": _median_ms(onnx_load),
        "htp_load_from_context_ms": _median_ms(ctx_load),
        "load_ratio_ctx_vs_onnx": round(
            statistics.median(ctx_load) / statistics.median(onnx_load), 3
        ),
        "full_offload": bool(result["offload"]["full_offload"]),
        "verify_max_abs_diff_vs_cpu": result["verify"]["max_abs_diff_vs_cpu"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    figures = {
        "host": platform.machine(),
        "worker_roundtrip_ms": worker_roundtrip(args.rounds),
        "cancel_latency_ms": cancel_latency(max(3, args.rounds // 2)),
        "cancel_target_ms": 1000,
        **context_figures(args.rounds),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
