"""The quantisation editor's rules: what a user may change on a tensor, and the override it becomes.

Why in core: "a bias cannot be edited", "4-bit activations are not supported", "an offset is a
whole number" are facts about QNN quantisation, not about a Qt widget; here they hold for the
GUI's table and are testable (and usable by a script) without Qt. Each function takes the
tensor's effective encoding and current override and returns a new, validated
:class:`TensorOverride`, or raises EncodingsError/ConfigError/ValueError with a message a user
can act on. The GUI's session only looks up the encoding and applies the result.

What QNN HTP accepts, per tensor: the bit widths the editor and the CLI may offer.

Why one rule table: a plan the HTP backend refuses builds a QDQ model that silently falls back
to the CPU (or does not open at all with fallback disabled). Measured with onnxruntime-qnn 2.7:
16-bit Conv/Gemm weights are refused; 4-bit weights are taken by the ops with INT4 weight kernels
(Conv, Gemm, MatMul with a constant weight; per-channel or block-wise) and by nothing else; other
initializers (an elementwise operand, a LayerNorm scale) take 8 or 16 bits. Activations take 8 or
16 bits everywhere. Float is always allowed (it runs off the NPU, which the UI says).
"""

from __future__ import annotations

import math
from typing import Any

import onnx

from studio.core.encodings import Encoding
from studio.core.errors import BadInputError, ConfigError, EncodingsError
from studio.core.quantize.plan import TensorOverride


def copy_override(ov: TensorOverride | None) -> TensorOverride | None:
    """An independent copy (undo keeps the before and after of each edit)."""
    return None if ov is None else TensorOverride.from_json(ov.to_json())


def parse_bitwidth(text: str) -> tuple[str, int]:
    """``"8"`` -> ("int", 8); ``"float16"``/``"float"`` -> ("float", 16)."""
    t = text.strip().lower()
    if t in ("float", "fp16", "float16", "f16"):
        return "float", 16
    if t in ("fp32", "float32", "f32"):
        return "float", 32
    return "int", int(t.removeprefix("int").removeprefix("a").removeprefix("w"))


def parse_number(text: str) -> float:
    """A finite float or ValueError (NaN and Inf are never a valid min/max/scale)."""
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    return value


def reflects(enc: Encoding | None, key: str, value: Any) -> bool:
    """Whether the effective encoding shows a requested setting (the core may ignore one:
    e.g. plain constants are quantised like activations, never symmetric per-channel)."""
    if enc is None or key == "reset":
        return True
    if key == "bits":
        dtype, bits = parse_bitwidth(str(value))
        return enc.dtype == dtype and (dtype == "float" or enc.bitwidth == bits)
    if key == "symmetric":
        return enc.is_float or enc.symmetric == bool(value)
    if key == "per_channel":
        return enc.is_float or enc.per_channel == bool(value)
    return True


