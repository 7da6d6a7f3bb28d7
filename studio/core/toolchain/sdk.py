"""The QNN SDK command-line chain, used when ``QNN_SDK_ROOT`` is set (or ``--sdk DIR``).

``qnn-onnx-converter`` -> ``qnn-model-lib-generator`` -> ``qnn-context-binary-generator``, and
``qnn-net-run`` to execute a bundle, with exactly the flags documented in REFERENCE.md §4 (never
the seed document's invented ``--target_device``/``--optimization_level``/``--target_backends``).
Every tool's output is streamed into the job log line by line; each step's promised files are
checked before the next starts, and the first failure stops the chain with the tool, its exit
code and its last lines. The argv builders are pure functions so the tests can check them exactly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.errors import BackendUnavailableError, BadInputError, JobFailedError
from studio.core.jobs.protocol import JobContext

HOST_TARGET = "x86_64-linux-clang"
SDK_ENV = "QNN_SDK_ROOT"
BACKEND_LIBS = {"htp": "libQnnHtp.so", "gpu": "libQnnGpu.so", "cpu": "libQnnCpu.so"}
TOOLS = (
    "qnn-onnx-converter",
    "qnn-model-lib-generator",
    "qnn-context-binary-generator",
    "qnn-net-run",
)


@dataclass(frozen=True)
class QnnSdk:
    """A QNN SDK folder: ``bin/<host>/<tool>`` and ``lib/<host>/libQnn*.so``."""

    root: Path
    host: str = HOST_TARGET

    def tool(self, name: str) -> Path:
        path = self.root / "bin" / self.host / name
        if not path.is_file():
            raise BackendUnavailableError(f"QNN SDK tool {name} not found at {path}")
        return path

    def backend_lib(self, backend: str) -> Path:
        if backend not in BACKEND_LIBS:
            raise BadInputError(f"the QNN SDK has no backend '{backend}'")
        path = self.root / "lib" / self.host / BACKEND_LIBS[backend]
        if not path.is_file():
            raise BackendUnavailableError(f"QNN backend library not found: {path}")
        return path

    def version(self) -> str:
        """The SDK's version from its folder name or sdk.yaml, if it says."""
        for name in ("sdk.yaml", "VERSION"):
            meta = self.root / name
            if meta.is_file():
                for line in meta.read_text(errors="replace").splitlines():
                    if "version" in line.lower():
                        return line.split(":", 1)[-1].strip()
        return self.root.name


def find_sdk(explicit: str | Path | None = None) -> QnnSdk | None:
    """The SDK at ``explicit``, else ``$QNN_SDK_ROOT``, else None (embedded path)."""
    root = explicit or os.environ.get(SDK_ENV)
    if not root:
        return None
    path = Path(root)
    if not (path / "bin").is_dir():
        raise BadInputError(f"not a QNN SDK (no bin/ folder): {path}", path=str(path))
    return QnnSdk(path)


# --- argv builders (REFERENCE.md §4) ----------------------------------------------------------


def converter_argv(
    sdk: QnnSdk,
    model: Path,
    out_cpp: Path,
    *,
    input_dims: dict[str, list[int]] | None = None,
    input_list: Path | None = None,
    encodings: Path | None = None,
    act_bitwidth: int | None = None,
    weights_bitwidth: int | None = None,
    bias_bitwidth: int | None = None,
    float_bitwidth: int | None = None,
    float_fallback: bool = False,
    per_channel: bool = False,
) -> list[str]:
    argv = [str(sdk.tool("qnn-onnx-converter")), "--input_network", str(model), "-o", str(out_cpp)]
    for name, dims in (input_dims or {}).items():
        argv += ["-d", name, ",".join(str(d) for d in dims)]
    if input_list is not None:
        argv += ["--input_list", str(input_list)]
    if encodings is not None:
        argv += ["--quantization_overrides", str(encodings)]
    for flag, value, allowed in (
        ("--act_bitwidth", act_bitwidth, (8, 16)),
        ("--weights_bitwidth", weights_bitwidth, (4, 8)),
        ("--bias_bitwidth", bias_bitwidth, (32,)),
        ("--float_bitwidth", float_bitwidth, (16, 32)),
    ):
        if value is not None:
            if value not in allowed:
                raise BadInputError(f"{flag} {value}: must be one of {allowed}")
            argv += [flag, str(value)]
    if float_fallback:
        argv.append("--float_fallback")
    if per_channel:
        argv.append("--use_per_channel_quantization")
    return argv


