"""``npu-studio doctor``: the seed's installation check, item by item, each with what to do.

The seed checks ``echo $QNN_SDK_ROOT``, ``ls $QNN_SDK_ROOT/bin/qnn-*``, ``ldd`` of the backend
libraries and ``qnn-* --help``. We do the same for both places QNN lives here (the SDK, when there
is one, and the libraries onnxruntime-qnn ships), plus the versions a bug report needs (Python, Qt,
ORT and the QNN it was built with) and the adb server the device features use. Nothing here
changes the machine: it runs ``--help``, ``ldd`` and one socket connect.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OK, MISSING, WARN, INFO = "ok", "missing", "warning", "info"


@dataclass
class Check:
    """One line of the report: what was checked, what was found, what to do about it."""

    group: str
    name: str
    status: str  # ok | missing | warning | info
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _run(argv: list[str], timeout_s: float = 20) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, errors="replace", timeout=timeout_s
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _ldd(lib: Path, group: str) -> Check:
    if not lib.is_file():
        return Check(group, f"ldd {lib.name}", MISSING, f"{lib} not found", "reinstall it")
    if shutil.which("ldd") is None:
        return Check(
            group, f"ldd {lib.name}", WARN, "ldd is not installed", "apt-get install libc-bin"
        )
    code, out = _run(["ldd", str(lib)])
    missing = [line.split("=>")[0].strip() for line in out.splitlines() if "not found" in line]
    if code not in (0, None) and not missing and "not a dynamic executable" in out:
        return Check(group, f"ldd {lib.name}", WARN, out.splitlines()[0], "")
    if missing:
        return Check(
            group,
            f"ldd {lib.name}",
            MISSING,
            f"{lib}: unresolved {', '.join(missing)}",
            "install the missing shared libraries or add their folder to LD_LIBRARY_PATH",
        )
    return Check(group, f"ldd {lib.name}", OK, f"{lib}: all dependencies resolve")


def _sdk_checks() -> list[Check]:
    from studio.core.toolchain.sdk import BACKEND_LIBS, HOST_TARGET, SDK_ENV, TOOLS

    group = "QNN SDK"
    root = os.environ.get(SDK_ENV)
    if not root:
        return [
            Check(
                group,
                SDK_ENV,
                INFO,
                "not set: compile uses onnxruntime-qnn's EPContext (no SDK needed); on-device "
                "runs and model libraries need the SDK",
                f"install the Qualcomm AI Engine Direct (QAIRT) SDK and export {SDK_ENV}=<its folder>",
            )
        ]
    sdk = Path(root)
    checks = [
        Check(
            group,
            SDK_ENV,
            OK if sdk.is_dir() else MISSING,
            root,
            "" if sdk.is_dir() else f"{root} does not exist: fix {SDK_ENV}",
        )
    ]
    if not sdk.is_dir():
        return checks
    for tool in (*TOOLS, "qnn-profile-viewer"):
        path = sdk / "bin" / HOST_TARGET / tool
        if not path.is_file():
            checks.append(
                Check(
                    group,
                    tool,
                    MISSING,
                    f"{path} not found",
                    "the SDK is incomplete or for another host: reinstall it",
                )
            )
            continue
        code, out = _run([str(path), "--help"])
        first = out.splitlines()[0] if out else "(no output)"
        checks.append(
            Check(
                group,
                tool,
                OK if code == 0 else MISSING,
                f"{path} --help: exit {code}; {first}",
                ""
                if code == 0
                else "run it by hand to see why it fails (Python deps? "
                "`source $QNN_SDK_ROOT/bin/envsetup.sh`)",
            )
        )
    for lib in ("libQnn.so", *BACKEND_LIBS.values()):
        path = sdk / "lib" / HOST_TARGET / lib
        if lib == "libQnn.so" and not path.is_file():
            continue  # not every SDK ships the umbrella library
        checks.append(_ldd(path, group))
    android = sdk / "bin" / "aarch64-android" / "qnn-net-run"
    checks.append(
        Check(
            group,
            "device qnn-net-run",
            OK if android.is_file() else MISSING,
            str(android),
            ""
            if android.is_file()
            else "the SDK has no aarch64-android binaries: on-device runs need them",
        )
    )
    return checks


def _ort_checks() -> list[Check]:
    from studio.core.engine.registry import versions

    group = "onnxruntime-qnn"
    found = versions()
    checks = [Check(group, "onnxruntime", OK, found.get("onnxruntime", "?"))]
    qnn = found.get("onnxruntime_qnn", "not installed")
    if qnn == "not installed":
        checks.append(
            Check(
                group,
                "onnxruntime-qnn",
                MISSING,
                "not installed",
                "pip install onnxruntime-qnn (x86-64 Linux or Windows)",
            )
        )
        return checks
    checks.append(Check(group, "onnxruntime-qnn", OK, qnn))
    checks.append(Check(group, "QNN version (built with)", INFO, found.get("qnn_sdk", "unknown")))
    import onnxruntime_qnn

    lib_dir = Path(onnxruntime_qnn.LIB_DIR_FULL_PATH)
    for lib in ("libQnnHtp.so", "libQnnSystem.so", "libonnxruntime_providers_qnn.so"):
        checks.append(_ldd(lib_dir / lib, group))
    return checks


def _env_checks() -> list[Check]:
    group = "environment"
    names = (
        "QNN_SDK_ROOT",
        "LD_LIBRARY_PATH",
        "ADSP_LIBRARY_PATH",
        "ANDROID_ADB_SERVER_PORT",
        "ANDROID_SERIAL",
        "NPU_STUDIO_CACHE_DIR",
        "QT_QPA_PLATFORM",
    )
    return [Check(group, n, INFO, os.environ.get(n, "(not set)")) for n in names]


def _platform_checks() -> list[Check]:
    group = "platform"
    checks = [
        Check(
            group, "Python", OK, f"{platform.python_version()} ({platform.python_implementation()})"
        ),
        Check(
            group,
            "machine",
            INFO,
            f"{platform.system()} {platform.machine()}"
            + (
                "; HTP runs in the x86-64 emulator"
                if platform.machine() in ("x86_64", "AMD64")
                else ""
            ),
        ),
    ]
    try:
        from importlib.metadata import version

        qt = version("PySide6")
        bad = qt.startswith("6.12.")
        checks.append(
            Check(
                group,
                "PySide6 (Qt)",
                WARN if bad else OK,
                qt,
                "PySide6 6.12.0 leaks references on Python 3.11: pip install "
                "'PySide6>=6.11.3,<6.12'"
                if bad
                else "",
            )
        )
    except Exception:  # noqa: BLE001 - not installed
        checks.append(
            Check(
                group,
                "PySide6 (Qt)",
                MISSING,
                "not installed",
                "pip install 'PySide6>=6.11.3,<6.12' for the GUI (the CLI works without)",
            )
        )
    return checks


def _adb_checks() -> list[Check]:
    from studio.core.toolchain.adb.connection import is_listening, server_address

    group = "adb"
    checks = []
    try:
        import adbutils

        checks.append(Check(group, "adbutils", OK, str(adbutils.__version__)))
    except ImportError:
        return [Check(group, "adbutils", MISSING, "not installed", "pip install adbutils")]
    adb = shutil.which("adb")
    checks.append(
        Check(
            group,
            "adb binary",
            OK if adb else INFO,
            adb or "not on PATH",
            ""
            if adb
            else "install Android platform-tools to start a server "
            "(`adb start-server`); the studio only talks to a running one",
        )
    )
    try:
        host, port = server_address()
    except Exception as exc:  # noqa: BLE001 - a bad port value is reported as such
        return [
            *checks,
            Check(group, "adb server", MISSING, str(exc), "fix ANDROID_ADB_SERVER_PORT"),
        ]
    up = is_listening(host, port)
    checks.append(
        Check(
            group,
            "adb server",
            OK if up else WARN,
            f"{host}:{port} " + ("listening" if up else "nothing listening"),
            "" if up else "run `adb start-server` (npu-studio never starts one)",
        )
    )
    return checks


def run_doctor() -> list[Check]:
    """Every check, in the report's order. Never raises: a failed check is a line."""
    checks: list[Check] = []
    for part in (_platform_checks, _ort_checks, _sdk_checks, _adb_checks, _env_checks):
        try:
            checks.extend(part())
        except Exception as exc:  # noqa: BLE001 - one broken probe must not hide the others
            checks.append(
                Check(part.__name__.strip("_").replace("_checks", ""), "check", WARN, str(exc))
            )
    return checks
