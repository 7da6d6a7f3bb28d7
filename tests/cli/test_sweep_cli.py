"""``npu-studio sweep`` against a real Ray head node started with ``ray start --head``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests import builders

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "studio", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_bad_grid_value_is_exit_2_naming_the_key(tmp_path):
    model = builders.save(builders.small_cnn(), tmp_path / "m.onnx")
    proc = _cli(
        "sweep", str(model), "--grid", "act_bw=8,12", "-o", str(tmp_path / "s.json"), env=_env()
    )
    assert proc.returncode == 2, proc.stderr
    assert "act_bw=12" in proc.stderr and not (tmp_path / "s.json").exists()
    proc = _cli("sweep", str(tmp_path / "missing.json"), "-o", str(tmp_path / "s.json"), env=_env())
    assert proc.returncode == 2 and "missing.json" in proc.stderr


@pytest.mark.htp
@pytest.mark.slow
def test_sweep_through_ray_address_on_a_head_node(tmp_path):
    model = builders.save(builders.small_cnn(), tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((10, 1, 3, 32, 32)).astype(np.float32))
    port = _free_port()
    ray = str(Path(sys.executable).with_name("ray"))
    # token auth on, with a token of this test's own (an explicit address never picks up
    # ~/.ray/auth_token by itself: Ray 2.60 wants RAY_AUTH_MODE=token on the client too)
    env = _env(
        STUDIO_SWEEP_CACHE=str(tmp_path / "node-cache"),
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=os.urandom(16).hex(),
    )
    head = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--block",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _listening(port):
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the head node did not come up in 90 s"
            time.sleep(0.5)
        out = tmp_path / "SWEEP.json"
        proc = _cli(
            "sweep",
            str(model),
            "--grid",
            "act_bw=8,16",
            "--calib",
            str(tmp_path / "calib.npz"),
            "--ray-address",
            f"127.0.0.1:{port}",
            "--profile-runs",
            "0",
            "-o",
            str(out),
            "--json",
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        doc = json.loads(proc.stdout)
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # `ray start --block` stops its node on SIGTERM
        head.wait(timeout=60)
    assert doc["engine"] == "ray" and doc["cluster"]["address"] == f"127.0.0.1:{port}"
    assert doc["cluster"]["nodes"] == 1 and doc["ray_version"]
    assert [r["status"] for r in doc["rows"]] == ["done", "done"], [
        r.get("error") for r in doc["rows"]
    ]
    assert [r["params"]["act_bw"] for r in doc["rows"]] == [8, 16]
    assert doc["rows"][1]["sqnr_db"] > doc["rows"][0]["sqnr_db"]
    assert all(r["fully_on_htp"] is True and "pareto" in r for r in doc["rows"])
    # the held-out split: 2 of the 10 samples evaluate, 8 calibrate
    inputs = doc["inputs"][str(model)]
    assert (inputs["calib_samples"], inputs["eval_samples"]) == (8, 2)
    assert json.loads(out.read_text())["rows"][0]["key"] == doc["rows"][0]["key"]
    deadline = time.monotonic() + 20
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _listening(port), "the head node still listens after it was stopped"
