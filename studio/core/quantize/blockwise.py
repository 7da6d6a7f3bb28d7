"""Block-wise INT4 weights (QNN's BQ and LPBQ): one scale per block of ``block_size`` input
channels of each output channel, written as an opset-21 ``DequantizeLinear`` with
``block_size``, which onnxruntime-qnn hands to HTP as a block-quantised weight.

Why a rewrite after the build: onnxruntime's QDQ quantiser writes per-channel INT4 weights but
no block-wise ones; the builder writes the per-channel model and this step replaces the chosen
weights' codes and scales from the float weights (symmetric, zero point 0, as HTP requires).

What HTP takes, measured with onnxruntime-qnn 2.7 (``bench/lpbq_probe.py``: one session per
catalogue architecture, CPU fallback disabled, block 32 over 64 input channels):

- per-channel INT4 Conv (3x3 and 1x1), Gemm and MatMul weights, 8-bit activations: every
  architecture, v65 to v85 (with 16-bit activations Gemm/MatMul everywhere, Conv from v68);
- block-wise INT4 with 8-bit activations: refused everywhere ("BQ Gemm activation must be
  INT16-quantized for the BW_FLOAT_BLOCK kernel"; Conv: "Failed to add BQ Conv node");
- block-wise INT4 with 16-bit activations: 1x1 Conv, Gemm and MatMul from v69 (QNN's float
  block-scale path); with the EP option ``enable_block_quant_weight_optimization=1`` QNN turns
  it into LPBQ (per-block 4-bit scales under a per-channel scale, "BLOCKWISE_EXPANSION"), which
  v68 also takes for 1x1 Conv and MatMul;
- a Conv with a kernel larger than 1x1: refused on every architecture, either option ("Block
  quantization scale tensor shape product must equal number of scales": the EP counts one
  scale per output channel and block, while ONNX's block-wise scale has the kernel's spatial
  dimensions too). This is what blocks LPBQ for k x k convolutions in a QDQ model here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCK_OPS = ("Conv", "Gemm", "MatMul")
BLOCKWISE_FROM_ARCH = 69  # QNN's block-scale path (the EP's default)
LPBQ_FROM_ARCH = {
    "Conv": 68,
    "MatMul": 68,
    "Gemm": 69,
}  # with enable_block_quant_weight_optimization
QDQ_OPSET = 21  # DequantizeLinear's block_size attribute


def blockwise_why_not(
    op_type: str,
    weight_shape: tuple[int, ...],
    activation_bits: int,
    htp_arch: int,
    block_size: int,
    *,
    lpbq: bool = False,
    input_axis: int | None = None,
) -> str | None:
    """None when HTP ``htp_arch`` runs this weight block-wise INT4 (see the module), else why.

    ``input_axis``: the weight's input-channel axis when it is not the op's usual one (a Gemm
    with ``transB`` stores [out, in])."""
    if op_type not in BLOCK_OPS:
        return f"block-wise INT4 runs on HTP only as a Conv/Gemm/MatMul weight, not {op_type}"
    if activation_bits != 16:
        return "QNN HTP's block-wise INT4 kernels take 16-bit activations only (measured: refused with 8)"
    if op_type == "Conv" and (len(weight_shape) != 4 or tuple(weight_shape[2:]) != (1, 1)):
        return (
            "onnxruntime-qnn 2.7 refuses block-wise Conv weights with a kernel larger than 1x1 "
            "(its scale count leaves out the kernel's spatial dimensions)"
        )
    if input_axis is None:
        input_axis = 1 if op_type == "Conv" else 0
    channels = weight_shape[input_axis]
    if block_size < 16 or block_size & (block_size - 1) or channels % block_size:
        return (
            f"block size {block_size} must be a power of two >= 16 that divides the "
            f"{channels} input channels"
        )
    first = LPBQ_FROM_ARCH[op_type] if lpbq else BLOCKWISE_FROM_ARCH
    if htp_arch < first:
        return f"QNN HTP v{htp_arch} has no block-wise INT4 {op_type} weights (v{first} and newer have)"
    return None


@dataclass
class BlockwiseWeight:
    tensor: str
    node: str
    axis: int
    block_size: int
    scales: np.ndarray  # float32, the weight's shape with ``axis`` divided by ``block_size``


def block_scales(w: np.ndarray, axis: int, block_size: int) -> np.ndarray:
    """Symmetric INT4 scale per block along ``axis``: absmax / 7 (QNN/AIMET non-strict)."""
    moved = np.moveaxis(w, axis, 0)
    blocks = moved.reshape(moved.shape[0] // block_size, block_size, *moved.shape[1:])
    absmax = np.abs(blocks).max(axis=1)
    return np.moveaxis(np.maximum(absmax, 1e-12) / 7.0, 0, axis).astype(np.float32)


def weight_input_axis(op_type: str, node: onnx.NodeProto) -> int:
    """The weight's input-channel axis (blocks run along it)."""
    if op_type == "Conv":
        return 1
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    return 1 if op_type == "Gemm" and trans_b else 0


