"""AIMET encodings files: 1.0.0 (AIMET's default export) and 2.0.0 (QuantizeLinear-shaped).

1.0.0: lists of ``{name, enc_type, dtype, bw, is_sym, scale[], offset[]}``; PER_CHANNEL entries
carry no axis (taken from the consuming op via the model); offsets may be floats (-128.0).
2.0.0: ``encodings: [{name, output_dtype, y_scale, y_zero_point (omitted when 0), axis,
block_size}]``, int32 bias entries included; it does not say which tensors are weights, so
without a model an entry with an axis is read as a weight and int32 as a bias.

Block quantization: 2.0.0 entries with ``block_size`` (the block scales nested as a tensor) are
read and written (the studio's block-wise INT4 weights); 1.0.0 PER_BLOCK/LPBQ entries raise
:class:`Unsupported` naming the tensor (the loader can skip it with a warning instead).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from studio.core.encodings._fields import Fields
from studio.core.encodings.encoding import Encoding, parse_qtype
from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.formats._common import (
    Unsupported,
    build_float,
    build_from_zero_points,
    build_int,
)
from studio.core.encodings.model_info import ModelView

V1 = "1.0.0"
V2 = "2.0.0"
ENC_TYPES = ("PER_TENSOR", "PER_CHANNEL", "PER_BLOCK", "LPBQ")
FLOAT_OUTPUT = {"float16": 16, "float32": 32}  # our spelling of a float fallback in 2.0.0


def looks_like_v1(data: Any) -> bool:
    return isinstance(data, dict) and any(
        isinstance(data.get(s), list) for s in ("activation_encodings", "param_encodings")
    )


def looks_like_v2(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("encodings"), list)
        and "schema_version" not in data
    )


def _check_version(top: Fields, expected: str) -> None:
    version = top.raw("version", None)
    if version != expected:
        raise top.error(
            "version", f"unsupported AIMET encodings version {version!r} (expected {expected})"
        )


def _unsupported(source: str, name: str, what: str) -> Unsupported:
    return Unsupported(
        f"tensor '{name}': {what} (block quantization) is not supported yet; "
        "re-export it per-channel or skip it",
        path=source,
    )


def _read_entries(
    entries: Any,
    where: str,
    source: str,
    out: EncodingSet,
    parse: Callable[[Fields, str], Encoding],
    skip_unsupported: bool,
    warnings: list[str],
) -> None:
    """Each named entry into ``out`` as ``parse`` reads it. A name given twice is an error; so is
    an entry the studio cannot represent (block quantization) unless ``skip_unsupported``: then
    a warning, and the tensor stays unencoded."""
    for index, entry in enumerate(entries):
        name = Fields(entry, source, f"{where}[{index}]").str("name")
        f = Fields(entry, source, name)
        if name in out:
            raise f.error("name", "appears twice")
        try:
            out.set(parse(f, name))
        except Unsupported as exc:
            if not skip_unsupported:
                raise
            warnings.append(f"{exc}: skipped, the tensor stays unencoded")


# --------------------------------------------------------------------------- 1.0.0
def read_v1(
    data: Any, source: str, view: ModelView | None, skip_unsupported: bool = False
) -> tuple[EncodingSet, list[str]]:
    top = Fields(data, source, "<file>")
    _check_version(top, V1)
    warnings: list[str] = []
    qargs = data.get("quantizer_args", {})
    out = EncodingSet(
        meta={"source_format": "aimet1", "quantizer_args": qargs if isinstance(qargs, dict) else {}}
    )
    for section, hint in (("activation_encodings", "activation"), ("param_encodings", "param")):
        entries = top.raw(section, [])
        if not isinstance(entries, list):
            raise top.error(section, "expected a list of encoding objects")
        parse = partial(_v1_entry, hint=hint, view=view, warnings=warnings)
        _read_entries(entries, section, source, out, parse, skip_unsupported, warnings)
    return out, warnings


def _v1_entry(
    f: Fields, name: str, hint: str, view: ModelView | None, warnings: list[str]
) -> Encoding:
    enc_type = f.choice("enc_type", ENC_TYPES, default="PER_TENSOR")
    if enc_type in ("PER_BLOCK", "LPBQ"):
        raise _unsupported(f.source, name, enc_type)
    dtype = f.choice("dtype", ("INT", "FLOAT", "int", "float"), default="INT").lower()
    bitwidth = f.int("bw")
    if dtype == "float":
        return build_float(f, name, bitwidth, hint, view)
    scales = f.float_list("scale")
    offsets = f.int_list("offset")
    per_channel = enc_type == "PER_CHANNEL"
    if not per_channel and len(scales) != 1:
        raise f.error("scale", f"PER_TENSOR entry with {len(scales)} scales")
    return build_int(
        f,
        name,
        scales,
        offsets,
        bitwidth,
        f.bool("is_sym", False),
        kind_hint=hint,
        per_channel=per_channel,
        axis=f.opt_int("axis"),
        view=view,
        warnings=warnings,
    )


def write_v1(encset: EncodingSet) -> dict[str, Any]:
    acts, params = [], []
    for enc in encset.values():
        (acts if enc.kind == "activation" else params).append(_v1_dict(enc))
    qargs = (
        encset.meta.get("quantizer_args") if encset.meta.get("source_format") == "aimet1" else {}
    )
    return {
        "version": V1,
        "excluded_layers": [],
        "quantizer_args": dict(qargs or {}),
        "activation_encodings": acts,
        "param_encodings": params,
    }


def _v1_dict(enc: Encoding) -> dict[str, Any]:
    if enc.is_float:
        return {"name": enc.tensor, "enc_type": "PER_TENSOR", "dtype": "FLOAT", "bw": enc.bitwidth}
    return {
        "name": enc.tensor,
        "enc_type": "PER_CHANNEL" if enc.per_channel else "PER_TENSOR",
        "dtype": "INT",
        "bw": enc.bitwidth,
        "is_sym": enc.symmetric,
        "scale": list(enc.scale),
        "offset": list(enc.offset),
    }


# --------------------------------------------------------------------------- 2.0.0
def read_v2(
    data: Any, source: str, view: ModelView | None, skip_unsupported: bool = False
) -> tuple[EncodingSet, list[str]]:
    top = Fields(data, source, "<file>")
    _check_version(top, V2)
    warnings: list[str] = []
    out = EncodingSet(meta={"source_format": "aimet2"})
    parse = partial(_v2_entry, view=view, warnings=warnings)
    _read_entries(top.raw("encodings"), "encodings", source, out, parse, skip_unsupported, warnings)
    return out, warnings


def _v2_entry(f: Fields, name: str, view: ModelView | None, warnings: list[str]) -> Encoding:
    block = f.raw("block_size", None)
    if block is not None:
        return _v2_block_entry(f, name, block)
    output_dtype = f.str("output_dtype")
    hint = "param" if f.raw("axis", None) is not None else "activation"
    if output_dtype in FLOAT_OUTPUT:
        return build_float(f, name, FLOAT_OUTPUT[output_dtype], hint, view)
    signed, bitwidth = f.wrap(lambda: parse_qtype(name, output_dtype))
    scales = f.float_list("y_scale")
    zps = f.int_list("y_zero_point", [0] * len(scales))
    if len(zps) == 1 and len(scales) > 1:
        zps = zps * len(scales)
    if len(zps) != len(scales):
        raise f.error("y_zero_point", f"{len(zps)} zero points for {len(scales)} scales")
    symmetric = signed and all(z == 0 for z in zps)
    if bitwidth == 32:
        hint = "bias"
    return build_from_zero_points(
        f,
        name,
        scales,
        zps,
        bitwidth,
        signed,
        symmetric,
        kind_hint=hint,
        axis=f.opt_int("axis"),
        view=view,
        warnings=warnings,
    )


def _v2_block_entry(f: Fields, name: str, block: Any) -> Encoding:
    """A block-wise (BQ/LPBQ) weight: symmetric signed codes, ``y_scale`` nested as the block
    scale tensor (the weight's shape with ``axis`` divided by ``block_size``)."""

    output_dtype = f.str("output_dtype")
    signed, bitwidth = f.wrap(lambda: parse_qtype(name, output_dtype))
    if not isinstance(block, int) or block < 1:
        raise f.error("block_size", f"{block!r} is not a positive whole number")
    raw = f.raw("y_scale")
    try:
        shape = [int(d) for d in np.asarray(raw, dtype=np.float64).shape]
    except (TypeError, ValueError) as exc:
        raise f.error("y_scale", "block scales must be a rectangular nested list") from exc
    scales = f.float_list("y_scale")
    zps = f.int_list("y_zero_point", [0] * len(scales))
    if not signed or any(zps):
        raise f.error("y_zero_point", "block-wise weights must be symmetric (signed, zero point 0)")
    axis = f.opt_int("axis")
    if axis is None:
        raise f.error("axis", "a block-wise encoding needs the axis its blocks run along")
    enc = f.wrap(
        lambda: Encoding.from_onnx(
            name, scales, [0] * len(scales), output_dtype, axis=axis, kind="param"
        )
    )
    enc.block_size, enc.block_shape = block, shape
    return enc


def write_v2(encset: EncodingSet) -> dict[str, Any]:
    return {"version": V2, "encodings": [_v2_dict(e) for e in encset.values()]}


def _v2_dict(enc: Encoding) -> dict[str, Any]:
    if enc.is_float:
        return {"name": enc.tensor, "output_dtype": f"float{enc.bitwidth}"}
    # Signed exactly when symmetric (or a bias): a signed type with zero point 0 is how the
    # file says "symmetric", so the flag survives a round trip.
    signed = enc.symmetric or enc.kind == "bias" or enc.bitwidth == 32
    zps = enc.onnx_zero_point(signed)
    data: dict[str, Any] = {"name": enc.tensor, "output_dtype": enc.onnx_qtype(signed)}
    if enc.block_size:
        import numpy as np

        data["y_scale"] = np.asarray(enc.scale).reshape(enc.block_shape).tolist()
        data["axis"] = enc.axis
        data["block_size"] = enc.block_size
        return data
    if enc.per_channel:
        data["y_scale"] = list(enc.scale)
        if any(zps):
            data["y_zero_point"] = zps
        data["axis"] = enc.axis
    else:
        data["y_scale"] = enc.scale[0]
        if zps[0]:
            data["y_zero_point"] = zps[0]
    return data
