"""Session factories for the backends: QNN HTP/GPU (onnxruntime-qnn plugin EP) and ORT CPU.

The QNN EP must be opened the plugin way (register the library, pick its EP devices, add them to the
session options). Passing ``providers=[("QNNExecutionProvider", ...)]`` silently runs on CPU, so
every session built here records which providers it really got, and ``disable_cpu_fallback``
proves full offload by making ORT refuse to place any node on the CPU EP.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from studio.core.engine.backends import REGISTRY
from studio.core.errors import BackendUnavailableError, BadInputError

QNN_EP = "QNNExecutionProvider"
CPU_EP = "CPUExecutionProvider"
BACKENDS = tuple(REGISTRY)
# The QNN backend_type behind each QNN backend name ("qnn-cpu" is QNN's own CPU backend, as opposed
# to "cpu", ORT's CPU EP).
QNN_BACKEND_TYPE = {n: s.qnn_backend_type for n, s in REGISTRY.items() if s.qnn_backend_type}
GRAPH_OPT_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# The HTP every session targets unless its options name one: the studio's default device
# (studio.core.devices.catalogue.DEFAULT_DEVICE; a test keeps the two equal). ``--device`` and the
# GUI's target change it through set_htp_target, which also reaches worker processes (environment).
TARGET_ENV = "NPU_STUDIO_HTP_TARGET"
DEFAULT_HTP_TARGET = {"device": "Samsung Galaxy S24", "soc_model": "57", "htp_arch": "75"}

_register_lock = threading.Lock()
_qnn_registered: bool | None = None
_qnn_register_error: str | None = None


def set_htp_target(device: str, soc_model: int, htp_arch: int) -> None:
    """Make every later HTP session (this process and the workers it starts) target this device."""
    os.environ[TARGET_ENV] = f"{device}|{int(soc_model)}|{int(htp_arch)}"


def htp_target() -> dict[str, str]:
    """The current target: ``{"device", "soc_model", "htp_arch"}`` (strings, as QNN options are)."""
    raw = os.environ.get(TARGET_ENV, "")
    parts = raw.split("|")
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return {"device": parts[0], "soc_model": parts[1], "htp_arch": parts[2]}
    return dict(DEFAULT_HTP_TARGET)


def apply_htp_target(opts: dict[str, str]) -> dict[str, str]:
    """Add the target's soc_model/htp_arch to HTP provider options that name neither."""
    if "soc_model" not in opts and "htp_arch" not in opts:
        target = htp_target()
        opts["soc_model"] = target["soc_model"]
        opts["htp_arch"] = target["htp_arch"]
    return opts


def qnn_library_path() -> str:
    """Path of the QNN EP shared library shipped by onnxruntime-qnn (raises when not installed)."""
    try:
        import onnxruntime_qnn
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise BackendUnavailableError(f"onnxruntime-qnn is not installed: {exc}") from exc
    return str(onnxruntime_qnn.get_library_path())


def register_qnn() -> None:
    """Register the QNN plugin EP with ORT once per process; raise BackendUnavailableError if not."""
    global _qnn_registered, _qnn_register_error
    with _register_lock:
        if _qnn_registered is None:
            try:
                ort.register_execution_provider_library(QNN_EP, qnn_library_path())
                _qnn_registered = True
            except Exception as exc:  # ORT raises plain RuntimeError/Fail here
                _qnn_registered = False
                _qnn_register_error = str(exc)
        if not _qnn_registered:
            raise BackendUnavailableError(f"QNN EP could not be registered: {_qnn_register_error}")


def qnn_ep_devices() -> list[Any]:
    """The OrtEpDevice objects of the QNN plugin (empty when it exposes none)."""
    register_qnn()
    return [d for d in ort.get_ep_devices() if d.ep_name == QNN_EP]


@dataclass
class SessionInfo:
    """What a session really is: requested backend, providers ORT placed it on, options used."""

    backend: str
    providers: list[str]
    provider_options: dict[str, str] = field(default_factory=dict)
    session_config: dict[str, str] = field(default_factory=dict)
    cpu_fallback_disabled: bool = False
    # Nodes ORT gave to QNN (-1: unknown). 0 with fallback allowed means the backend ran nothing:
    # QNN GPU without an Adreno stays listed as a provider while every node runs on the CPU.
    qnn_nodes: int = 0


def simulation_session(model: bytes | str, *, spin: bool = True) -> ort.InferenceSession:
    """A CPU session that simulates a QDQ model's integer arithmetic the same way on every host.

    ORT's CPU EP normally fuses DequantizeLinear -> op -> QuantizeLinear into its own int8 kernels
    (QLinearConv, QGemm). On x86-64 without VNNI those multiply uint8 by int8 through 16-bit
    intermediate sums that saturate (vpmaddubsw), so the same QDQ model scored 12 dB on one host
    and 28 dB on another, and neither is HTP, which accumulates in 32 bits. With the fusion off
    the graph runs as written: exactly quantised values, float arithmetic on them, requantised at
    every Q node - the quantisation every accuracy figure of the studio is meant to describe.
    Float models are unaffected (they have no QDQ pairs to fuse).
    """
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not spin:  # sessions taking turns: idle pool threads spinning would steal the other's cores
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(model, so, providers=[CPU_EP])