def make_blockwise(
    qdq: onnx.ModelProto,
    float_weights: dict[str, np.ndarray],
    block_size: int,
) -> list[BlockwiseWeight]:
    """Rewrite, in place, the weight DequantizeLinear of every Conv/Gemm/MatMul whose float
    weight is in ``float_weights`` as a block-wise INT4 one (and raise the model to opset 21).
    Returns what was written; weights whose shape does not divide into blocks are left alone
    (the caller checks them with :func:`blockwise_why_not` first)."""
    inits = {t.name: t for t in qdq.graph.initializer}
    producer = {n.output[0]: n for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
    done: list[BlockwiseWeight] = []
    for node in qdq.graph.node:
        if node.op_type not in BLOCK_OPS or len(node.input) < 2:
            continue
        dq = producer.get(node.input[1])
        if dq is None or dq.input[0] not in inits:
            continue
        name = next(
            (
                k
                for k in (dq.input[0], dq.input[0].removesuffix("_quantized"))
                if k in float_weights
            ),
            None,
        )
        if name is None:
            continue
        w = np.asarray(float_weights[name], np.float32)
        axis = weight_input_axis(node.op_type, node)
        if w.ndim < 2 or w.shape[axis] % block_size:
            continue
        scales = block_scales(w, axis, block_size)
        codes = np.clip(np.round(w / np.repeat(scales, block_size, axis=axis)), -8, 7)
        base = dq.input[0]
        inits[base].CopyFrom(
            helper.make_tensor(
                base, TensorProto.INT4, list(w.shape), codes.astype(np.int8).ravel().tolist()
            )
        )
        scale_name, zp_name = f"{base}.block_scale", f"{base}.block_zero_point"
        qdq.graph.initializer.append(numpy_helper.from_array(scales, scale_name))
        qdq.graph.initializer.append(
            helper.make_tensor(zp_name, TensorProto.INT4, list(scales.shape), [0] * scales.size)
        )
        del dq.input[1:]
        dq.input.extend([scale_name, zp_name])
        dq.domain = ""  # ORT's quantiser writes com.microsoft DQs; block_size is ONNX opset 21
        del dq.attribute[:]
        dq.attribute.extend(
            [helper.make_attribute("axis", axis), helper.make_attribute("block_size", block_size)]
        )
        done.append(BlockwiseWeight(name, node.name, axis, block_size, scales))
    if done:
        for opset in qdq.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = max(opset.version, QDQ_OPSET)
        qdq.ir_version = max(qdq.ir_version, 10)
        _drop_unused_initializers(qdq)
    return done


def _drop_unused_initializers(proto: onnx.ModelProto) -> None:
    used = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
    keep = [t for t in proto.graph.initializer if t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


@dataclass
class BlockwiseChoice:
    """Whether one 4-bit weight of a plan would be written block-wise, and if not, why."""

    tensor: str
    op_type: str
    input_channels: int
    reason: str | None  # None: HTP takes it block-wise

    def to_json(self) -> dict[str, object]:
        return {
            "tensor": self.tensor,
            "op_type": self.op_type,
            "input_channels": self.input_channels,
            "reason": self.reason,
        }


def four_bit_weights(
    proto: onnx.ModelProto, plan
) -> Iterator[tuple[onnx.NodeProto, onnx.TensorProto]]:
    """``(node, weight initializer)`` of every Conv/Gemm/MatMul of ``proto`` whose constant weight
    ``plan`` quantises to 4 bits, in graph order: the candidates for block-wise INT4, one rule
    for the build (``build._blockwise_weights``) and its preview (:func:`blockwise_preview`)."""
    inits = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type not in BLOCK_OPS or len(node.input) < 2 or node.input[1] not in inits:
            continue
        ov = plan.overrides.get(node.input[1])
        if ov is not None and ov.dtype == "float":
            continue
        if plan.weight_bits(node.input[1]) == 4:
            yield node, inits[node.input[1]]


def blockwise_preview(
    proto: onnx.ModelProto, plan, htp_arch: int, block_size: int
) -> list[BlockwiseChoice]:
    """For every 4-bit Conv/Gemm/MatMul weight of ``plan`` on the float model ``proto``: would
    the build write it block-wise on HTP ``htp_arch`` (the rule the build applies, with the
    plan's activation widths), or why not. Lets an editor offer the option only where it works."""
    out: list[BlockwiseChoice] = []
    for node, weight in four_bit_weights(proto, plan):
        name = weight.name
        shape = tuple(int(d) for d in weight.dims)
        a_bits = plan.activation_bits(node.input[0]) or 16
        axis = weight_input_axis(node.op_type, node)
        reason = blockwise_why_not(
            node.op_type, shape, a_bits, htp_arch, block_size, input_axis=axis
        )
        channels = shape[axis] if len(shape) > axis else 0
        out.append(BlockwiseChoice(name, node.op_type, channels, reason))
    return out