def model_lib_argv(sdk: QnnSdk, cpp: Path, weights: Path, out_dir: Path, target: str) -> list[str]:
    return [
        str(sdk.tool("qnn-model-lib-generator")),
        "-c",
        str(cpp),
        "-b",
        str(weights),
        "-t",
        target,
        "-o",
        str(out_dir),
    ]


def context_binary_argv(
    sdk: QnnSdk,
    backend: str,
    model_lib: Path,
    binary_name: str,
    out_dir: Path,
    *,
    config_file: Path | None = None,
    profiling_level: str | None = None,
) -> list[str]:
    argv = [
        str(sdk.tool("qnn-context-binary-generator")),
        "--backend",
        str(sdk.backend_lib(backend)),
        "--model",
        str(model_lib),
        "--binary_file",
        binary_name,
        "--output_dir",
        str(out_dir),
    ]
    if config_file is not None:
        argv += ["--config_file", str(config_file)]
    if profiling_level is not None:
        argv += ["--profiling_level", profiling_level]
    return argv


def net_run_argv(
    sdk: QnnSdk,
    backend: str,
    input_list: Path,
    out_dir: Path,
    *,
    context: Path | None = None,
    model_lib: Path | None = None,
    profiling_level: str | None = None,
    perf_profile: str | None = None,
) -> list[str]:
    if (context is None) == (model_lib is None):
        raise BadInputError("qnn-net-run needs exactly one of a context binary or a model library")
    argv = [str(sdk.tool("qnn-net-run"))]
    argv += ["--retrieve_context", str(context)] if context else ["--model", str(model_lib)]
    argv += [
        "--backend",
        str(sdk.backend_lib(backend)),
        "--input_list",
        str(input_list),
        "--output_dir",
        str(out_dir),
    ]
    if profiling_level:
        argv += ["--profiling_level", profiling_level]
    if perf_profile:
        argv += ["--perf_profile", perf_profile]
    return argv


# --- running the tools ------------------------------------------------------------------------


def run_tool(argv: list[str], ctx: JobContext, expect: list[Path], cwd: Path | None = None) -> None:
    """Run one SDK tool, stream its output into the log, check its promised files exist."""
    name = Path(argv[0]).name
    ctx.log("$ " + " ".join(argv))
    tail: deque[str] = deque(maxlen=12)
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise JobFailedError(f"{name} could not be started: {exc}") from exc
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            ctx.log(f"[{name}] {line}")
            if ctx.cancelled:
                proc.kill()
                break
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ctx.check_cancelled()
    last = "\n".join(f"  {t}" for t in tail) or "  (no output)"
    if code != 0:
        raise JobFailedError(f"{name} failed with exit code {code}; last lines:\n{last}")
    missing = [str(p) for p in expect if not p.is_file()]
    if missing:
        raise JobFailedError(
            f"{name} exited 0 but did not write {', '.join(missing)}; last lines:\n{last}"
        )


def sdk_compile(
    sdk: QnnSdk,
    model: Path,
    out_dir: Path,
    *,
    backend: str = "htp",
    encodings: Path | None = None,
    input_list: Path | None = None,
    config_file: Path | None = None,
    converter_options: dict[str, Any] | None = None,
    ctx: JobContext | None = None,
    target: str = HOST_TARGET,
) -> dict[str, Any]:
    """Convert, build the model library and generate ``context_binaries/<backend>_context.bin``."""
    ctx = ctx or JobContext()
    work = out_dir / ".sdk_work"
    work.mkdir(parents=True, exist_ok=True)
    stem = "model"
    cpp, weights = work / f"{stem}.cpp", work / f"{stem}.bin"
    ctx.stage = "convert"
    ctx.progress(0.1, "qnn-onnx-converter")
    run_tool(
        converter_argv(
            sdk, model, cpp, encodings=encodings, input_list=input_list, **(converter_options or {})
        ),
        ctx,
        [cpp, weights],
    )
    ctx.stage = "model-lib"
    ctx.progress(0.4, "qnn-model-lib-generator")
    libs = work / "libs"
    lib = libs / target / f"lib{stem}.so"
    run_tool(model_lib_argv(sdk, cpp, weights, libs, target), ctx, [lib])
    device_libs = _device_model_libs(sdk, cpp, weights, libs, target, stem, out_dir, ctx)
    ctx.stage = "context-binary"
    ctx.progress(0.7, "qnn-context-binary-generator")
    ctx_dir = out_dir / "context_binaries"
    ctx_dir.mkdir(parents=True, exist_ok=True)
    binary = f"{backend}_context"
    run_tool(
        context_binary_argv(sdk, backend, lib, binary, ctx_dir, config_file=config_file),
        ctx,
        [ctx_dir / f"{binary}.bin"],
    )
    shutil.copy2(lib, out_dir / "model_optimized.so")
    shutil.rmtree(work, ignore_errors=True)
    ctx.progress(1.0, "SDK compile done")
    return {
        "context_binaries": [str(ctx_dir / f"{binary}.bin")],
        "model_library": str(out_dir / "model_optimized.so"),
        "sdk": str(sdk.root),
        "sdk_version": sdk.version(),
        "device_model_libraries": device_libs,
    }


