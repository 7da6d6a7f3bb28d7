"""The quantisation editor's rules: what a user may change on a tensor, and the override it becomes.

Why in core: "a bias cannot be edited", "4-bit activations are not supported", "an offset is a
whole number" are facts about QNN quantisation, not about a Qt widget; here they hold for the
GUI's table and are testable (and usable by a script) without Qt. Each function takes the
tensor's effective encoding and current override and returns a new, validated
:class:`TensorOverride`, or raises EncodingsError/ConfigError/ValueError with a message a user
can act on. The GUI's session only looks up the encoding and applies the result.

What QNN HTP accepts, per tensor: the bit widths the editor and the CLI may offer.

Why one rule table: a plan the HTP backend refuses builds a QDQ model that silently falls back
to the CPU (or does not open at all with fallback disabled). :data:`HTP_WEIGHT_RULES` holds
what bench/weight_bits_probe.py measured (onnxruntime-qnn 2.7.0, every catalogue HTP
architecture, emulated on x86-64): 16-bit weights run only under 16-bit activations, for
Conv/ConvTranspose/Gemm/MatMul/LayerNorm from v73 (InstanceNorm everywhere); 4-bit weights
run on the ops with INT4 kernels (Conv - under 16-bit activations from v68 -, ConvTranspose,
Gemm, MatMul, InstanceNorm) and nothing else; other constants (an elementwise operand, a
PRelu slope) run quantised only at their node's activation width (before v69 nothing else
runs; from v69 HTP runs such a node in float). Activations take 8 or 16 bits everywhere.
Float is always allowed (it runs off the NPU, which the UI says).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class WeightRule:
    """The widths QNN HTP runs one op's weight input at, written the way the studio's build
    writes it (symmetric signed weights; a LayerNorm scale unsigned at 8 bits, signed at 16;
    an InstanceNorm scale unsigned at 16 bits).

    ``four``: an INT4 kernel exists (``four_a16_from_arch``: under 16-bit activations only from
    that architecture). ``sixteen_from_arch``: 16-bit weights run under 16-bit activations from
    that architecture (None: never); under 8-bit activations no op takes them.
    """

    four: bool
    sixteen_from_arch: int | None
    four_a16_from_arch: int = 0


# (op, input index) -> rule. Measured by bench/weight_bits_probe.py: one QDQ node per op, weight
# width (4/8/16, signed and unsigned) and activation width (8/16), one QNN HTP session with CPU
# fallback disabled per catalogue architecture (v65 ... v85), emulated (the QNN HTP backend of
# onnxruntime-qnn 2.7.0 on x86-64), a width counting only where HTP's compiled graph runs the op
# on fixed-point tensors. 16-bit weights under 8-bit activations: refused for every op below on
# every architecture (W16A8 MatMul and LayerNorm included); under 16-bit activations Conv,
# ConvTranspose, Gemm, MatMul and a signed LayerNorm scale run from v73, an unsigned
# InstanceNorm scale everywhere (a signed one nowhere). INT4 Conv under 16-bit activations from
# v68; INT4 ConvTranspose/Gemm/MatMul/InstanceNorm everywhere; a LayerNorm scale has no INT4
# kernel the build writes (plans of 4 bits store it at 8).
HTP_WEIGHT_RULES: dict[tuple[str, int], WeightRule] = {
    ("Conv", 1): WeightRule(four=True, sixteen_from_arch=73, four_a16_from_arch=68),
    ("ConvTranspose", 1): WeightRule(four=True, sixteen_from_arch=73),
    ("Gemm", 1): WeightRule(four=True, sixteen_from_arch=73),
    ("MatMul", 1): WeightRule(four=True, sixteen_from_arch=73),
    ("LayerNormalization", 1): WeightRule(four=False, sixteen_from_arch=73),
    ("InstanceNormalization", 1): WeightRule(four=True, sixteen_from_arch=0),
}
# biases: int32 at input scale x weight scale, derived by the build (never edited)
BIAS_INPUTS = {
    (op, 2)
    for op in (
        "Conv",
        "ConvTranspose",
        "Gemm",
        "LayerNormalization",
        "InstanceNormalization",
        "BatchNormalization",
    )
}
# inputs whose encoding the node's output shares (a Gather's table): any activation width runs
# (same probe: a table at the output's width is quantised everywhere)
SHARED_ENCODING_INPUTS = {("Gather", 0), ("GatherElements", 0)}
# Other constants (a Mul/Add operand, a PRelu slope) are quantised like activations: HTP runs
# the node quantised only when the constant has the width of the node's activations (same
# probe: Mul, Add, PRelu). At another width v65-v68 refuse the node; from v69 the EP splits
# the QDQ unit and HTP runs the node in float (its compiled graph shows float tensors), so the
# session still offloads fully and the width is allowed there.
FLOAT_NODES_FROM_ARCH = 69
# the ops with an INT4 weight kernel (named in refusals)
INT4_WEIGHT_OPS = {op for (op, _), rule in HTP_WEIGHT_RULES.items() if rule.four}


def target_arch(htp_arch: int | None = None) -> int:
    """``htp_arch``, else the studio's current target's (what every HTP session uses)."""
    if htp_arch is not None:
        return int(htp_arch)
    from studio.core.engine.sessions import htp_target

    return int(htp_target()["htp_arch"])


@dataclass
class TensorUses:
    """Who reads each tensor of one model, indexed once.

    Why: :func:`check_plan_for_htp` asks about every weight, and a scan of every node per
    weight was quadratic (seconds per build at 5,000 nodes, minutes at 20,000). Build it with
    :func:`tensor_uses` and pass it to the functions here; without it each call scans."""

    initializers: set[str]
    readers: dict[str, list[tuple[onnx.NodeProto, int]]]


def tensor_uses(proto: onnx.ModelProto) -> TensorUses:
    """Index ``proto``'s initializer names and the (node, input index) reading each tensor."""
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in proto.graph.node:
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, index))
    return TensorUses({t.name for t in proto.graph.initializer}, readers)


