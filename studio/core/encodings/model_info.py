"""What the encodings code needs to know about a model, and the coverage report.

Files from AIMET 1.0.0 and QNN carry no per-channel axis and do not say which parameters are
biases; the consuming op does. :class:`ModelView` answers those questions from the ONNX graph
(top-level graph only; weights' data is never loaded, only their dims), for a
``studio.core.model.graph.ModelGraph``, an ``onnx.ModelProto`` or a path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from studio.core.encodings.encoding_set import EncodingSet
from studio.core.errors import EncodingsError, ModelLoadError
from studio.core.model.quant_rules import is_quantised_input

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
# op -> input index -> (role, channel axis; negative counts from the end)
_WEIGHT_ROLES: dict[str, dict[int, tuple[str, int]]] = {
    "Conv": {1: ("param", 0), 2: ("bias", 0)},
    "ConvTranspose": {1: ("param", 1), 2: ("bias", 0)},
    "MatMul": {1: ("param", -1)},
    "Gemm": {1: ("param", -1), 2: ("bias", -1)},  # B's axis depends on transB, see axis_for
    "LayerNormalization": {1: ("param", 0), 2: ("bias", 0)},
    "InstanceNormalization": {1: ("param", 0), 2: ("bias", 0)},
    "BatchNormalization": {1: ("param", 0), 2: ("bias", 0)},
    "PRelu": {1: ("param", 0)},
}


@dataclass
class _Use:
    op_type: str
    index: int
    attrs: dict[str, Any]


class ModelView:
    """Initializer dims, consumers and float-ness of the tensors of a model's main graph."""

    def __init__(self, proto: onnx.ModelProto, name: str = "<model>"):
        self.name = name
        graph = proto.graph
        self.initializers: dict[str, list[int]] = {i.name: list(i.dims) for i in graph.initializer}
        self.elem_types: dict[str, int] = {i.name: i.data_type for i in graph.initializer}
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            if vi.type.HasField("tensor_type"):
                self.elem_types.setdefault(vi.name, vi.type.tensor_type.elem_type)
        self.graph_inputs = [i.name for i in graph.input if i.name not in self.initializers]
        self.uses: dict[str, list[_Use]] = {}
        self.node_outputs: list[str] = []
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            for index, name in enumerate(node.input):
                if name:
                    self.uses.setdefault(name, []).append(_Use(node.op_type, index, attrs))
            self.node_outputs.extend(o for o in node.output if o)

    @classmethod
    def of(cls, model: Any) -> ModelView | None:
        """Accept None, a ModelView, a ModelGraph (has ``.proto``), a ModelProto or a path."""
        if model is None or isinstance(model, ModelView):
            return model
        if isinstance(model, onnx.ModelProto):
            return cls(_with_shapes(model), model.graph.name or "<model>")
        proto = getattr(model, "proto", None)
        if isinstance(proto, onnx.ModelProto):
            return cls(proto, str(getattr(model, "path", "<model>")))
        if isinstance(model, (str, Path)):
            try:
                loaded = onnx.load(str(model), load_external_data=False)
            except Exception as exc:  # onnx raises DecodeError, OSError, ...
                raise ModelLoadError(f"cannot read model: {exc}", path=str(model)) from exc
            return cls(_with_shapes(loaded), str(model))
        raise EncodingsError(f"not a model: {type(model).__name__}")

    def is_float(self, name: str) -> bool:
        """Unknown types count as float: a missing value_info must not hide a tensor."""
        elem = self.elem_types.get(name)
        return elem is None or elem in FLOAT_TYPES

    def quantizable_tensors(self) -> list[str]:
        """Float graph inputs, node outputs and the float initializers the QDQ build quantises."""
        names = [n for n in self.graph_inputs if self.is_float(n)]
        names += [n for n in self.node_outputs if self.is_float(n)]
        names += [
            n
            for n in self.initializers
            if self.is_float(n)
            and any(is_quantised_input(u.op_type, u.index) for u in self.uses.get(n, []))
        ]
        return list(dict.fromkeys(names))

    def kind_of(self, name: str) -> str:
        if name not in self.initializers:
            return "activation"
        for use in self.uses.get(name, []):
            role = _WEIGHT_ROLES.get(use.op_type, {}).get(use.index)
            if role and role[0] == "bias":
                return "bias"
        return "param"

    def axis_for(self, name: str, channels: int) -> tuple[int, str | None]:
        """Per-channel axis of a weight from its consumer; the note says when it was guessed."""
        dims = self.initializers.get(name)
        for use in self.uses.get(name, []):
            role = _WEIGHT_ROLES.get(use.op_type, {}).get(use.index)
            if role is None:
                continue
            axis = role[1]
            if use.op_type == "Gemm" and use.index == 1:
                axis = 0 if use.attrs.get("transB", 0) else 1
            if dims is not None and axis < 0:
                axis += len(dims)
            return max(axis, 0), None
        if dims:
            matches = [i for i, d in enumerate(dims) if d == channels]
            if len(matches) == 1:
                return matches[0], (
                    f"tensor '{name}': per-channel axis {matches[0]} inferred from its shape "
                    f"{dims} (no Conv/Gemm/MatMul consumer)"
                )
        return 0, f"tensor '{name}': per-channel axis unknown, assumed 0"

    def channels_on(self, name: str, axis: int) -> int | None:
        dims = self.initializers.get(name)
        if dims is None:
            return None
        norm = axis + len(dims) if axis < 0 else axis
        return dims[norm] if 0 <= norm < len(dims) else None


def _with_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(proto)
    except Exception:  # inference is a bonus (for float-ness); the graph itself is enough
        return proto


@dataclass
class CoverageReport:
    """Which encodings match nothing in the model, and which quantizable tensors have none."""

    total_encodings: int
    quantizable: int
    covered: int
    unknown_tensors: list[str] = field(default_factory=list)
    missing_tensors: list[str] = field(default_factory=list)
    float_tensors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.unknown_tensors and not self.missing_tensors

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "total_encodings": self.total_encodings,
            "quantizable": self.quantizable,
            "covered": self.covered,
            "unknown_tensors": list(self.unknown_tensors),
            "missing_tensors": list(self.missing_tensors),
            "float_tensors": list(self.float_tensors),
            "notes": list(self.notes),
            "complete": self.complete,
        }


def coverage(encset: EncodingSet, model_or_names: Any) -> CoverageReport:
    """Compare an encoding set with a model (ModelGraph/ModelProto/path) or a list of the
    quantizable tensor names. Float fallbacks count as covered (the user chose float)."""
    if isinstance(model_or_names, (str, Path, onnx.ModelProto, ModelView)) or hasattr(
        model_or_names, "proto"
    ):
        view = ModelView.of(model_or_names)
        names = view.quantizable_tensors() if view else []
    elif isinstance(model_or_names, Iterable):
        names = list(dict.fromkeys(str(n) for n in model_or_names))
    else:
        raise EncodingsError(f"coverage needs a model or tensor names, not {model_or_names!r}")
    known = set(names)
    return CoverageReport(
        total_encodings=len(encset),
        quantizable=len(names),
        covered=sum(1 for n in names if n in encset),
        unknown_tensors=[t for t in encset if t not in known],
        missing_tensors=[n for n in names if n not in encset],
        float_tensors=[t for t in encset if encset[t].is_float],
    )
