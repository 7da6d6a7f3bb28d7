"""Read the encodings a QDQ model really uses back from its Q/DQ nodes.

Why: the built model is the source of truth. ORT may widen tensors at mixed-precision
boundaries, derives bias encodings (int32, input_scale * weight_scale) and folds lone Relus into
their producers; exporting what the plan asked for would describe a different model.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.encodings import Encoding, EncodingSet
from studio.core.errors import EncodingsError

_ELEM_QTYPE = {
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT16: "uint16",
    onnx.TensorProto.INT16: "int16",
    onnx.TensorProto.UINT4: "uint4",
    onnx.TensorProto.INT4: "int4",
    onnx.TensorProto.INT32: "int32",
}


def encodings_of_qdq(proto: onnx.ModelProto) -> EncodingSet:
    """The encodings a QDQ model really uses, read from its Q/DQ nodes (the source of truth).

    Activations: the QuantizeLinear whose input is the float tensor. Weights and biases: the
    DequantizeLinear of a quantised initializer ``<name>_quantized`` (ORT's naming).
    """
    inits = {t.name: t for t in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}

    def arr(name: str) -> np.ndarray | None:
        t = inits.get(name)
        return numpy_helper.to_array(t) if t is not None else None

    out = EncodingSet(meta={"source": "qdq-model"})
    for node in proto.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        src = node.input[0]
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        scale = arr(node.input[1])
        zp = arr(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None:
            continue
        if node.op_type == "QuantizeLinear":
            if src in inits or src in out:
                continue
            prod = producers.get(src)
            if prod is not None and prod.op_type == "DequantizeLinear":
                continue  # a convert (8<->16 bit) re-quantises a tensor already recorded
            qtype = _ELEM_QTYPE.get(_np_elem(zp), "uint8") if zp is not None else "uint8"
            kind = "activation"
            # ORT renames a quantised graph output's producer tensor to "<name>_QuantizeLinear_Input"
            name = src.removesuffix("_QuantizeLinear_Input")
        else:
            if src not in inits:
                continue
            name = src[: -len("_quantized")] if src.endswith("_quantized") else src
            if name in out:
                continue
            qtype = _ELEM_QTYPE.get(inits[src].data_type, "int8")
            kind = "bias" if qtype == "int32" else "param"
        per_channel = scale.size > 1
        try:
            enc = Encoding.from_onnx(
                name,
                scale.reshape(-1),
                (zp if zp is not None else np.zeros_like(scale)).reshape(-1),
                qtype,
                axis=(axis if axis is not None else 1) if per_channel else None,
                kind=kind,
            )
        except EncodingsError:
            continue  # e.g. a degenerate bias scale: not a user-facing encoding
        out.set(enc)
    return out


def _np_elem(arr: np.ndarray) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(arr.dtype)
