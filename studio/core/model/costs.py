"""Per-node cost figures computed from shapes alone: element types, sizes and MACs.

Why shape-only: viewing a model must not read its weights (a 1 GB model opens in a few MB), so
every figure here is derived from tensor shapes, attributes and element types.

What counts as a MAC (multiply-accumulate), documented once here and shown in the UI as such:
- Conv / ConvInteger / QLinearConv: ``out_elements * (C_in / group) * prod(kernel)`` (depthwise
  and grouped convolutions follow from the weight shape ``[M, C/group, k...]``).
- ConvTranspose: ``in_elements * (M / group) * prod(kernel)`` (weight ``[C, M/group, k...]``).
- Gemm: ``M * N * K``; MatMul / MatMulInteger / QLinearMatMul: ``out_elements * K`` (batched
  matmuls included through the broadcast output shape).
- Einsum: two operands without an ellipsis: product of the sizes of all distinct indices; else 0.
- LSTM / GRU / RNN: ``seq * batch * directions * gates * hidden * (input + hidden)``.
- BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization: one MAC per
  output element (a scale and a shift).
- AveragePool: ``out_elements * prod(kernel)``; GlobalAveragePool, ReduceMean, ReduceSum: one per
  input element (an accumulation each).
- Everything else (element-wise Add/Mul/Relu..., data movement, MaxPool): 0. Their cost is memory
  traffic, which ``activation_bytes`` shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from onnx import TensorProto

Shape = list[int | str | None] | None

# ONNX element type -> (numpy-style name, bits per element). Bits None: no fixed size (string).
_DTYPES: dict[int, tuple[str, int | None]] = {
    TensorProto.FLOAT: ("float32", 32),
    TensorProto.UINT8: ("uint8", 8),
    TensorProto.INT8: ("int8", 8),
    TensorProto.UINT16: ("uint16", 16),
    TensorProto.INT16: ("int16", 16),
    TensorProto.INT32: ("int32", 32),
    TensorProto.INT64: ("int64", 64),
    TensorProto.STRING: ("str", None),
    TensorProto.BOOL: ("bool", 8),
    TensorProto.FLOAT16: ("float16", 16),
    TensorProto.DOUBLE: ("float64", 64),
    TensorProto.UINT32: ("uint32", 32),
    TensorProto.UINT64: ("uint64", 64),
    TensorProto.COMPLEX64: ("complex64", 64),
    TensorProto.COMPLEX128: ("complex128", 128),
    TensorProto.BFLOAT16: ("bfloat16", 16),
}
for _name, _bits in (
    ("FLOAT8E4M3FN", 8),
    ("FLOAT8E4M3FNUZ", 8),
    ("FLOAT8E5M2", 8),
    ("FLOAT8E5M2FNUZ", 8),
    ("FLOAT8E8M0", 8),
    ("UINT4", 4),
    ("INT4", 4),
    ("FLOAT4E2M1", 4),
    ("UINT2", 2),
    ("INT2", 2),
):
    if hasattr(TensorProto, _name):
        _DTYPES[getattr(TensorProto, _name)] = (_name.lower(), _bits)

# Constants of these types are shapes, axes or masks, not learned parameters.
NON_PARAM_DTYPES = frozenset({"int64", "bool", "str"})


def dtype_name(elem_type: int | None) -> str | None:
    """Numpy-style name of an ONNX element type ('float32', 'int4', ...); None when unknown."""
    if not elem_type:
        return None
    known = _DTYPES.get(elem_type)
    if known:
        return known[0]
    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return None


def dtype_bits(elem_type: int | None) -> int | None:
    """Bits per element of an ONNX element type; None for strings and unknown types."""
    known = _DTYPES.get(elem_type or 0)
    return known[1] if known else None


def num_elements(shape: Shape) -> int | None:
    """Element count of a fully static shape; None when any dim is symbolic or unknown."""
    if shape is None:
        return None
    total = 1
    for dim in shape:
        if not isinstance(dim, int) or dim < 0:
            return None
        total *= dim
    return total


def nbytes(shape: Shape, elem_type: int | None) -> int | None:
    """Storage size in bytes (sub-byte types packed, rounded up); None when not static."""
    count = num_elements(shape)
    bits = dtype_bits(elem_type)
    if count is None or bits is None:
        return None
    return (count * bits + 7) // 8


def _static(shape: Shape) -> list[int] | None:
    if shape is None or any(not isinstance(d, int) or d < 0 for d in shape):
        return None
    return list(shape)  # type: ignore[arg-type]


def node_macs(
    op_type: str,
    attributes: dict[str, Any],
    input_shapes: Sequence[Shape],
    output_shapes: Sequence[Shape],
) -> int:
    """MACs of one node from its shapes (see the module docstring); 0 when shapes are unknown."""
    fn = _MAC_RULES.get(op_type)
    if fn is None:
        return 0
    ins = [_static(s) for s in input_shapes]
    outs = [_static(s) for s in output_shapes]
    try:
        return max(0, int(fn(attributes, ins, outs)))
    except (IndexError, ValueError, TypeError, ZeroDivisionError, KeyError):
        return 0


def _get(seq: Sequence[Any], i: int) -> Any:
    return seq[i] if i < len(seq) else None


def _kernel_macs(elements: list[int] | None, w: list[int] | None) -> int:
    """MACs of a convolution: one kernel (in-channels/group x spatial) per element of ``elements``."""
    if elements is None or w is None or len(w) < 2:
        return 0
    return math.prod(elements) * w[1] * math.prod(w[2:])


def _conv(attrs: dict[str, Any], ins: list, outs: list) -> int:
    return _kernel_macs(_get(outs, 0), _get(ins, 1))


def _qlinear_conv(attrs: dict[str, Any], ins: list, outs: list) -> int:
    return _kernel_macs(_get(outs, 0), _get(ins, 3))  # x, x_scale, x_zp, w, ...


def _conv_transpose(attrs: dict[str, Any], ins: list, outs: list) -> int:
    return _kernel_macs(_get(ins, 0), _get(ins, 1))  # every input element scatters one kernel


def _gemm(attrs: dict[str, Any], ins: list, outs: list) -> int:
    a, out = _get(ins, 0), _get(outs, 0)
    if a is None or out is None or len(a) != 2:
        return 0
    k = a[0] if attrs.get("transA") else a[1]
    return math.prod(out) * k


def _matmul_k(a: list[int] | None, out: list[int] | None) -> int:
    if a is None or out is None or not a:
        return 0
    return math.prod(out) * a[-1]


def _matmul(attrs: dict[str, Any], ins: list, outs: list) -> int:
    return _matmul_k(_get(ins, 0), _get(outs, 0))


def _qlinear_matmul(attrs: dict[str, Any], ins: list, outs: list) -> int:
    return _matmul_k(_get(ins, 0), _get(outs, 0))


def _einsum(attrs: dict[str, Any], ins: list, outs: list) -> int:
    equation = str(attrs.get("equation", "")).replace(" ", "")
    lhs = equation.split("->")[0]
    terms = lhs.split(",")
    if len(terms) != 2 or "." in lhs or any(s is None for s in ins[:2]):
        return 0
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, ins[:2], strict=True):
        if len(term) != len(shape):
            return 0
        for letter, dim in zip(term, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), dim)
    return math.prod(sizes.values())


def _rnn(gates: int):
    def rule(attrs: dict[str, Any], ins: list, outs: list) -> int:
        x, w = _get(ins, 0), _get(ins, 1)
        if x is None or w is None or len(x) != 3 or len(w) != 3:
            return 0
        layout = int(attrs.get("layout", 0))
        seq, batch = (x[1], x[0]) if layout else (x[0], x[1])
        directions, hidden = w[0], int(attrs.get("hidden_size", w[1] // gates))
        return seq * batch * directions * gates * hidden * (x[2] + hidden)

    return rule


def _per_output(attrs: dict[str, Any], ins: list, outs: list) -> int:
    out = _get(outs, 0)
    return math.prod(out) if out is not None else 0


def _per_input(attrs: dict[str, Any], ins: list, outs: list) -> int:
    x = _get(ins, 0)
    return math.prod(x) if x is not None else 0


def _average_pool(attrs: dict[str, Any], ins: list, outs: list) -> int:
    out = _get(outs, 0)
    kernel = attrs.get("kernel_shape") or []
    return math.prod(out) * math.prod(kernel) if out is not None else 0


_MAC_RULES = {
    "Conv": _conv,
    "ConvInteger": _conv,
    "QLinearConv": _qlinear_conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "QLinearMatMul": _qlinear_matmul,
    "Einsum": _einsum,
    "LSTM": _rnn(4),
    "GRU": _rnn(3),
    "RNN": _rnn(1),
    "BatchNormalization": _per_output,
    "InstanceNormalization": _per_output,
    "LayerNormalization": _per_output,
    "GroupNormalization": _per_output,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _per_input,
    "ReduceMean": _per_input,
    "ReduceSum": _per_input,
}
