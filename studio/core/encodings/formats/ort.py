"""ONNX Runtime ``extra_options["TensorQuantOverrides"]`` (onnxruntime.quantization).

What ORT expects (read from tensor_quant_overrides.py / qdq_quantizer.py / base_quantizer.py
of onnxruntime 1.32): tensor name -> list of dicts; per-tensor is one dict with ``quant_type``
(a ``QuantType``), ``scale`` (numpy float32: QuantizationParams rejects other dtypes) and
``zero_point`` (numpy of the quant type's dtype); per-channel is one dict PER CHANNEL with a
scalar scale/zero point each and ``axis`` in every dict (ORT validates the count against the
initializer's shape). ``symmetric``/``rmin``/``rmax`` may not be mixed with scale/zero_point.

Two things have no override: a float fallback (ORT keeps a tensor float only by not quantizing
its nodes) and a bias (ORT derives it as input_scale * weight_scale, int32, exactly our rule;
an override would make ORT quantize the bias as a weight; a bias of another bitwidth does
get an override, as that is what it asks for). Both are returned separately so the
caller can act on them, and kept in the JSON file form so a round trip loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.encodings._fields import Fields
from studio.core.encodings.encoding import Encoding
from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.formats._common import build_float, build_from_zero_points
from studio.core.encodings.model_info import ModelView
from studio.core.errors import EncodingsError

FORMAT = "ort-tensor-quant-overrides"
SCHEMA_VERSION = 1
_QUANT_TYPES = {
    "uint8": "QUInt8",
    "int8": "QInt8",
    "uint16": "QUInt16",
    "int16": "QInt16",
    "uint4": "QUInt4",
    "int4": "QInt4",
}
_NP = {
    "uint8": np.uint8,
    "int8": np.int8,
    "uint16": np.uint16,
    "int16": np.int16,
    "uint4": np.uint8,  # ORT's ONNX_TYPE_TO_NP_TYPE stores 4-bit zero points in 8-bit arrays
    "int4": np.int8,
}
_FROM_QUANT_TYPE = {v: k for k, v in _QUANT_TYPES.items()}


@dataclass
class OrtOverrides:
    """``overrides`` goes to ``extra_options["TensorQuantOverrides"]``; the rest needs the
    caller's attention (exclude float tensors' nodes; ORT computes biases itself)."""

    overrides: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    float_tensors: dict[str, int] = field(default_factory=dict)
    biases: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _qtype_for(enc: Encoding) -> str:
    """ORT QDQ for QNN: symmetric weights signed (zp 0), everything else unsigned."""
    qtype = enc.onnx_qtype()
    if qtype not in _QUANT_TYPES:
        raise EncodingsError(f"tensor '{enc.tensor}': {qtype} has no ONNX Runtime QuantType")
    return qtype


def to_overrides(encset: EncodingSet) -> OrtOverrides:
    """Live objects (QuantType enums, numpy arrays) ready for ``quantize_static``."""
    from onnxruntime.quantization import QuantType

    result = OrtOverrides()
    for name, entries in _entries(encset, result).items():
        result.overrides[name] = [
            {
                **{k: v for k, v in e.items() if k not in ("quant_type", "scale", "zero_point")},
                "quant_type": QuantType[e["quant_type"]],
                "scale": np.asarray(e["scale"], dtype=np.float32),
                "zero_point": np.asarray(e["zero_point"], dtype=_NP[e["_qtype"]]),
            }
            for e in entries
        ]
        for e in result.overrides[name]:
            e.pop("_qtype", None)
    return result


def plan(encset: EncodingSet) -> OrtOverrides:
    """The JSON-able overrides (quant types by name, plain numbers), without importing ORT."""
    result = OrtOverrides()
    result.overrides = _entries(encset, result)
    for chans in result.overrides.values():
        for entry in chans:
            entry.pop("_qtype")
    return result


def _entries(encset: EncodingSet, result: OrtOverrides) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for enc in encset.values():
        if enc.is_float:
            result.float_tensors[enc.tensor] = enc.bitwidth
            continue
        if enc.kind == "bias" and enc.bitwidth == 32:
            result.biases.append(enc.tensor)  # ORT makes it: int32, input_scale * weight_scale
            continue
        qtype = _qtype_for(enc)
        f32 = enc.onnx_scale()
        if not (np.all(np.isfinite(f32)) and np.all(f32 > 0)):
            raise EncodingsError(
                f"tensor '{enc.tensor}': scale {enc.scale} does not fit a float32 (ORT scales are float32)"
            )
        zps = enc.onnx_zero_point(qtype.startswith("int"))
        chans = []
        for i in range(enc.channels):
            entry: dict[str, Any] = {
                "quant_type": _QUANT_TYPES[qtype],
                "scale": float(np.float32(enc.scale[i])),
                "zero_point": int(zps[i]),
                "_qtype": qtype,
            }
            if enc.per_channel:
                entry["axis"] = enc.axis
            chans.append(entry)
        out[enc.tensor] = chans
    if result.float_tensors:
        result.warnings.append(
            f"{len(result.float_tensors)} float-fallback tensor(s) have no ORT override: "
            "leave their nodes out of nodes_to_quantize"
        )
    return out


def write(encset: EncodingSet) -> dict[str, Any]:
    """The JSON file form: plain numbers, quant types by name, plus what ORT cannot hold."""
    result = OrtOverrides()
    entries = _entries(encset, result)
    for chans in entries.values():
        for e in chans:
            e.pop("_qtype")
    biases = {}
    for name in result.biases:
        enc = encset[name]
        biases[name] = {"scale": list(enc.scale), "zero_point": enc.onnx_zero_point(True)}
        if enc.per_channel:
            biases[name]["axis"] = enc.axis
    return {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        "TensorQuantOverrides": entries,
        "float_tensors": result.float_tensors,
        "bias_encodings": biases,
        "kinds": {e.tensor: e.kind for e in encset.values()},
        "symmetric": [e.tensor for e in encset.values() if not e.is_float and e.symmetric],
    }


def looks_like(data: Any) -> bool:
    return isinstance(data, dict) and (
        data.get("format") == FORMAT or isinstance(data.get("TensorQuantOverrides"), dict)
    )


def read(data: Any, source: str, view: ModelView | None) -> tuple[EncodingSet, list[str]]:
    top = Fields(data, source, "<file>")
    if "schema_version" in data and top.raw("schema_version") != SCHEMA_VERSION:
        raise top.error("schema_version", f"unsupported version {data['schema_version']!r}")
    overrides = top.raw("TensorQuantOverrides")
    if not isinstance(overrides, dict):
        raise top.error("TensorQuantOverrides", "expected an object")
    kinds = top.raw("kinds", {})
    sym_list = top.raw("symmetric", [])
    floats = top.raw("float_tensors", {})
    biases = top.raw("bias_encodings", {})
    for key, value, typ in (
        ("kinds", kinds, dict),
        ("symmetric", sym_list, list),
        ("float_tensors", floats, dict),
        ("bias_encodings", biases, dict),
    ):
        if not isinstance(value, typ):
            raise top.error(key, f"expected a JSON {'object' if typ is dict else 'list'}")
    if not all(isinstance(n, str) for n in sym_list):
        raise top.error("symmetric", "expected a list of tensor names")
    symmetric = set(sym_list)
    warnings: list[str] = []
    out = EncodingSet(meta={"source_format": "ort"})
    for name, chans in overrides.items():
        f = Fields({"v": chans}, source, name)
        if not isinstance(chans, list) or not chans:
            raise f.error(None, "expected a non-empty list of override dicts")
        fs = [Fields(c, source, name) for c in chans]
        qt = fs[0].choice("quant_type", sorted(_FROM_QUANT_TYPE))
        if any(c.raw("quant_type", qt) != qt for c in fs):
            raise fs[0].error("quant_type", "channels disagree")
        qtype = _FROM_QUANT_TYPE[qt]
        signed, bw = qtype.startswith("int"), int(qtype.lstrip("uint"))
        scales = [c.number("scale") for c in fs]
        zps = [c.int("zero_point") for c in fs]
        axis = fs[0].opt_int("axis")
        hint = kinds.get(name, "param" if axis is not None else "activation")
        if name in out:
            raise fs[0].error(None, "appears twice")
        sym = name in symmetric if "symmetric" in data else signed and not any(zps)
        out.set(
            build_from_zero_points(
                fs[0],
                name,
                scales,
                zps,
                bw,
                signed,
                sym,
                kind_hint=hint,
                axis=axis,
                view=view,
                warnings=warnings,
            )
        )
    for name, bw in floats.items():
        f = Fields({"bitwidth": bw}, source, name)
        if name in out:
            raise f.error(None, "appears twice")
        out.set(build_float(f, name, f.int("bitwidth"), kinds.get(name, "activation"), view))
    for name, entry in biases.items():
        f = Fields(entry, source, name)
        if name in out:
            raise f.error(None, "appears twice")
        scales = f.float_list("scale")
        zps = f.int_list("zero_point", [0] * len(scales))
        out.set(
            build_from_zero_points(
                f,
                name,
                scales,
                zps,
                32,
                True,  # a bias is int32
                name in symmetric if "symmetric" in data else not any(zps),
                kind_hint="bias",
                axis=f.opt_int("axis"),
                view=view,
                warnings=warnings,
            )
        )
    return out, warnings
