"""`npu-studio doctor` against a fake QNN SDK (scripts that answer --help) and a fake adb server."""

from __future__ import annotations

import ctypes.util
import json
import shutil
import sys
from pathlib import Path

import pytest

from studio.cli import main
from studio.core.toolchain.doctor import run_doctor
from tests.fake_adb import FakeAdbServer, free_port

TOOL = "#!{python}\nimport sys\nprint('usage: {name} [options]')\nsys.exit({code})\n"


@pytest.fixture
def sdk(tmp_path, monkeypatch):
    """A QNN SDK folder: host tools (one broken), a real HTP library, no CPU library."""
    import onnxruntime_qnn

    root = tmp_path / "qairt"
    bin_dir = root / "bin" / "x86_64-linux-clang"
    bin_dir.mkdir(parents=True)
    for name in (
        "qnn-onnx-converter",
        "qnn-model-lib-generator",
        "qnn-context-binary-generator",
        "qnn-net-run",
        "qnn-profile-viewer",
    ):
        tool = bin_dir / name
        code = 1 if name == "qnn-onnx-converter" else 0  # e.g. its Python deps are missing
        tool.write_text(TOOL.format(python=sys.executable, name=name, code=code))
        tool.chmod(0o755)
    lib = root / "lib" / "x86_64-linux-clang"
    lib.mkdir(parents=True)
    # a library whose dependencies resolve (the C maths library stands in for libQnnHtp.so) ...
    shutil.copy(_libm(), lib / "libQnnHtp.so")
    # ... and the real libQnnHtp.so moved away from the folder its RPATH ($ORIGIN/..) expects
    real = f"{onnxruntime_qnn.LIB_DIR_FULL_PATH}/libQnnHtp.so"
    (lib / "libQnnGpu.so").symlink_to(real)
    monkeypatch.setenv("QNN_SDK_ROOT", str(root))
    return root


def _libm() -> Path:
    name = ctypes.util.find_library("m") or "libm.so.6"
    for folder in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    pytest.skip("no libm found to stand in for a backend library")


def _by_name(checks):
    return {(c.group, c.name): c for c in checks}


def test_doctor_reports_each_tool_library_and_what_to_do(sdk, monkeypatch):
    with FakeAdbServer([]) as server:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        checks = _by_name(run_doctor())
    assert checks[("QNN SDK", "qnn-net-run")].status == "ok"
    assert "usage: qnn-net-run" in checks[("QNN SDK", "qnn-net-run")].detail
    broken = checks[("QNN SDK", "qnn-onnx-converter")]
    assert broken.status == "missing" and "exit 1" in broken.detail and broken.fix
    assert checks[("QNN SDK", "ldd libQnnHtp.so")].status == "ok"
    moved = checks[("QNN SDK", "ldd libQnnGpu.so")]
    assert moved.status == "missing" and "unresolved libc++" in moved.detail
    assert "LD_LIBRARY_PATH" in moved.fix
    cpu = checks[("QNN SDK", "ldd libQnnCpu.so")]
    assert cpu.status == "missing" and "not found" in cpu.detail
    device = checks[("QNN SDK", "device qnn-net-run")]
    assert device.status == "missing" and "aarch64-android" in device.fix
    assert checks[("adb", "adb server")].status == "ok"
    assert checks[("onnxruntime-qnn", "QNN version (built with)")].detail[0].isdigit()
    assert checks[("environment", "QNN_SDK_ROOT")].detail == str(sdk)
    assert checks[("platform", "PySide6 (Qt)")].detail.startswith("6.11")


def test_doctor_cli_prints_fixes_and_exits_3_when_something_is_missing(sdk, monkeypatch, capsys):
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(free_port()))
    assert main(["doctor"]) == 3
    out = capsys.readouterr().out
    assert "[MISS] qnn-onnx-converter" in out and "-> " in out
    assert "nothing listening" in out and "adb start-server" in out
    assert main(["doctor", "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["missing"] >= 2 and all("fix" in c for c in data["checks"])


def test_doctor_without_an_sdk_says_the_embedded_path_needs_none(monkeypatch):
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    check = _by_name(run_doctor())[("QNN SDK", "QNN_SDK_ROOT")]
    assert check.status == "info" and "EPContext" in check.detail and "QNN_SDK_ROOT" in check.fix
