"""What QNN HTP accepts, per tensor: the bit widths the editor and the CLI may offer.

Why one rule table: a plan the HTP backend refuses builds a QDQ model that silently falls back
to the CPU (or does not open at all with fallback disabled). Measured with onnxruntime-qnn 2.7:
16-bit Conv/Gemm weights are refused; 4-bit weights are taken by the ops with INT4 weight kernels
(Conv, Gemm, MatMul with a constant weight; per-channel or block-wise) and by nothing else; other
initializers (an elementwise operand, a LayerNorm scale) take 8 or 16 bits. Activations take 8 or
16 bits everywhere. Float is always allowed (it runs off the NPU, which the UI says).
"""

from __future__ import annotations

import onnx

from studio.core.errors import BadInputError

ACTIVATION_BITS = (8, 16)
# ops whose weight input (index 1) has HTP INT4/INT8 kernels, and no INT16 weight kernel
INT4_WEIGHT_OPS = {"Conv", "Gemm", "MatMul"}
NO_INT16_WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "DepthToSpace"}


def weight_consumers(proto: onnx.ModelProto, tensor: str) -> list[tuple[str, int]]:
    """(op_type, input index) of every node that reads ``tensor``."""
    return [
        (node.op_type, index)
        for node in proto.graph.node
        for index, name in enumerate(node.input)
        if name == tensor
    ]


def allowed_bitwidths(proto: onnx.ModelProto, tensor: str) -> tuple[int, ...]:
    """Integer bit widths HTP accepts for ``tensor`` (an activation or an initializer)."""
    inits = {t.name for t in proto.graph.initializer}
    if tensor not in inits:
        return ACTIVATION_BITS
    uses = weight_consumers(proto, tensor)
    weight_uses = [(op, i) for op, i in uses if i == 1 and op in NO_INT16_WEIGHT_OPS]
    if weight_uses:
        four = all(op in INT4_WEIGHT_OPS for op, _ in weight_uses)
        return (4, 8) if four else (8,)
    return (8, 16)


def why_not(proto: onnx.ModelProto, tensor: str, bitwidth: int) -> str | None:
    """None when HTP takes ``bitwidth`` for ``tensor``, else the reason in words."""
    allowed = allowed_bitwidths(proto, tensor)
    if bitwidth in allowed:
        return None
    ops = sorted({op for op, i in weight_consumers(proto, tensor) if i == 1})
    if bitwidth == 16 and ops:
        return f"QNN HTP has no 16-bit weights for {'/'.join(ops)} (allowed: {allowed})"
    if bitwidth == 4:
        return (
            f"4-bit weights run on HTP only as Conv/Gemm/MatMul weights (allowed here: {allowed})"
        )
    return f"QNN HTP takes {', '.join(map(str, allowed))}-bit here, not {bitwidth}"


def check_plan_for_htp(plan, proto: onnx.ModelProto) -> None:
    """Raise BadInputError naming the first tensor whose planned bit width HTP refuses.

    The plan's default weight width applies to every quantised weight, so ``weight_bitwidth=16``
    on a model with Conv weights is refused as a whole (an override can widen other tensors).
    """
    from studio.core.quantize.scope import quantised_initializers

    weights = sorted(quantised_initializers(proto))
    for name in weights:
        ov = plan.overrides.get(name)
        if ov is not None and ov.dtype == "float":
            continue
        bits = ov.bitwidth if ov is not None and ov.bitwidth else plan.weight_bitwidth
        if bits == 32:
            continue  # biases
        reason = why_not(proto, name, bits)
        if reason is None:
            continue
        if ov is not None and ov.bitwidth:
            raise BadInputError(f"tensor '{name}': {bits}-bit weights: {reason}")
        if bits == 4 and allowed_bitwidths(proto, name) != (4, 8):
            continue  # default W4 applies only where HTP has INT4 kernels (others stay 8-bit)
        raise BadInputError(
            f"{bits}-bit weights cannot run on QNN HTP: tensor '{name}': {reason}; "
            "use 8-bit weights (or 16-bit activations) instead"
        )
