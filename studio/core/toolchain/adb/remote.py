"""Run a bundle's context binary on a phone with ``qnn-net-run``, as the QNN SDK documents it.

Pushed into ``/data/local/tmp/npu-studio/<bundle>``: the context binary, the inputs (float32
``.raw`` files and ``input_list.txt``), and the runtime for the phone's HTP version from
``$QNN_SDK_ROOT``: ``bin/aarch64-android/qnn-net-run``, ``lib/aarch64-android/libQnnHtp.so``,
``libQnnHtpV<arch>Stub.so`` (+ ``libQnnSystem.so``, which ``--retrieve_context`` loads) and
``lib/hexagon-v<arch>/unsigned/libQnnHtpV<arch>Skel.so`` (the DSP side, found through
``ADSP_LIBRARY_PATH``). Then::

    cd DIR && LD_LIBRARY_PATH=DIR ADSP_LIBRARY_PATH="DIR;/vendor/lib/rfsa/adsp;..." \
      ./qnn-net-run --retrieve_context htp_context.bin --backend libQnnHtp.so \
      --input_list input_list.txt --output_dir output --profiling_level basic

and ``output/Result_<i>/<tensor>.raw`` plus ``output/qnn-profiling-data_0.log`` are pulled back.
Space is checked before the first push, every push is size-checked, and the exit status is read
(adb's v1 shell appends ``echo X4EXIT:$?``), so a full disk, a failed push, a crash or a kill on
the phone is an error that says which, never a missing-file puzzle afterwards.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext
from studio.core.toolchain.adb.errors import (
    DevicePushError,
    DeviceRunError,
    DeviceSdkMissingError,
)

REMOTE_ROOT = "/data/local/tmp/npu-studio"
DEVICE_TARGET = "aarch64-android"
PROFILE_LOG = "qnn-profiling-data_0.log"
_SIGNALS = {134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV", 143: "SIGTERM"}


def device_runtime(sdk_root: str | Path | None, htp_arch: int) -> list[Path]:
    """The SDK files a phone with HTP v``htp_arch`` needs; DeviceSdkMissingError naming a gap."""
    from studio.core.toolchain.sdk import SDK_ENV, find_sdk

    sdk = find_sdk(sdk_root)
    if sdk is None:
        raise DeviceSdkMissingError(
            f"running on a phone needs the QNN SDK's device libraries: set {SDK_ENV} (or --sdk) "
            "to the Qualcomm AI Engine Direct SDK folder"
        )
    arch = int(htp_arch)
    root = sdk.root
    needed = [
        root / "bin" / DEVICE_TARGET / "qnn-net-run",
        root / "lib" / DEVICE_TARGET / "libQnnHtp.so",
        root / "lib" / DEVICE_TARGET / f"libQnnHtpV{arch}Stub.so",
        root / "lib" / f"hexagon-v{arch}" / "unsigned" / f"libQnnHtpV{arch}Skel.so",
    ]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DeviceSdkMissingError(
            f"the QNN SDK at {root} lacks the HTP v{arch} device files: {', '.join(missing)} "
            "(an SDK for this HTP version is needed)"
        )
    optional = [root / "lib" / DEVICE_TARGET / "libQnnSystem.so"]
    return needed + [p for p in optional if p.is_file()]


def _free_kb(device: Any, folder: str) -> int | None:
    text = str(device.shell(f"df {folder}", timeout=20))
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[3].isdigit():
            return int(parts[3])
    return None


def _push(device: Any, local: Path, remote: str, serial: str) -> None:
    from adbutils import AdbError

    try:
        device.sync.push(str(local), remote, mode=0o755, check=True)
    except (AdbError, OSError) as exc:
        raise DevicePushError(
            f"pushing {local.name} to {serial}:{remote} failed ({exc or type(exc).__name__}); "
            f"is {REMOTE_ROOT} writable and is there space (`adb shell df /data/local/tmp`)?"
        ) from exc


def _pull(device: Any, remote: str, local: Path, serial: str) -> bool:
    from adbutils import AdbError

    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        if device.sync.stat(remote).mtime is None:
            return False
        device.sync.pull_file(remote, local)
    except (AdbError, OSError) as exc:
        raise DeviceRunError(f"pulling {serial}:{remote} failed: {exc}") from exc
    return True


def run_context_on_phone(
    device: Any,
    serial: str,
    label: str,
    context_binary: Path,
    feeds: dict[str, np.ndarray],
    outputs: list[dict[str, Any]],
    runtime: list[Path],
    work: Path,
    *,
    tag: str,
    profiling_level: str = "basic",
    timeout_s: float = 600,
    ctx: JobContext | None = None,
    on_sample: Any = None,
) -> dict[str, Any]:
    """Push, run, pull. Returns outputs (arrays), the pulled profile log and the monitor's series."""
    from studio.core.toolchain.adb.monitor import DeviceMonitor
    from studio.core.toolchain.sdk import read_net_run_outputs, safe_file_name, write_input_list

    ctx = ctx or JobContext()
    remote = f"{REMOTE_ROOT}/{tag}"
    inputs = work / "inputs"
    listing = write_input_list(
        feeds, inputs, listing=work / "input_list.txt", device_dir=f"{remote}/inputs"
    )
    files = [(p, f"{remote}/{p.name}") for p in runtime]
    files.append((context_binary, f"{remote}/{context_binary.name}"))
    files.append((listing, f"{remote}/input_list.txt"))
    files += [(p, f"{remote}/inputs/{p.name}") for p in sorted(inputs.iterdir())]

    ctx.stage = "push"
    need_kb = sum(p.stat().st_size for p, _ in files) // 1024 + 1
    free = _free_kb(device, "/data/local/tmp")
    if free is not None and free < need_kb:
        raise DevicePushError(
            f"{label}: not enough space in /data/local/tmp: the run needs {need_kb / 1024:.1f} MB, "
            f"{free / 1024:.1f} MB are free (the disk is full); free some space on the phone"
        )
    device.shell(f"rm -rf {remote}/output && mkdir -p {remote}/inputs", timeout=30)
    for index, (local, target) in enumerate(files):
        ctx.check_cancelled()
        ctx.progress(0.1 + 0.4 * index / len(files), f"pushing {local.name}")
        _push(device, local, target, serial)

    ctx.stage = "run"
    ctx.progress(0.55, f"qnn-net-run on {label}")
    adsp = f'"{remote};/vendor/lib/rfsa/adsp;/system/lib/rfsa/adsp;/dsp"'
    command = (
        f"cd {remote} && LD_LIBRARY_PATH={remote} ADSP_LIBRARY_PATH={adsp} ./qnn-net-run "
        f"--retrieve_context {context_binary.name} --backend libQnnHtp.so "
        f"--input_list input_list.txt --output_dir output --profiling_level {profiling_level}"
    )
    ctx.log(f"$ adb -s {serial} shell '{command}'")
    from adbutils import AdbError, AdbTimeout

    monitor = DeviceMonitor(device, on_sample=on_sample)
    try:
        with monitor:
            result = device.shell2(command, timeout=timeout_s)
    except AdbTimeout as exc:
        raise DeviceRunError(
            f"qnn-net-run on {label} gave no answer in {timeout_s:g} s; it may still run there"
        ) from exc
    except AdbError as exc:
        raise DeviceRunError(f"the adb connection to {label} failed during the run: {exc}") from exc
    output_text = str(result.output)
    for line in output_text.splitlines():
        ctx.log(f"[qnn-net-run] {line}")
    tail = "\n".join(f"  {t}" for t in output_text.splitlines()[-12:]) or "  (no output)"
    code = int(result.returncode)
    if code in _SIGNALS:
        raise DeviceRunError(
            f"qnn-net-run was killed on {label} ({_SIGNALS[code]}, exit {code}): the low-memory "
            f"killer, a crash or a user stopped it; last lines:\n{tail}"
        )
    if code != 0:
        raise DeviceRunError(
            f"qnn-net-run failed on {label} with exit code {code}; last lines:\n{tail}"
        )

    ctx.stage = "pull"
    ctx.progress(0.85, "pulling outputs and the profile")
    local_out = work / "output"
    for spec in outputs:
        for name in dict.fromkeys([spec["name"], safe_file_name(spec["name"])]):
            if _pull(
                device,
                f"{remote}/output/Result_0/{name}.raw",
                local_out / "Result_0" / f"{name}.raw",
                serial,
            ):
                break
    arrays = read_net_run_outputs(local_out, outputs)
    log = local_out / PROFILE_LOG
    has_log = _pull(device, f"{remote}/output/{PROFILE_LOG}", log, serial)
    return {
        "outputs": arrays,
        "profile_log": str(log) if has_log else None,
        "monitor": monitor.to_json(),
        "command": command,
        "remote_dir": remote,
        "stdout_tail": output_text.splitlines()[-12:],
    }