def edited_override(
    name: str,
    kind: str | None,
    enc: Encoding | None,
    current: TensorOverride | None,
    key: str,
    value: Any,
) -> TensorOverride:
    """The override after the user sets ``key`` to ``value`` on tensor ``name``.

    ``kind``: "activation", "param" or "bias" (None when unknown); ``enc``: the tensor's
    effective encoding; ``current``: its override now (left unchanged).
    """
    if kind == "bias":
        raise EncodingsError(
            f"tensor '{name}' is a bias: the build derives its int32 encoding from the "
            "input and weight scales"
        )
    ov = copy_override(current) or TensorOverride(tensor=name)
    if key == "bits":
        dtype, bits = parse_bitwidth(str(value))
        if dtype == "float":
            return TensorOverride(tensor=name, dtype="float", bitwidth=bits)
        if kind == "activation" and bits == 4:
            raise EncodingsError(
                f"tensor '{name}': 4-bit activations are not supported (8 or 16; 4-bit is "
                "for weights)"
            )
        ov.dtype, ov.bitwidth = "int", bits
        _keep_range(ov, enc)
    elif key == "symmetric":
        ov.symmetric = bool(value)
        _keep_range(ov, enc)
    elif key == "per_channel":
        ov.per_channel = bool(value)
        ov.scale = ov.offset = None
    elif key in ("min", "max"):
        if enc is None or enc.is_float:
            raise EncodingsError(f"tensor '{name}': no integer encoding to edit")
        number = parse_number(str(value))
        lo = number if key == "min" else enc.min[0]
        hi = number if key == "max" else enc.max[0]
        return range_override(name, enc, current, lo, hi)
    elif key in ("scale", "offset"):
        if enc is None or enc.is_float:
            raise EncodingsError(f"tensor '{name}': no integer encoding to edit")
        text = str(value).strip()
        scale = parse_number(text) if key == "scale" else enc.scale[0]
        if key == "offset":
            offset_f = parse_number(text)
            if offset_f != round(offset_f):
                raise EncodingsError(f"tensor '{name}': offset must be a whole number")
            offset = int(offset_f)
        else:
            offset = enc.offset[0]
        new = enc.with_scale_offset(scale, offset)  # raises "scale[0] = ... is not positive"
        ov.scale, ov.offset, ov.min, ov.max = list(new.scale), list(new.offset), None, None
        _pin_bits(ov, enc)
    else:
        raise ConfigError(f"column '{key}' is not editable")
    ov.validate()
    return ov


def range_override(
    name: str, enc: Encoding | None, current: TensorOverride | None, lo: float, hi: float
) -> TensorOverride:
    """The override giving ``name`` the range [lo, hi] (scale/offset follow in the build)."""
    if enc is None or enc.is_float:
        raise EncodingsError(f"tensor '{name}': no integer encoding to edit")
    if enc.per_channel:
        raise EncodingsError(f"tensor '{name}': per-channel ranges come from the weights")
    if not lo < hi:
        raise EncodingsError(f"tensor '{name}': min {lo:.6g} must be below max {hi:.6g}")
    enc.with_range(lo, hi)  # the encoding's own checks (finite numbers)
    ov = copy_override(current) or TensorOverride(tensor=name)
    ov.min, ov.max, ov.scale, ov.offset = float(lo), float(hi), None, None
    _pin_bits(ov, enc)
    ov.validate()
    return ov


def _keep_range(ov: TensorOverride, enc: Encoding | None) -> None:
    """A user-set scale/offset belongs to the old grid: keep its range, drop the codes."""
    if ov.scale is not None and enc is not None and not enc.is_float and not enc.per_channel:
        ov.min, ov.max = enc.min[0], enc.max[0]
    ov.scale = ov.offset = None


def _pin_bits(ov: TensorOverride, enc: Encoding) -> None:
    ov.dtype = "int"
    if ov.bitwidth is None:
        ov.bitwidth = enc.bitwidth
    if ov.symmetric is None:
        ov.symmetric = enc.symmetric


# What QNN HTP accepts (measured with onnxruntime-qnn 2.7; see the module docstring).
ACTIVATION_BITS = (8, 16)
# ops whose weight input (index 1) has HTP INT4/INT8 kernels, and no INT16 weight kernel before
# INT16_WEIGHTS_FROM_ARCH: a W16A16 Conv was refused by HTP v65, v66, v68 and v69 targets and
# taken by v73, v75, v79, v81 and v85 (one session per catalogue architecture, fallback off).
INT4_WEIGHT_OPS = {"Conv", "Gemm", "MatMul"}
NO_INT16_WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "DepthToSpace"}
INT16_WEIGHTS_FROM_ARCH = 73
# INT4 Conv weights under 16-bit activations: refused by HTP v65 and v66, taken from v68 (Gemm
# and MatMul take them everywhere; bench/lpbq_probe.py, one session per architecture)
INT4_CONV_A16_FROM_ARCH = 68


def target_arch(htp_arch: int | None = None) -> int:
    """``htp_arch``, else the studio's current target's (what every HTP session uses)."""
    if htp_arch is not None:
        return int(htp_arch)
    from studio.core.engine.sessions import htp_target

    return int(htp_target()["htp_arch"])