def make_session(
    model_path: str | Path,
    backend: str = "cpu",
    *,
    provider_options: dict[str, Any] | None = None,
    session_config: dict[str, Any] | None = None,
    disable_cpu_fallback: bool = False,
    intra_op_num_threads: int | None = None,
    enable_profiling: bool = False,
    profile_prefix: str | None = None,
    graph_optimization_level: str | None = None,
    log_severity_level: int = 3,
) -> tuple[ort.InferenceSession, SessionInfo]:
    """Create an ORT session on ``backend`` ('htp', 'gpu' or 'cpu').

    For QNN backends ``disable_cpu_fallback=True`` makes creation fail unless every node is
    offloaded: that is the only way a session is called "on HTP" without qualification.
    """
    if backend not in BACKENDS:
        raise BadInputError(f"unknown backend '{backend}' (choose one of {', '.join(BACKENDS)})")
    so = ort.SessionOptions()
    so.log_severity_level = int(log_severity_level)
    if log_severity_level == 0:
        so.log_verbosity_level = 0
    if graph_optimization_level is not None:
        if graph_optimization_level not in GRAPH_OPT_LEVELS:
            raise BadInputError(
                f"unknown graph_optimization_level '{graph_optimization_level}' "
                f"(choose one of {', '.join(GRAPH_OPT_LEVELS)})"
            )
        so.graph_optimization_level = GRAPH_OPT_LEVELS[graph_optimization_level]
    if intra_op_num_threads:
        so.intra_op_num_threads = int(intra_op_num_threads)
    if enable_profiling:
        so.enable_profiling = True
        if profile_prefix:
            so.profile_file_prefix = profile_prefix
    config = {str(k): str(v) for k, v in (session_config or {}).items()}
    if backend != "cpu" and disable_cpu_fallback:
        config["session.disable_cpu_ep_fallback"] = "1"
    if backend != "cpu":
        # Lets us count the nodes QNN really took: a backend that fails to initialise (QNN GPU
        # without an Adreno) still leaves the EP listed while every node runs on the CPU.
        config.setdefault("session.record_ep_graph_assignment_info", "1")
    for key, value in config.items():
        so.add_session_config_entry(key, value)
    opts = {str(k): str(v) for k, v in (provider_options or {}).items()}
    if backend == "cpu":
        sess = ort.InferenceSession(str(model_path), sess_options=so, providers=[CPU_EP])
    else:
        devices = qnn_ep_devices()
        if not devices:
            raise BackendUnavailableError("the QNN EP exposes no devices on this machine")
        opts.setdefault("backend_type", QNN_BACKEND_TYPE[backend])
        if backend == "htp":
            apply_htp_target(opts)
        so.add_provider_for_devices(devices, opts)
        from studio.core.jobs.native_log import capture_fd2, pick_reason

        log = None
        try:
            # The QNN EP logs the cause (e.g. "QNN_BACKEND_ERROR_CANNOT_INITIALIZE") while the
            # exception only states the symptom ("nodes assigned to the CPU EP"): keep the cause.
            with capture_fd2(echo=True) as log:
                sess = ort.InferenceSession(str(model_path), sess_options=so)
        except Exception as exc:
            reason = pick_reason(str(exc), log.ort_messages() if log else [], limit=400)
            raise BackendUnavailableError(
                f"QNN {backend.upper()} session for {model_path} failed: {reason}"
            ) from exc
        if QNN_EP not in sess.get_providers():
            raise BackendUnavailableError(
                f"QNN {backend.upper()} was not used: ORT fell back to CPU"
            )
    info = SessionInfo(
        backend=backend,
        providers=list(sess.get_providers()),
        provider_options=opts,
        session_config=config,
        cpu_fallback_disabled=backend != "cpu" and disable_cpu_fallback,
        qnn_nodes=qnn_node_count(sess) if backend != "cpu" else 0,
    )
    return sess, info


def qnn_node_count(sess: ort.InferenceSession) -> int:
    """How many nodes ORT assigned to the QNN EP (needs record_ep_graph_assignment_info)."""
    try:
        assignment = sess.get_provider_graph_assignment_info()
    except Exception:  # option not set or older ORT: fall back to the provider list alone
        return -1
    return sum(len(list(sub.get_nodes())) for sub in assignment if sub.ep_name == QNN_EP)


_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int16)": np.int16,
    "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def random_inputs(
    sess: ort.InferenceSession, fixed_shapes: dict[str, list[int]] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random inputs with the session's shapes and dtypes; dynamic dims need ``fixed_shapes``."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for inp in sess.get_inputs():
        shape = (fixed_shapes or {}).get(inp.name) or inp.shape
        if any(not isinstance(d, int) or d <= 0 for d in shape):
            raise BadInputError(
                f"input '{inp.name}' has dynamic shape {inp.shape}: fix it with "
                f"--input-shape {inp.name}=..."
            )
        dtype = _ORT_TO_NUMPY.get(inp.type)
        if dtype is None:
            raise BadInputError(f"input '{inp.name}' has unsupported type {inp.type}")
        feeds[inp.name] = random_array(rng, shape, dtype)
    return feeds


def random_array(rng: np.random.Generator, shape: Any, dtype: Any) -> np.ndarray:
    """One random input: floats in [0, 1), booleans, or small integers (valid as indices).

    The one random-input rule: the profiler, the partitioned run and calibration's ``random:N``
    all feed models through it, so a model sees the same kind of data everywhere.
    """
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape, dtype=np.float32).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(0, 10, size=shape).astype(dtype)


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
