"""Which tensors the QDQ build quantises, and the prepared model the editor lists them from.

Why a rule table: the build hands the prepared model to onnxruntime's QDQ quantiser, whose
per-op quantisers decide which inputs get a Q/DQ pair. A Clip's min/max, a Resize's scales or a
Pad's constant are float initializers but never quantised on their own (the op keeps them
float, or derives them from its data input); Conv/Gemm/MatMul weights and biases and the
operands of elementwise ops are. Listing every float initializer shows the user "weights" that no edit could ever affect. The rule
table itself lives in :mod:`studio.core.model.quant_rules`, shared with the encodings coverage report.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import onnx

from studio.core.calibration.collect import PREPARE_VERSION, prepare_model
from studio.core.calibration.stats import default_cache_dir
from studio.core.errors import ModelLoadError
from studio.core.model.loading import file_sha256
from studio.core.model.quant_rules import is_quantised_input

_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}


def quantised_initializers(proto: onnx.ModelProto) -> set[str]:
    """Float initializers the build quantises: used by at least one node in a quantised slot."""
    floats = {t.name for t in proto.graph.initializer if t.data_type in _FLOAT}
    out: set[str] = set()
    for node in proto.graph.node:
        for index, name in enumerate(node.input):
            if name in floats and is_quantised_input(node.op_type, index):
                out.add(name)
    return out


def quantisable_tensors(proto: onnx.ModelProto) -> list[str]:
    """Float graph inputs, float node outputs and quantised initializers, in graph order."""
    inits = {t.name for t in proto.graph.initializer}
    types = {
        vi.name: vi.type.tensor_type.elem_type
        for vi in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info)
        if vi.type.HasField("tensor_type")
    }

    def is_float(name: str) -> bool:  # unknown types count as float (missing value_info)
        elem = types.get(name)
        return elem is None or elem == 0 or elem in _FLOAT or elem == onnx.TensorProto.BFLOAT16

    names = [i.name for i in proto.graph.input if i.name not in inits and is_float(i.name)]
    names += [o for n in proto.graph.node for o in n.output if o and is_float(o)]
    names += sorted(quantised_initializers(proto))
    return list(dict.fromkeys(names))


def prepared_for_editing(
    model_path: str | Path, cache_dir: str | Path | None = None
) -> onnx.ModelProto:
    """The model the QDQ build will quantise (BatchNorm folded, weights under their original
    names), before any calibration: what the editor lists from the moment a model opens.

    Cached by the model's SHA-256 and the preparation version beside the calibration cache, so
    reopening a large model does not fold it again. Raises ModelLoadError when onnxruntime
    cannot load the model.
    """
    src = Path(model_path)
    if not src.is_file():
        raise ModelLoadError("model file not found", path=str(src))
    root = Path(cache_dir) if cache_dir else default_cache_dir().parent / "prepared"
    key = hashlib.sha256(f"{file_sha256(src)}:{PREPARE_VERSION}".encode()).hexdigest()[:32]
    final = root / f"{key}.onnx"
    if final.is_file():
        try:
            return onnx.load(str(final))
        except Exception:  # noqa: BLE001 - a broken cache entry is rebuilt below
            pass
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".prep-", suffix=".onnx", dir=root)
    os.close(fd)
    try:
        proto = prepare_model(src, tmp)
        os.replace(tmp, final)  # derived data: a rename is enough, no fsync
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return proto
