"""The backend registry and an honest availability probe.

A backend is "available" only after a tiny real session was created on it with CPU fallback
disabled and run once: the QNN EP happily registers on any machine and only fails (or silently
hands everything to the CPU EP) when a session is built. The probe runs inside the worker process
(a QNN backend that crashes while loading takes only the worker down) and its result is cached per
process and per package versions. The reason shown for an unavailable backend is the real error
text, taken from the native log when the exception itself only says "fell back to CPU".
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.engine.backends import REGISTRY, BackendSpec
from studio.core.errors import BadInputError, StudioError
from studio.core.jobs.native_log import pick_reason
from studio.core.jobs.protocol import JobContext, job, job_kind

__all__ = ["REGISTRY", "BackendSpec", "BackendStatus", "pick_reason", "probe_backends"]

SCHEMA_VERSION = 1
SIMULATION_NOTE = (
    "HTP runs as a simulation on this x86-64 host: results are real quantized arithmetic and "
    "cycle counts are the simulator's, but wall-clock times are not phone times."
)


@dataclass
class BackendStatus:
    """The probe's verdict on one backend, with everything needed to explain it."""

    name: str
    label: str
    available: bool
    reason: str | None = None
    ep: str = ""
    library_path: str | None = None
    library_present: bool | None = None
    versions: dict[str, str] = field(default_factory=dict)
    simulated: bool = False
    note: str = ""
    probe_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackendStatus:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def get_spec(name: str) -> BackendSpec:
    """The registry entry for ``name``; BadInputError listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise BadInputError(
            f"unknown backend '{name}' (choose one of {', '.join(REGISTRY)})"
        ) from None


def is_x86_host() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def versions() -> dict[str, str]:
    """ORT, onnxruntime-qnn and QNN SDK versions (the probe cache is keyed by these)."""
    import onnxruntime as ort

    found = {"onnxruntime": ort.__version__}
    try:
        import onnxruntime_qnn
        from onnxruntime_qnn import build_and_package_info as info

        found["onnxruntime_qnn"] = str(onnxruntime_qnn.__version__)
        found["qnn_sdk"] = str(getattr(info, "qnn_version", "unknown"))
    except ImportError:
        found["onnxruntime_qnn"] = "not installed"
    return found


def library_path(spec: BackendSpec) -> str | None:
    if spec.library is None:
        import onnxruntime as ort

        return str(Path(ort.__file__).parent / "capi")
    try:
        import onnxruntime_qnn
    except ImportError:
        return None
    return str(Path(onnxruntime_qnn.LIB_DIR_FULL_PATH) / spec.library)


def _probe_model(folder: Path) -> Path:
    """A two-node float model (Add, Relu) every backend should accept."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "x"], ["s"], name="probe_add"),
            helper.make_node("Relu", ["s"], ["y"], name="probe_relu"),
        ],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "probe.onnx"
    onnx.save(model, str(path))
    return path


def _shorten(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def probe_backend(name: str) -> BackendStatus:
    """Create and run a tiny session on ``name`` in THIS process (the worker calls this)."""
    import numpy as np

    from studio.core.engine.sessions import make_session
    from studio.core.jobs.native_log import capture_fd2

    spec = get_spec(name)
    lib = library_path(spec)
    status = BackendStatus(
        name=spec.name,
        label=spec.label,
        available=False,
        ep=spec.ep,
        library_path=lib,
        library_present=None if lib is None else os.path.exists(lib),
        versions=versions(),
        simulated=spec.name == "htp" and is_x86_host(),
    )
    if status.simulated:
        status.note = SIMULATION_NOTE
    elif spec.name == "gpu" and is_x86_host():
        status.note = "QNN GPU needs an Adreno GPU (Snapdragon); none on this x86-64 host."
    options: dict[str, str] = {}
    if spec.name == "htp":  # the probe model is float: HTP runs it in fp16
        options = {"enable_htp_fp16_precision": "1"}  # the target soc_model is added
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="studio-probe-") as tmp:
        model = _probe_model(Path(tmp))
        log = None
        try:
            with capture_fd2(echo=False) as log:
                sess, _ = make_session(
                    model, spec.name, provider_options=options, disable_cpu_fallback=True
                )
                x = np.arange(8, dtype=np.float32).reshape(1, 8) - 4
                (y,) = sess.run(None, {"x": x})
            if not np.allclose(y, np.maximum(2 * x, 0), atol=1e-2):
                status.reason = f"probe session ran but returned wrong values: {y.tolist()}"
            else:
                status.available = True
        except StudioError as exc:
            status.reason = pick_reason(str(exc), log.ort_messages() if log else [])
        except Exception as exc:  # ORT raises plain RuntimeError subclasses
            status.reason = pick_reason(
                f"{type(exc).__name__}: {exc}", log.ort_messages() if log else []
            )
    status.probe_s = round(time.perf_counter() - started, 4)
    if spec.library and status.library_present is False and not status.available:
        status.reason = f"{spec.library} is not shipped by this onnxruntime-qnn build; " + (
            status.reason or ""
        )
    return status


_cache: dict[tuple[tuple[str, str], ...], list[BackendStatus]] = {}
_cache_lock = threading.Lock()


@job
def probe_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Try a tiny session on every registered backend (or those in ``request['backends']``)."""
    names = request.get("backends") or list(REGISTRY)
    statuses = []
    for index, name in enumerate(names):
        ctx.progress(index / len(names), f"probing {name}")
        status = probe_backend(str(name))
        ctx.log(
            f"{name}: {'available' if status.available else 'unavailable: ' + str(status.reason)}"
        )
        statuses.append(status.to_json())
    ctx.progress(1.0, "probe done")
    return {"backends": statuses}


def probe_backends(*, in_worker: bool = True, refresh: bool = False) -> list[BackendStatus]:
    """Probe every registered backend (in the worker process by default); cached per versions.

    A crash of the worker while probing marks every backend unavailable with the crash message,
    rather than failing the caller.
    """
    key = tuple(sorted(versions().items()))
    with _cache_lock:
        if not refresh and key in _cache:
            return list(_cache[key])
    if in_worker:
        from studio.core.jobs.client import run_in_worker

        try:
            result = run_in_worker(job_kind(probe_job), {}, timeout_s=120)
            statuses = [BackendStatus.from_json(s) for s in result["backends"]]
        except StudioError as exc:
            # Not cached: the worker may have been stopped from outside (a window closing
            # kills every worker), which says nothing about the backends themselves.
            return [
                BackendStatus(s.name, s.label, False, reason=f"probe failed: {_shorten(str(exc))}")
                for s in REGISTRY.values()
            ]
    else:
        statuses = [probe_backend(name) for name in REGISTRY]
    with _cache_lock:
        _cache[key] = statuses
    return list(statuses)