DEVICE_TARGETS = ("aarch64-android",)
DEVICE_LIB_DIR = "model_libs"


def _device_model_libs(
    sdk: QnnSdk,
    cpp: Path,
    weights: Path,
    libs: Path,
    host_target: str,
    stem: str,
    out_dir: Path,
    ctx: JobContext,
) -> dict[str, str]:
    """Build the model library for the phone too (the seed's ``-t aarch64-android``).

    The phone's library is what ``qnn-net-run --model`` loads on the device. It needs the Android
    NDK the SDK's makefiles call; without one the host bundle is still complete, so a failure is
    reported (log and manifest) rather than fatal. Returns target -> bundle path or "failed: ...".
    """
    done: dict[str, str] = {}
    for target in DEVICE_TARGETS:
        if target == host_target:
            continue
        lib = libs / target / f"lib{stem}.so"
        try:
            run_tool(model_lib_argv(sdk, cpp, weights, libs, target), ctx, [lib])
        except JobFailedError as exc:
            first = str(exc).splitlines()[0]
            ctx.log(f"warning: no {target} model library: {first} (is ANDROID_NDK_ROOT set?)")
            done[target] = f"failed: {first}"
            continue
        dest = out_dir / DEVICE_LIB_DIR / target / f"lib{stem}.so"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, dest)
        done[target] = dest.relative_to(out_dir).as_posix()
    return done


def write_input_list(
    feeds: dict[str, np.ndarray],
    folder: Path,
    runs: int = 1,
    *,
    listing: Path | None = None,
    device_dir: str | None = None,
) -> Path:
    """Raw float32 files in ``folder`` plus ``input_list.txt`` (in ``folder``, or ``listing``):
    one line per inference, ``name:=/abs/path.raw``.

    ``device_dir`` is where the raw files will be on a phone (``adb push``): the list then names
    them there instead of on this host.
    """
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, array in feeds.items():
        raw = folder / f"{safe_file_name(name)}.raw"
        np.ascontiguousarray(array, dtype=np.float32).tofile(raw)
        where = f"{device_dir}/{raw.name}" if device_dir else str(raw.resolve())
        entries.append(f"{name}:={where}")
    listing = listing or folder / "input_list.txt"
    listing.write_text("\n".join(" ".join(entries) for _ in range(runs)) + "\n")
    return listing


def safe_file_name(name: str) -> str:
    """A tensor name as qnn-net-run's files spell it (``/conv1/Conv`` -> ``_conv1_Conv``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def read_net_run_outputs(
    out_dir: Path, outputs: list[dict[str, Any]], run: int = 0
) -> dict[str, np.ndarray]:
    """``OUT/Result_<i>/<tensor>.raw`` (float32) reshaped by the bundle's output specs."""
    result_dir = out_dir / f"Result_{run}"
    arrays = {}
    for spec in outputs:
        name = spec["name"]
        candidates = [result_dir / f"{name}.raw", result_dir / f"{safe_file_name(name)}.raw"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise JobFailedError(f"qnn-net-run wrote no output for '{name}' in {result_dir}")
        data = np.fromfile(path, dtype=np.float32)
        shape = spec.get("shape")
        if shape and all(isinstance(d, int) for d in shape) and int(np.prod(shape)) == data.size:
            data = data.reshape(shape)
        arrays[name] = data
    return arrays


def sdk_net_run(
    sdk: QnnSdk,
    backend: str,
    context: Path,
    feeds: dict[str, np.ndarray],
    outputs: list[dict[str, Any]],
    work: Path,
    ctx: JobContext | None = None,
    *,
    profiling_level: str | None = None,
) -> dict[str, np.ndarray]:
    """Run a context binary with ``qnn-net-run`` and read back its outputs."""
    ctx = ctx or JobContext()
    listing = write_input_list(feeds, work / "inputs")
    out_dir = work / "output"
    expect = [out_dir / "Result_0"]
    argv = net_run_argv(
        sdk, backend, listing, out_dir, context=context, profiling_level=profiling_level
    )
    run_tool(argv, ctx, [])
    if not expect[0].is_dir():
        raise JobFailedError(f"qnn-net-run wrote no {expect[0]}")
    return read_net_run_outputs(out_dir, outputs)
