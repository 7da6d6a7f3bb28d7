"""`npu-studio selfcheck --gui`: the packaged app's smoke test, run here from source so a broken
window hook fails `make test` before it fails the package (real window offscreen, real HTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _selfcheck(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", NPU_STUDIO_DATA_DIR=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-m", "studio", "selfcheck", "--gui", "--json", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


@pytest.mark.htp
def test_selfcheck_gui_opens_the_demo_and_runs_cpu_and_htp(tmp_path):
    done = _selfcheck(tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["window"]["ok"] and report["window"]["nodes"] > 0
    assert report["window"]["error"] is None
    assert report["cpu"]["ok"] and report["htp"]["ok"]
    assert report["htp"]["simulated"]


def test_selfcheck_gui_reports_a_model_the_window_cannot_open(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    done = _selfcheck("--model", str(broken), tmp_path=tmp_path)
    assert done.returncode != 0
    report = json.loads(done.stdout)  # the report is printed even when the checks fail
    assert report["window"]["ok"] is False and report["window"]["nodes"] == 0
    assert (
        "broken.onnx" in report["window"]["error"]
        and "not an ONNX model" in report["window"]["error"]
    )
    assert not report["cpu"]["ok"] and not report["htp"]["ok"]