def weight_consumers(
    proto: onnx.ModelProto, tensor: str, uses: TensorUses | None = None
) -> list[tuple[str, int]]:
    """(op_type, input index) of every node that reads ``tensor``."""
    uses = uses or tensor_uses(proto)
    return [(node.op_type, index) for node, index in uses.readers.get(tensor, [])]


def weight_rules(
    proto: onnx.ModelProto, tensor: str, uses: TensorUses | None = None
) -> list[tuple[str, WeightRule]]:
    """(op, rule) for each use of ``tensor`` as a weight with a measured rule."""
    return [
        (op, HTP_WEIGHT_RULES[(op, i)])
        for op, i in weight_consumers(proto, tensor, uses)
        if (op, i) in HTP_WEIGHT_RULES
    ]


def allowed_bitwidths(
    proto: onnx.ModelProto,
    tensor: str,
    htp_arch: int | None = None,
    activation_bits: int | None = None,
    uses: TensorUses | None = None,
) -> tuple[int, ...]:
    """Integer bit widths the HTP of ``htp_arch`` (default: the current target's) runs
    ``tensor`` (an activation or an initializer) at, by :data:`HTP_WEIGHT_RULES`.

    ``activation_bits``: the width of the activations the tensor's nodes read (see
    :func:`activation_bits_of`); pass it where known, since 16-bit weights need 16-bit
    activations and a constant operand needs the activations' width. None (unknown) allows
    every width some activation width would take.
    """
    uses = uses or tensor_uses(proto)
    if tensor not in uses.initializers:
        return ACTIVATION_BITS
    rules = weight_rules(proto, tensor, uses)
    if rules:
        arch = target_arch(htp_arch)
        four = all(
            r.four and (activation_bits != 16 or arch >= r.four_a16_from_arch) for _, r in rules
        )
        sixteen = activation_bits != 8 and all(
            r.sixteen_from_arch is not None and arch >= r.sixteen_from_arch for _, r in rules
        )
        return ((4,) if four else ()) + (8,) + ((16,) if sixteen else ())
    reads = weight_consumers(proto, tensor, uses)
    if reads and all(use in SHARED_ENCODING_INPUTS | BIAS_INPUTS for use in reads):
        return ACTIVATION_BITS
    if activation_bits in ACTIVATION_BITS and target_arch(htp_arch) < FLOAT_NODES_FROM_ARCH:
        return (activation_bits,)
    return ACTIVATION_BITS


