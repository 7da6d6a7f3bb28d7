"""QNN ``--quantization_overrides`` files: version 0.6.1 and the seed's looser legacy shape.

0.6.1: ``activation_encodings`` / ``param_encodings`` map a tensor name to a LIST of dicts (one
per output channel for per-channel weights), ``is_symmetric`` is the string "True"/"False", a
float fallback is ``{"bitwidth": 16, "dtype": "float"}``; both sections must be present and
``qnn-onnx-converter`` also reads ``quantizer_args``. The per-channel axis is not written: the
converter knows it from the op, and so does :class:`ModelView` on import.

Legacy (no version): a single dict per tensor, a POSITIVE offset (zero point) and top-level
``activation_bitwidth`` / ``param_bitwidth`` / ``bias_bitwidth`` defaults. It is normalised and
every flipped offset is reported.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from studio.core.encodings._fields import Fields
from studio.core.encodings.encoding import Encoding
from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.formats._common import (
    build_float,
    build_int,
    range_warning,
    resolve_kind,
)
from studio.core.encodings.model_info import ModelView
from studio.core.errors import EncodingsError

VERSION = "0.6.1"
SECTIONS = ("activation_encodings", "param_encodings")


def looks_like(data: Any) -> bool:
    return isinstance(data, dict) and any(isinstance(data.get(s), dict) for s in SECTIONS)


def read(data: Any, source: str, view: ModelView | None) -> tuple[EncodingSet, list[str]]:
    top = Fields(data, source, "<file>")
    version = data.get("version")
    legacy = version is None
    if not legacy and version != VERSION:
        raise top.error(
            "version", f"unsupported QNN encodings version {version!r} (reads {VERSION})"
        )
    warnings: list[str] = []
    for section in SECTIONS:
        if section not in data:
            if not legacy:
                raise top.error(section, "missing (0.6.1 files carry both sections)")
        elif not isinstance(data[section], dict):
            raise top.error(section, "expected an object mapping tensor names to encodings")
    qargs = data.get("quantizer_args", {})
    if not isinstance(qargs, dict):
        raise top.error("quantizer_args", "expected an object")
    defaults = {
        "activation": _default_bw(top, data, qargs, "activation_bitwidth"),
        "param": _default_bw(top, data, qargs, "param_bitwidth"),
        "bias": _default_bw(top, data, qargs, "bias_bitwidth") or 32,
    }
    out = EncodingSet(meta={"source_format": "qnn", "quantizer_args": dict(qargs)})
    for section, hint in (("activation_encodings", "activation"), ("param_encodings", "param")):
        for name, value in data.get(section, {}).items():
            if name in out:
                raise EncodingsError(f"tensor '{name}' appears in both sections", path=source)
            if legacy and isinstance(value, dict):
                value = [value]
            f = Fields({"entry": value}, source, name)
            if not isinstance(value, list) or not value:
                raise f.error(None, "expected a non-empty list of encoding dicts")
            out.set(_entry(source, name, value, hint, defaults, legacy, view, warnings))
    if legacy:
        warnings.insert(0, f"{source}: legacy QNN encodings (no version) were normalised to 0.6.1")
    return out, warnings


def _default_bw(top: Fields, data: dict, qargs: dict, key: str) -> int | None:
    if key in data:
        return top.int(key)
    if key in qargs:
        return Fields(qargs, top.source, "<quantizer_args>").int(key)
    return None


def _entry(
    source: str,
    name: str,
    value: list,
    hint: str,
    defaults: dict[str, int | None],
    legacy: bool,
    view: ModelView | None,
    warnings: list[str],
) -> Encoding:
    chans = [Fields(v, source, name) for v in value]
    first = chans[0]
    dtype = first.choice("dtype", ("int", "float"), default="int")
    guess = resolve_kind(name, hint, view, 0)
    if view is None and hint == "param" and name.lower().endswith("bias"):
        guess = "bias"  # only picks the default bitwidth; the model, when given, decides
    kind_default = defaults.get(guess) or defaults[hint]
    bitwidths = [c.int("bitwidth", kind_default) for c in chans]
    if bitwidths[0] is None:
        raise first.error("bitwidth", "missing (and no default bitwidth in the file)")
    if len(set(bitwidths)) > 1 or any(c.raw("dtype", "int") != dtype for c in chans):
        raise first.error("bitwidth", "per-channel entries disagree on bitwidth/dtype")
    bitwidth = bitwidths[0]
    if dtype == "float":
        return build_float(first, name, bitwidth, hint, view)
    syms = [c.bool("is_symmetric", False) for c in chans]
    if len(set(syms)) > 1:
        raise first.error("is_symmetric", "per-channel entries disagree")
    scales, offsets, lows, highs = [], [], [], []
    for c in chans:
        lo, hi = c.number("min", None), c.number("max", None)
        if c.has("scale"):
            scale = c.number("scale")
            offset = c.int("offset") if c.has("offset") else None
            if offset is None:
                if lo is None:
                    raise c.error("offset", "missing (and no min to derive it from)")
                offset = round(lo / scale) if scale > 0 else 0
        elif lo is not None and hi is not None:
            ranged = c.wrap(
                lambda lo=lo, hi=hi: Encoding.from_range(name, lo, hi, bitwidth, syms[0])
            )
            scale, offset = ranged.scale[0], ranged.offset[0]
            lo, hi = None, None
        else:
            raise c.error("scale", "missing (an int entry needs scale/offset or min/max)")
        if offset > 0:
            if not legacy:
                raise c.error("offset", f"{offset} is positive; QNN 0.6.1 offsets are <= 0")
            warnings.append(
                f"{source}: tensor '{name}': positive offset {offset} read as a zero point "
                f"and flipped to {-offset} (QNN convention x = scale*(q+offset))"
            )
            offset = -offset
        scales.append(scale)
        offsets.append(offset)
        lows.append(lo)
        highs.append(hi)
    enc = build_int(
        first,
        name,
        scales,
        offsets,
        bitwidth,
        syms[0],
        kind_hint=hint,
        per_channel=len(chans) > 1,
        axis=None,
        view=view,
        warnings=warnings,
    )
    if all(v is not None for v in lows + highs):
        note = range_warning(first, enc, lows, highs)
        if note:
            warnings.append(note)
    return enc


def write(encset: EncodingSet) -> dict[str, Any]:
    acts: dict[str, list[dict[str, Any]]] = {}
    params: dict[str, list[dict[str, Any]]] = {}
    for enc in encset.values():
        (acts if enc.kind == "activation" else params)[enc.tensor] = _channels(enc)
    return {
        "version": VERSION,
        "activation_encodings": acts,
        "param_encodings": params,
        "quantizer_args": _quantizer_args(encset),
    }


def _channels(enc: Encoding) -> list[dict[str, Any]]:
    if enc.is_float:
        return [{"bitwidth": enc.bitwidth, "dtype": "float"}]
    return [
        {
            "bitwidth": enc.bitwidth,
            "dtype": "int",
            "is_symmetric": "True" if enc.symmetric else "False",
            "min": enc.min[i],
            "max": enc.max[i],
            "scale": enc.scale[i],
            "offset": enc.offset[i],
        }
        for i in range(enc.channels)
    ]


def _quantizer_args(encset: EncodingSet) -> dict[str, Any]:
    """Keep what the source file said; otherwise describe the majority of the encodings."""
    kept = encset.meta.get("quantizer_args")
    if isinstance(kept, dict) and kept:
        return dict(kept)

    def common(kind: str, default: Any, attr: str) -> Any:
        values = [getattr(e, attr) for e in encset.by_kind(kind) if not e.is_float]
        return Counter(values).most_common(1)[0][0] if values else default

    return {
        "activation_bitwidth": common("activation", 8, "bitwidth"),
        "param_bitwidth": common("param", 8, "bitwidth"),
        "bias_bitwidth": common("bias", 32, "bitwidth"),
        "dtype": "int",
        "is_symmetric": "True" if common("param", True, "symmetric") else "False",
        "per_channel_quantization": "True"
        if any(e.per_channel for e in encset.by_kind("param"))
        else "False",
        "quant_scheme": "post_training_tf",
    }