def weight_consumers(proto: onnx.ModelProto, tensor: str) -> list[tuple[str, int]]:
    """(op_type, input index) of every node that reads ``tensor``."""
    return [
        (node.op_type, index)
        for node in proto.graph.node
        for index, name in enumerate(node.input)
        if name == tensor
    ]


def allowed_bitwidths(
    proto: onnx.ModelProto, tensor: str, htp_arch: int | None = None
) -> tuple[int, ...]:
    """Integer bit widths the HTP of ``htp_arch`` (default: the current target's) accepts for
    ``tensor`` (an activation or an initializer)."""
    inits = {t.name for t in proto.graph.initializer}
    if tensor not in inits:
        return ACTIVATION_BITS
    uses = weight_consumers(proto, tensor)
    weight_uses = [(op, i) for op, i in uses if i == 1 and op in NO_INT16_WEIGHT_OPS]
    if weight_uses:
        four = all(op in INT4_WEIGHT_OPS for op, _ in weight_uses)
        sixteen = target_arch(htp_arch) >= INT16_WEIGHTS_FROM_ARCH
        return ((4,) if four else ()) + (8,) + ((16,) if sixteen else ())
    return (8, 16)


def why_not(
    proto: onnx.ModelProto,
    tensor: str,
    bitwidth: int,
    htp_arch: int | None = None,
    activation_bits: int | None = None,
) -> str | None:
    """None when HTP takes ``bitwidth`` for ``tensor``, else the reason in words.

    ``activation_bits`` (the width of the activations the weight's ops read) adds the rule
    for INT4 Conv weights with 16-bit activations, which HTP v65/v66 has no kernel for."""
    allowed = allowed_bitwidths(proto, tensor, htp_arch)
    if bitwidth in allowed:
        if bitwidth == 4 and activation_bits == 16:
            arch = target_arch(htp_arch)
            convs = [op for op, i in weight_consumers(proto, tensor) if i == 1 and op == "Conv"]
            if convs and arch < INT4_CONV_A16_FROM_ARCH:
                return (
                    f"QNN HTP v{arch} has no INT4 Conv weights with 16-bit activations "
                    f"(v{INT4_CONV_A16_FROM_ARCH} and newer have; use 8-bit activations or "
                    "8-bit weights)"
                )
        return None
    ops = sorted({op for op, i in weight_consumers(proto, tensor) if i == 1})
    if bitwidth == 16 and ops:
        return (
            f"QNN HTP v{target_arch(htp_arch)} has no 16-bit weights for {'/'.join(ops)} "
            f"(v{INT16_WEIGHTS_FROM_ARCH} and newer have; allowed here: {allowed})"
        )
    if bitwidth == 4:
        return (
            f"4-bit weights run on HTP only as Conv/Gemm/MatMul weights (allowed here: {allowed})"
        )
    return f"QNN HTP takes {', '.join(map(str, allowed))}-bit here, not {bitwidth}"


def check_plan_for_htp(plan, proto: onnx.ModelProto, htp_arch: int | None = None) -> None:
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
        bits = plan.weight_bits(name)
        if bits == 32:
            continue  # biases
        reason = why_not(proto, name, bits, htp_arch, activation_bits_of(plan, proto, name))
        if reason is None:
            continue
        if ov is not None and ov.bitwidth:
            raise BadInputError(f"tensor '{name}': {bits}-bit weights: {reason}")
        if bits == 4 and 4 not in allowed_bitwidths(proto, name, htp_arch):
            continue  # default W4 applies only where HTP has INT4 kernels (others stay 8-bit)
        fix = "" if bits == 4 else "; use 8-bit weights (or 16-bit activations) instead"
        raise BadInputError(
            f"{bits}-bit weights cannot run on QNN HTP: tensor '{name}': {reason}{fix}"
        )


def activation_bits_of(plan, proto: onnx.ModelProto, weight: str) -> int | None:
    """The widest activation width the ops reading ``weight`` as a weight take as input."""
    widths = [
        plan.activation_bits(node.input[0]) or 0
        for node in proto.graph.node
        if len(node.input) > 1 and node.input[1] == weight
    ]
    return max(widths) or None if widths else None