def why_not(
    proto: onnx.ModelProto,
    tensor: str,
    bitwidth: int,
    htp_arch: int | None = None,
    activation_bits: int | None = None,
    uses: TensorUses | None = None,
) -> str | None:
    """None when HTP runs ``tensor`` at ``bitwidth``, else the rule it breaks, in words.

    ``activation_bits`` (the width of the activations the tensor's ops read; None: unknown)
    adds the rules that depend on it: 16-bit weights need 16-bit activations, INT4 Conv weights
    under 16-bit activations need v68, a constant operand needs the activations' width."""
    uses = uses or tensor_uses(proto)
    allowed = allowed_bitwidths(proto, tensor, htp_arch, activation_bits, uses)
    if bitwidth in allowed:
        return None
    arch = target_arch(htp_arch)
    rules = weight_rules(proto, tensor, uses)
    ops = "/".join(sorted({op for op, _ in rules}))
    if rules and bitwidth == 16:
        never = sorted({op for op, r in rules if r.sixteen_from_arch is None})
        late = [r.sixteen_from_arch for _, r in rules if r.sixteen_from_arch is not None]
        if never:
            return f"QNN HTP has no 16-bit weights for {'/'.join(never)} (allowed here: {allowed})"
        since = max(late)
        if arch < since:
            return (
                f"QNN HTP v{arch} has no 16-bit weights for {ops} (v{since} and newer have, "
                f"with 16-bit activations; allowed here: {allowed})"
            )
        return (
            f"QNN HTP runs 16-bit weights for {ops} only with 16-bit activations (these read "
            f"8-bit ones; allowed here: {allowed})"
        )
    if rules and bitwidth == 4:
        no_int4 = sorted({op for op, r in rules if not r.four})
        if no_int4:
            return (
                f"QNN HTP has no 4-bit weights for {'/'.join(no_int4)} (4-bit weights run as "
                f"{'/'.join(sorted(INT4_WEIGHT_OPS))} weights; allowed here: {allowed})"
            )
        since = max(r.four_a16_from_arch for _, r in rules)
        return (
            f"QNN HTP v{arch} has no INT4 {ops} weights with 16-bit activations "
            f"(v{since} and newer have; use 8-bit activations or 8-bit weights)"
        )
    if bitwidth == 4:
        return (
            f"4-bit weights run on HTP only as {'/'.join(sorted(INT4_WEIGHT_OPS))} weights "
            f"(allowed here: {allowed})"
        )
    if bitwidth in ACTIVATION_BITS and activation_bits in ACTIVATION_BITS:
        users = "/".join(sorted({op for op, _ in weight_consumers(proto, tensor, uses)}))
        return (
            f"QNN HTP v{arch} runs {users} only with a constant as wide as its "
            f"{activation_bits}-bit activations (v{FLOAT_NODES_FROM_ARCH} and newer take the "
            f"node, in float; allowed here: {allowed})"
        )
    return f"QNN HTP takes {', '.join(map(str, allowed))}-bit here, not {bitwidth}"


def check_plan_for_htp(plan, proto: onnx.ModelProto, htp_arch: int | None = None) -> None:
    """Raise BadInputError naming the first tensor whose planned bit width HTP refuses: the
    tensor, its op and the rule (:data:`HTP_WEIGHT_RULES`), before anything is built.

    The plan's default weight width applies to every weight with a rule, so
    ``weight_bitwidth=16`` on a model with Conv weights and 8-bit activations is refused as a
    whole. Biases are int32 (derived by the build); other constants are built at the
    activations' width unless an override gives them one, which is then checked.
    """
    from studio.core.quantize.scope import quantised_initializers

    weights = sorted(quantised_initializers(proto))
    index = tensor_uses(proto)
    for name in weights:
        ov = plan.overrides.get(name)
        if ov is not None and ov.dtype == "float":
            continue
        uses = weight_consumers(proto, name, index)
        if uses and all(use in BIAS_INPUTS for use in uses):
            continue
        explicit = ov is not None and bool(ov.bitwidth)
        if not explicit and not weight_rules(proto, name, index):
            continue  # quantised like an activation, at the plan's activation width
        bits = plan.weight_bits(name)
        if bits == 32:
            continue
        act_bits = activation_bits_of(plan, proto, name, index)
        reason = why_not(proto, name, bits, htp_arch, act_bits, index)
        if reason is None:
            continue
        ops = "/".join(sorted({op for op, _ in uses}))
        if explicit:
            raise BadInputError(f"tensor '{name}' ({ops}): {bits}-bit weights: {reason}")
        if bits == 4 and 4 not in allowed_bitwidths(proto, name, htp_arch, uses=index):
            continue  # default W4 applies only where HTP has INT4 kernels (others stay 8-bit)
        fix = "" if bits == 4 else "; use 8-bit weights (or 16-bit activations) instead"
        raise BadInputError(
            f"{bits}-bit weights cannot run on QNN HTP: tensor '{name}' ({ops}): {reason}{fix}"
        )


def activation_bits_of(
    plan, proto: onnx.ModelProto, weight: str, uses: TensorUses | None = None
) -> int | None:
    """The widest activation width among the other inputs of the nodes reading ``weight``
    (a Conv's data input, a Mul's other operand); None when none is quantised."""
    uses = uses or tensor_uses(proto)
    readers = {id(node): node for node, _ in uses.readers.get(weight, [])}.values()
    widths = [
        plan.activation_bits(other) or 0
        for node in readers
        for other in node.input
        if other and other != weight and other not in uses.initializers
    ]
    return (max(widths) or None) if widths else None
