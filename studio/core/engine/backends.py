"""The one list of backends the studio knows: name, label, execution provider, QNN library.

Plain data, below everything else in the engine: the probe (:mod:`.registry`), the session
factory (:mod:`.sessions`), the CLI's help and the GUI's backend lists all read it. A new backend
is one record here (and its session options in :mod:`.sessions`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackendSpec:
    """A backend the studio knows: its name, what it runs on, and where its library lives."""

    name: str
    label: str
    ep: str
    qnn_backend_type: str | None  # None for ORT's own CPU EP
    library: str | None  # file name in the onnxruntime-qnn package
    description: str


REGISTRY: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "htp",
            "QNN HTP (NPU)",
            "QNNExecutionProvider",
            "htp",
            "libQnnHtp.so",
            "Hexagon Tensor Processor through onnxruntime-qnn; quantized (QDQ) or fp16 models",
        ),
        BackendSpec(
            "gpu",
            "QNN GPU (Adreno)",
            "QNNExecutionProvider",
            "gpu",
            "libQnnGpu.so",
            "Adreno GPU through onnxruntime-qnn; needs a Snapdragon device",
        ),
        BackendSpec(
            "cpu",
            "ORT CPU",
            "CPUExecutionProvider",
            None,
            None,
            "ONNX Runtime's CPU execution provider (float reference, QDQ simulation)",
        ),
        BackendSpec(
            "qnn-cpu",
            "QNN CPU",
            "QNNExecutionProvider",
            "cpu",
            "libQnnCpu.so",
            "QNN's reference CPU backend (only when the onnxruntime-qnn build ships it)",
        ),
    )
}
