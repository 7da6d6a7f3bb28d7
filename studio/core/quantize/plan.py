"""QuantPlan: every quantisation decision a user made, separate from the statistics.

Why separate: an edit (a bitwidth, a range, an imported file) changes the plan, never the
calibration stats, so rebuilding the QDQ model after an edit needs no recalibration (DESIGN.md
"How data moves" 2). The plan is saved in the project as ``quant_plan`` (``to_json``/``from_json``).

Precedence for each tensor: the user's per-tensor override > an imported encodings file >
the plan's defaults applied to the calibrated range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.calibration import METHODS, CalibrationStats
from studio.core.encodings import Encoding, EncodingSet
from studio.core.encodings.model_info import ModelView
from studio.core.errors import ConfigError
from studio.core.quantize.saturation import clip_to, saturation_limits
from studio.core.quantize.scope import quantised_initializers

SCHEMA_VERSION = 1
ACT_BITWIDTHS = (8, 16)
WEIGHT_BITWIDTHS = (4, 8, 16)
# ops whose input 1 is a weight ORT quantises as a weight (with weight_type), and its axis
WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
# single-consumer activations ORT folds into their producer: the input takes the output's range
FOLDABLE_ACTIVATIONS = {"Relu", "Clip"}


@dataclass
class TensorOverride:
    """A user's edit of one tensor; ``None`` fields fall back to the import or the defaults.

    ``dtype="float"`` keeps the tensor in float (its nodes run unquantised, usually on CPU).
    ``scale``/``offset`` (QNN convention) win over ``min``/``max``, which win over ``method``.
    """

    tensor: str
    bitwidth: int | None = None
    dtype: str = "int"
    symmetric: bool | None = None
    per_channel: bool | None = None
    min: float | None = None
    max: float | None = None
    scale: list[float] | None = None
    offset: list[int] | None = None
    method: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorOverride:
        if not isinstance(data, dict) or not isinstance(data.get("tensor"), str):
            raise ConfigError(f"quant_plan override must be an object with a 'tensor': {data!r}")
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ConfigError(
                f"quant_plan override '{data['tensor']}': unknown keys {sorted(extra)}"
            )
        ov = cls(**data)
        ov.validate()
        return ov

    def validate(self) -> None:
        t = self.tensor
        if self.dtype not in ("int", "float"):
            raise ConfigError(f"tensor '{t}': dtype must be 'int' or 'float', got {self.dtype!r}")
        if self.bitwidth is not None and self.bitwidth not in (4, 8, 16, 32):
            raise ConfigError(f"tensor '{t}': bitwidth {self.bitwidth} not one of 4, 8, 16")
        if (self.min is None) != (self.max is None):
            raise ConfigError(f"tensor '{t}': give both min and max, or neither")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"tensor '{t}': min {self.min} is above max {self.max}")
        if (self.scale is None) != (self.offset is None):
            raise ConfigError(f"tensor '{t}': give both scale and offset, or neither")
        if self.method is not None and self.method not in METHODS:
            raise ConfigError(f"tensor '{t}': unknown method {self.method!r}")


@dataclass
class QuantPlan:
    """Defaults + per-tensor overrides + imported encodings. See the module docstring."""

    activation_bitwidth: int = 8
    weight_bitwidth: int = 8
    per_channel: bool = True
    weight_symmetric: bool = True
    activation_symmetric: bool = False
    method: str = "minmax"
    percentile: float = 99.99
    overrides: dict[str, TensorOverride] = field(default_factory=dict)
    imported: EncodingSet | None = None
    imported_source: str | None = None
    # 4-bit weights in blocks of this many input channels (QNN BQ/LPBQ), where HTP takes them
    weight_block_size: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.activation_bitwidth not in ACT_BITWIDTHS:
            raise ConfigError(
                f"activation bitwidth must be 8 or 16, got {self.activation_bitwidth}"
            )
        if self.weight_bitwidth not in WEIGHT_BITWIDTHS:
            raise ConfigError(f"weight bitwidth must be 4, 8 or 16, got {self.weight_bitwidth}")
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r} (choose {', '.join(METHODS)})")
        if self.weight_block_size is not None and (
            self.weight_block_size < 16 or self.weight_block_size & (self.weight_block_size - 1)
        ):
            raise ConfigError(
                f"weight block size must be a power of two >= 16, got {self.weight_block_size}"
            )
        if not 50.0 < float(self.percentile) <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {self.percentile}")

    # ----- edits ----------------------------------------------------------------------------
    def set_override(self, override: TensorOverride) -> None:
        override.validate()
        self.overrides[override.tensor] = override

    def clear_override(self, tensor: str) -> None:
        self.overrides.pop(tensor, None)

    def copy(self) -> QuantPlan:
        return QuantPlan.from_json(self.to_json())

    # ----- persistence ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "activation_bitwidth": self.activation_bitwidth,
            "weight_bitwidth": self.weight_bitwidth,
            "per_channel": self.per_channel,
            "weight_symmetric": self.weight_symmetric,
            "activation_symmetric": self.activation_symmetric,
            "method": self.method,
            "percentile": self.percentile,
            "overrides": [o.to_json() for o in self.overrides.values()],
            "imported": self.imported.to_json() if self.imported is not None else None,
            "imported_source": self.imported_source,
            "weight_block_size": self.weight_block_size,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuantPlan:
        if not isinstance(data, dict):
            raise ConfigError("quant_plan must be a JSON object")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(f"quant_plan schema_version {version!r} is not supported")
        overrides = {}
        for item in data.get("overrides") or []:
            ov = TensorOverride.from_json(item)
            overrides[ov.tensor] = ov
        imported = data.get("imported")
        try:
            return cls(
                activation_bitwidth=int(data.get("activation_bitwidth", 8)),
                weight_bitwidth=int(data.get("weight_bitwidth", 8)),
                per_channel=bool(data.get("per_channel", True)),
                weight_symmetric=bool(data.get("weight_symmetric", True)),
                activation_symmetric=bool(data.get("activation_symmetric", False)),
                method=str(data.get("method", "minmax")),
                percentile=float(data.get("percentile", 99.99)),
                overrides=overrides,
                imported=EncodingSet.from_json(imported) if imported else None,
                imported_source=data.get("imported_source"),
                weight_block_size=(
                    int(data["weight_block_size"]) if data.get("weight_block_size") else None
                ),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"malformed quant_plan: {exc}") from exc

    # ----- decisions ------------------------------------------------------------------------
    def weight_bits(self, tensor: str) -> int:
        """Bitwidth a weight is quantised to: its override's, else the plan's weight width.

        Whether the weight stays float, or a user's scale replaces it, is each caller's own
        question (an edit check, a technique, a move each skip such weights differently).
        """
        ov = self.overrides.get(tensor)
        return ov.bitwidth if ov is not None and ov.bitwidth else self.weight_bitwidth

    def activation_bits(self, tensor: str) -> int | None:
        """Bitwidth of an activation, or None when it stays float."""
        ov = self.overrides.get(tensor)
        if ov is not None and ov.dtype == "float":
            return None
        if ov is not None and ov.bitwidth:
            return ov.bitwidth
        imp = self.imported.get(tensor) if self.imported is not None else None
        if imp is not None:
            return None if imp.is_float else imp.bitwidth
        return self.activation_bitwidth

    def encodings(
        self,
        stats: CalibrationStats,
        model: Any = None,
        *,
        weights: str = "all",
    ) -> EncodingSet:
        """The encodings this plan asks for: activations from ``stats`` + weights from data.

        ``model`` (ModelProto or ModelGraph) defaults to the stats' prepared model, whose tensor
        names the stats use; pass that one (BatchNorm is folded there).
        ``weights``: "all", "edited" (only weights with an override or an import: what the builder
        needs, ORT computes the rest from the same rule) or "none". The
        QDQ builder may still adjust types at mixed-precision boundaries; the built model's own
        encodings are read back by ``studio.core.quantize.encodings_of_qdq``.
        """
        base_dir = ""  # where weights kept on disk are read from (a graph opened without them)
        if model is None:
            proto = onnx.load(str(stats.prepared_model))
        elif isinstance(model, onnx.ModelProto):
            proto = model
        else:  # a ModelGraph of the prepared model (has .proto; large weights stay in its file)
            proto = model.proto
            path = getattr(model, "path", None)
            base_dir = str(Path(path).parent) if path else ""
        view = ModelView(proto)
        out = EncodingSet(
            meta={"plan": {k: v for k, v in self.to_json().items() if k != "imported"}}
        )
        ranges = self._activation_ranges(stats, proto)
        for name, (lo, hi) in ranges.items():
            out.set(self._activation_encoding(name, lo, hi))
        quantised = quantised_initializers(proto)  # not a Clip's min/max, a Resize's scales...
        for init in proto.graph.initializer:
            if init.name not in quantised:
                continue
            if weights == "none":
                break
            edited = init.name in self.overrides or (
                self.imported is not None and init.name in self.imported
            )
            if weights == "edited" and not edited:
                continue
            kind = view.kind_of(init.name)
            if kind == "bias":
                continue  # ORT derives biases: int32, input_scale * weight_scale
            enc = self._weight_encoding(init, view, base_dir)
            if enc is not None:
                out.set(enc)
        return out

    def _activation_ranges(
        self, stats: CalibrationStats, proto: onnx.ModelProto
    ) -> dict[str, tuple[float, float]]:
        ranges: dict[str, tuple[float, float]] = {}
        for name in stats.tensor_names():
            ov = self.overrides.get(name)
            method = ov.method if ov is not None and ov.method else self.method
            bits = self.activation_bits(name) or 16
            ranges[name] = stats.range(name, method, bitwidth=bits, percentile=self.percentile)
        # A tensor only Tanh/Sigmoid/HardSigmoid read needs its range only up to where they
        # saturate (``saturation``): magika's Tanh input spans +-9500, tanh is flat past +-4.
        # Before the fold below, so that a Relu folded into such a tensor's producer follows.
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in proto.graph.node:
            for i in node.input:
                consumers.setdefault(i, []).append(node)
        limits = saturation_limits(proto, ranges, self.activation_bits, consumers)
        for name, limit in limits.items():
            ranges[name] = clip_to(ranges[name], limit)
        # A lone Relu/Clip after a tensor is folded into its producer by ORT (and QNN): the
        # producer then emits the activation's range. Mirror it so the plan shows what runs.
        for node in proto.graph.node:
            if node.op_type not in FOLDABLE_ACTIVATIONS or not node.input:
                continue
            src, dst = node.input[0], node.output[0]
            if src in ranges and dst in ranges and len(consumers.get(src, [])) == 1:
                ov = self.overrides.get(src)
                if ov is None:
                    ranges[src] = ranges[dst]
                else:
                    # an edit of bitwidth/symmetry/method keeps the fold (the same rule as the
                    # default path, at the edit's bits and method); an explicit min/max or
                    # scale/offset is used as given by _activation_encoding
                    dst_ov = self.overrides.get(dst)
                    method = ov.method or (dst_ov.method if dst_ov and dst_ov.method else None)
                    bits = self.activation_bits(src) or 16
                    ranges[src] = stats.range(
                        dst, method or self.method, bitwidth=bits, percentile=self.percentile
                    )
        return ranges

    def _activation_encoding(self, name: str, lo: float, hi: float) -> Encoding:
        ov = self.overrides.get(name)
        imp = self.imported.get(name) if self.imported is not None else None
        bits = self.activation_bits(name)
        if bits is None:
            return Encoding.float_fallback(name, 16)
        symmetric = self.activation_symmetric
        if ov is not None and ov.symmetric is not None:
            symmetric = ov.symmetric
        if ov is not None and ov.scale is not None and ov.offset is not None:
            return Encoding.from_scale_offset(name, ov.scale, ov.offset, bits, symmetric=symmetric)
        if ov is not None and ov.min is not None and ov.max is not None:
            return Encoding.from_range(name, ov.min, ov.max, bits, symmetric=symmetric)
        if (
            imp is not None
            and not imp.is_float
            and (ov is None or ov.bitwidth in (None, imp.bitwidth))
        ):
            return Encoding.from_json({**imp.to_json(), "tensor": name, "kind": "activation"})
        return Encoding.from_range(name, lo, hi, bits, symmetric=symmetric)

    def _weight_encoding(
        self, init: onnx.TensorProto, view: ModelView, base_dir: str = ""
    ) -> Encoding | None:
        name = init.name
        ov = self.overrides.get(name)
        imp = self.imported.get(name) if self.imported is not None else None
        if ov is not None and ov.dtype == "float":
            return Encoding.float_fallback(name, 32, kind="param")
        if imp is not None and (ov is None or ov.bitwidth is None):
            return Encoding.from_json({**imp.to_json(), "tensor": name, "kind": "param"})
        uses = view.uses.get(name, [])
        is_weight = any(u.op_type in WEIGHT_OPS and u.index == 1 for u in uses)
        data = numpy_helper.to_array(init, base_dir).astype(np.float64)
        if not is_weight:
            # other constants (Add/Mul operands...) are quantised like activations by ORT
            bits = (ov.bitwidth if ov and ov.bitwidth else None) or self.activation_bitwidth
            # QNN HTP takes a 16-bit LayerNorm scale only signed symmetric (INT16): an unsigned
            # one was refused on every architecture (bench/weight_bits_probe.py)
            ln_scale = any(u.op_type == "LayerNormalization" and u.index == 1 for u in uses)
            return Encoding.from_range(
                name, data.min(), data.max(), bits, symmetric=bits == 16 and ln_scale, kind="param"
            )
        bits = (ov.bitwidth if ov and ov.bitwidth else None) or self.weight_bitwidth
        symmetric = self.weight_symmetric if ov is None or ov.symmetric is None else ov.symmetric
        if ov is not None and ov.scale is not None and ov.offset is not None:
            axis = None
            if len(ov.scale) > 1:
                axis, _ = view.axis_for(name, len(ov.scale))
            return Encoding.from_scale_offset(
                name, ov.scale, ov.offset, bits, symmetric=symmetric, axis=axis, kind="param"
            )
        per_channel = self.per_channel if ov is None or ov.per_channel is None else ov.per_channel
        matmul_only = all(u.op_type == "MatMul" for u in uses)
        if per_channel and not matmul_only and data.ndim >= 2:
            axis, _ = view.axis_for(name, 0)
            moved = np.moveaxis(data, axis, 0).reshape(data.shape[axis], -1)
            return Encoding.from_range(
                name,
                moved.min(axis=1),
                moved.max(axis=1),
                bits,
                symmetric=symmetric,
                axis=axis,
                kind="param",
            )
        return Encoding.from_range(
            name, data.min(), data.max(), bits, symmetric=symmetric, kind="param"
        )
