"""Read the encodings back out of a QDQ ONNX model, and derive bias encodings.

Why: a model someone already quantized (ORT ``quantize_static``, AIMET's QDQ export) carries its
encodings in QuantizeLinear/DequantizeLinear scale and zero-point initializers. Reading them
lets the studio show, compare and re-export them, and lets tests prove that what we fed to ORT
is what ended up in the model.

Tensor names: ORT renames around the Q/DQ pairs it inserts (``w`` -> ``w_quantized``,
``t`` -> ``t_QuantizeLinear_Input`` when ``t`` is a graph output); those suffixes are removed so
the encodings carry the float model's names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.encodings.encoding import Encoding
from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.model_info import ModelView
from studio.core.errors import EncodingsError
from studio.core.model.ops import QDQ_OPS

_SUFFIXES = ("_QuantizeLinear_Input", "_quantized")
_NP_TO_QTYPE = {
    np.dtype(np.uint8): "uint8",
    np.dtype(np.int8): "int8",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.int16): "int16",
    np.dtype(np.int32): "int32",
}
_SUB_BYTE = {onnx.TensorProto.INT4: "int4", onnx.TensorProto.UINT4: "uint4"}


def _original(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _qtype(node: onnx.NodeProto, zp: np.ndarray | None) -> str:
    if zp is not None:
        if zp.dtype in _NP_TO_QTYPE:
            return _NP_TO_QTYPE[zp.dtype]
        try:  # 4-bit types come back as ml_dtypes arrays, named by their ONNX element type
            elem = onnx.helper.np_dtype_to_tensor_dtype(zp.dtype)
        except (KeyError, TypeError, ValueError):
            elem = None
        if elem in _SUB_BYTE:
            return _SUB_BYTE[elem]
        raise EncodingsError(f"node '{node.name}': zero point type {zp.dtype} is not supported")
    for attr in node.attribute:  # opset 21: output_dtype without a zero point
        if attr.name == "output_dtype" and attr.i:
            return str(onnx.helper.tensor_dtype_to_np_dtype(attr.i))
    return "uint8"


def from_qdq_model(model: Any) -> EncodingSet:
    """One Encoding per quantized tensor: the input of each QuantizeLinear, and each quantized
    initializer behind a DequantizeLinear (weights, biases)."""
    view = ModelView.of(model)
    proto = model if isinstance(model, onnx.ModelProto) else getattr(model, "proto", None)
    if proto is None:
        proto = onnx.load(str(model), load_external_data=False)
    graph = proto.graph
    consts = _constants(graph)
    consumers: dict[str, list[tuple[str, int]]] = {}
    producers = {o: n.op_type for n in graph.node for o in n.output}
    for node in graph.node:
        for index, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node.op_type, index))
    out = EncodingSet(meta={"source_format": "qdq"})
    for node in graph.node:
        if node.op_type not in QDQ_OPS or len(node.input) < 2:
            continue
        source = node.input[0]
        if node.op_type == "DequantizeLinear" and source not in consts:
            continue  # the activation's encoding comes from its QuantizeLinear
        if node.op_type == "QuantizeLinear" and producers.get(source) == "DequantizeLinear":
            continue  # a convert (8<->16 bit at a boundary) re-quantises a recorded tensor
        scale = consts.get(node.input[1])
        if scale is None:
            continue  # computed at run time (dynamic quantization): nothing to read
        zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        per_channel = scale.size > 1  # a 1-element per-axis scale is the same as per-tensor
        name = _original(source)
        kind = "activation"
        if node.op_type == "DequantizeLinear":
            uses = consumers.get(node.output[0], [])
            kind = "param"
            if any((op, i) in (("Conv", 2), ("ConvTranspose", 2), ("Gemm", 2)) for op, i in uses):
                kind = "bias"
            if view is not None and view.kind_of(name) == "bias":
                kind = "bias"  # the float model's bias, still consumed directly somewhere
            if zp is not None and zp.dtype == np.int32:
                kind = "bias"
        if name in out:
            continue  # first use wins: the tensor's own quantisation, not a later copy
        try:
            enc = Encoding.from_onnx(
                name,
                scale.reshape(-1),
                None if zp is None else zp.reshape(-1),
                _qtype(node, zp),
                axis=axis if per_channel else None,
                kind=kind,
            )
            block = next((a.i for a in node.attribute if a.name == "block_size"), 0)
            if block and scale.ndim > 1:  # opset 21 block-wise: one scale per block
                enc.block_size, enc.block_shape = int(block), [int(d) for d in scale.shape]
        except EncodingsError:
            if kind != "bias":
                raise
            continue  # a degenerate derived bias scale (e.g. an all-zero weight channel)
        out.set(enc)
    return out


def bias_encoding(
    bias: str, input_enc: Encoding, weight_enc: Encoding, bitwidth: int = 32
) -> Encoding:
    """The bias encoding QNN and ORT derive: symmetric, ``scale = input_scale * weight_scale``
    (per channel where the weight is), zero point 0."""
    if input_enc.is_float or weight_enc.is_float:
        raise EncodingsError(f"bias '{bias}': its input and weight must be int-quantized")
    if input_enc.per_channel:
        raise EncodingsError(f"bias '{bias}': the input '{input_enc.tensor}' is per-channel")
    scale = input_enc.scale[0] * np.asarray(weight_enc.scale, dtype=np.float64)
    return Encoding.from_scale_offset(
        bias,
        scale,
        -(2 ** (bitwidth - 1)),
        bitwidth,
        symmetric=True,
        axis=0 if weight_enc.per_channel else None,
        kind="bias",
    )