def viewer_text(sdk_root: str | Path | None, log: str | None, ctx: JobContext) -> str | None:
    """``qnn-profile-viewer --input_log LOG`` on this host (the log is binary), or None."""
    import subprocess

    from studio.core.toolchain.sdk import find_sdk

    sdk = find_sdk(sdk_root)
    if sdk is None or log is None:
        return None
    tool = sdk.root / "bin" / sdk.host / "qnn-profile-viewer"
    if not tool.is_file():
        ctx.log(f"warning: {tool} not found: the device profile stays undecoded at {log}")
        return None
    proc = subprocess.run(
        [str(tool), "--input_log", log],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )
    if proc.returncode != 0:
        ctx.log(
            f"warning: qnn-profile-viewer failed (exit {proc.returncode}): {proc.stdout[-300:]}"
        )
        return None
    return proc.stdout


def bundle_tag(bundle: Any) -> str:
    """A folder name per bundle content, so two bundles never share files on the phone."""
    sha = (bundle.manifest.get("files", {}).get("context_binaries/htp_context.bin") or {}).get(
        "sha256", ""
    )
    if not sha:
        raise BadInputError(
            "the bundle has no context_binaries/htp_context.bin", path=str(bundle.root)
        )
    return f"{bundle.root.name[:32]}-{sha[:12]}"


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="studio-adb-")
