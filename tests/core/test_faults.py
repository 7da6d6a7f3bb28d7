"""Faults during real work: the worker killed or crashing mid-calibration, -compile and -profile.

Each job is a real one (real model, real ORT/QNN sessions) killed from outside at its first progress
event, as a native crash or the OOM killer would. What must hold: the caller gets a JobFailedError
naming the signal, nothing half-written is left where a later run would trust it, no process is
left behind, and the very next job succeeds.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest

from studio.core.calibration.collect import calibrate_job
from studio.core.errors import JobFailedError
from studio.core.jobs.client import WorkerProcess, live_workers, run_in_worker
from studio.core.jobs.protocol import JobContext, job_kind
from studio.core.profiling.job import profile_model
from studio.core.toolchain.jobs import compile_bundle
from tests import builders

CALIBRATE = job_kind(calibrate_job)
COMPILE = job_kind(compile_bundle)
PROFILE = job_kind(profile_model)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    float_path = builders.save(builders.small_cnn(), folder / "small_cnn.onnx")
    qdq_path = folder / "small_cnn_qdq.onnx"
    builders.quantize_for_qnn(float_path, qdq_path)
    data = folder / "calib.npz"
    rng = np.random.default_rng(0)
    np.savez(data, input=rng.random((16, 1, 3, 32, 32), dtype=np.float32))
    return {"float": float_path, "qdq": qdq_path, "data": data}


def _kill_at_first_progress(kind: str, request: dict, sig: signal.Signals) -> JobFailedError:
    """Run ``kind`` in a worker and send ``sig`` to it as soon as it reports progress."""
    worker = WorkerProcess(kind, request)
    fired = threading.Event()

    def on_progress(fraction: float, text: str) -> None:
        if not fired.is_set() and worker.pid:
            fired.set()
            os.kill(worker.pid, sig)

    ctx = JobContext(on_progress=on_progress, min_interval_s=0.0)
    worker.start()
    pid = worker.pid
    with pytest.raises(JobFailedError) as info:
        worker.run(ctx, timeout_s=120)
    assert fired.is_set(), "the job never reported progress before finishing"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not [w for w in live_workers() if w.pid == pid]
    return info.value


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_calibration_killed_leaves_no_cache_entry_and_reruns(models, tmp_path, sig):
    cache = tmp_path / "cache"
    request = {
        "model": str(models["float"]),
        "data": str(models["data"]),
        "cache_dir": str(cache),
        "optimize": False,
    }
    error = _kill_at_first_progress(CALIBRATE, request, sig)
    assert sig.name in str(error)
    # A killed pass must not leave statistics a later run would load as a cache hit.
    result = run_in_worker(CALIBRATE, request, timeout_s=120)
    assert result["cache_hit"] is False
    assert result["num_samples"] == 16 and result["tensors"] > 0
    assert Path(result["stats_dir"]).is_dir()


@pytest.mark.htp
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_compile_killed_leaves_no_bundle_and_reruns(models, tmp_path, sig):
    bundle = tmp_path / "bundle"
    request = {"model": str(models["qdq"]), "backend": "htp", "output": str(bundle)}
    error = _kill_at_first_progress(COMPILE, request, sig)
    assert sig.name in str(error)
    assert not (bundle / "manifest.json").exists(), "a killed compile left a bundle that looks done"
    result = run_in_worker(COMPILE, request, timeout_s=120)
    assert (bundle / "manifest.json").is_file()
    assert result["bundle"] == str(bundle)
    assert not list(tmp_path.glob(".bundle.partial*")), "the staging folder was left behind"


@pytest.mark.htp
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_profile_killed_is_reported_and_next_profile_runs(models, sig):
    request = {"model": str(models["qdq"]), "backend": "htp", "runs": 200, "warmup": 2}
    error = _kill_at_first_progress(PROFILE, request, sig)
    assert sig.name in str(error)
    result = run_in_worker(PROFILE, {**request, "runs": 5}, timeout_s=120)
    assert result["stats"]["count"] == 5 and result["stats"]["p50_ms"] > 0
