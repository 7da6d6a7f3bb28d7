"""Pieces every format parser shares: building an Encoding from per-channel lists, with the
model supplying what the file leaves out (bias or weight, the per-channel axis, the channel
count to check against)."""

from __future__ import annotations

import numpy as np

from studio.core.encodings._fields import Fields
from studio.core.encodings.encoding import Encoding
from studio.core.encodings.model_info import ModelView
from studio.core.errors import EncodingsError


class Unsupported(EncodingsError):
    """An entry the studio cannot represent yet (block quantization): skippable on request."""


def resolve_kind(name: str, hint: str, view: ModelView | None, bitwidth: int) -> str:
    """The model knows best; without it a 32-bit parameter is a bias."""
    if view is not None and name in view.initializers:
        return view.kind_of(name)
    if hint == "param" and bitwidth == 32:
        return "bias"
    return hint


def build_int(
    f: Fields,
    name: str,
    scales: list[float],
    offsets: list[int],
    bitwidth: int,
    symmetric: bool,
    *,
    kind_hint: str,
    per_channel: bool,
    axis: int | None,
    view: ModelView | None,
    warnings: list[str],
) -> Encoding:
    """An int encoding; per-channel axis from the file, else the model, else 0 (warned)."""
    kind = resolve_kind(name, kind_hint, view, bitwidth)
    if per_channel and axis is None:
        if view is not None:
            axis, note = view.axis_for(name, len(scales))
        else:
            axis, note = 0, f"tensor '{name}': per-channel axis not in the file and no model given"
        if note:
            warnings.append(f"{f.source}: {note}; using axis {axis}")
    if not per_channel:
        axis = None
    enc = f.wrap(
        lambda: Encoding.from_scale_offset(
            name, scales, offsets, bitwidth, symmetric=symmetric, axis=axis, kind=kind
        )
    )
    check_channels(f, enc, view)
    return enc


def build_from_zero_points(
    f: Fields,
    name: str,
    scales: list[float],
    zero_points: list[int],
    bitwidth: int,
    signed: bool,
    symmetric: bool,
    *,
    kind_hint: str,
    axis: int | None,
    view: ModelView | None,
    warnings: list[str],
) -> Encoding:
    """An int encoding from ONNX-style zero points (AIMET 2.0.0, ORT overrides).

    QNN offsets are the negated zero point of the unsigned type, so a signed type's zero point
    is first shifted by half its range. A file that gives an axis is per-channel.
    """
    half = 2 ** (bitwidth - 1)
    offsets = [-(z + half) if signed else -z for z in zero_points]
    return build_int(
        f,
        name,
        scales,
        offsets,
        bitwidth,
        symmetric,
        kind_hint=kind_hint,
        per_channel=axis is not None,
        axis=axis,
        view=view,
        warnings=warnings,
    )


def build_float(
    f: Fields, name: str, bitwidth: int, kind_hint: str, view: ModelView | None
) -> Encoding:
    """A float (unquantised) encoding of ``bitwidth`` bits, validated with ``f`` naming the entry."""
    kind = resolve_kind(name, kind_hint, view, 0)
    enc = Encoding(tensor=name, bitwidth=bitwidth, dtype="float", kind=kind)
    f.wrap(enc.validate)
    return enc


def check_channels(f: Fields, enc: Encoding, view: ModelView | None) -> None:
    if view is None or enc.axis is None:
        return
    dims = view.initializers.get(enc.tensor)
    if dims is None:
        return
    if not -len(dims) <= enc.axis < len(dims):
        raise f.error("axis", f"axis {enc.axis} is out of range for the weight's shape {dims}")
    channels = view.channels_on(enc.tensor, enc.axis)
    if channels is not None and channels != enc.channels:
        raise f.error(
            "scale",
            f"{enc.channels} per-channel encodings but the weight's shape {dims} has "
            f"{channels} channels on axis {enc.axis}",
        )


def range_warning(f: Fields, enc: Encoding, lo: list[float], hi: list[float]) -> str | None:
    """A file whose min/max disagree with its scale/offset by more than a step: say so (the
    scale/offset win, as in the QNN converter)."""
    if len(lo) != enc.channels or len(hi) != enc.channels:
        return None
    step = np.asarray(enc.scale)
    bad = (np.abs(np.asarray(lo) - enc.min) > step) | (np.abs(np.asarray(hi) - enc.max) > step)
    if np.any(bad):
        return (
            f"{f.source}: tensor '{enc.tensor}': min/max in the file disagree with its "
            "scale/offset by more than one step; scale/offset were used"
        )
    return None
