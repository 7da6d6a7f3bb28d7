"""One tensor's quantization encoding, in the QNN/AIMET convention (REFERENCE.md §1).

Why a single model: QNN override files, AIMET 1.0.0/2.0.0 exports, ONNX QDQ zero points and
ONNX Runtime's TensorQuantOverrides all describe the same grid with different sign conventions,
types and layouts. Everything in the studio converts through :class:`Encoding`, so the arithmetic
(offset sign, ONNX zero point, strict symmetric) lives in exactly one place.

Convention: ``x = scale * (q + offset)`` with ``q`` on the UNSIGNED grid ``[0, 2^bw - 1]``
(``[0, 2^bw - 2]`` for strict symmetric), so ``offset <= 0``. ``scale``/``offset`` are the
source of truth; ``min``/``max`` are the range they represent and always follow them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.errors import EncodingsError

INT_BITWIDTHS = (4, 8, 16, 32)
FLOAT_BITWIDTHS = (16, 32)
KINDS = ("activation", "param", "bias")
DTYPES = ("int", "float")
SCHEMA_VERSION = 1
STUDIO_FORMAT = "npu-studio-encodings"


def _round_half_away(x: np.ndarray | float) -> np.ndarray:
    """Round half away from zero, as QNN/AIMET compute offsets (numpy's rint rounds to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@dataclass
class Encoding:
    """A tensor's encoding: per-tensor (``axis is None``, lists of length 1) or per-channel.

    ``dtype == "float"`` is a float fallback (the tensor stays float16/float32): no scale/offset.
    """

    tensor: str
    bitwidth: int
    dtype: str = "int"
    symmetric: bool = False
    axis: int | None = None
    scale: list[float] = field(default_factory=list)
    offset: list[int] = field(default_factory=list)
    min: list[float] = field(default_factory=list)
    max: list[float] = field(default_factory=list)
    kind: str = "activation"
    # block-wise (QNN BQ/LPBQ, opset-21 DequantizeLinear): ``scale``/``offset`` hold one entry
    # per block, flattened from a tensor of shape ``block_shape`` (the weight's shape with
    # ``axis`` divided by ``block_size``)
    block_size: int | None = None
    block_shape: list[int] = field(default_factory=list)

    # ----------------------------------------------------------------- construction
    @classmethod
    def float_fallback(cls, tensor: str, bitwidth: int = 16, kind: str = "activation") -> Encoding:
        enc = cls(tensor=tensor, bitwidth=bitwidth, dtype="float", kind=kind)
        enc.validate()
        return enc

    @classmethod
    def from_range(
        cls,
        tensor: str,
        min: float | Sequence[float] | np.ndarray,  # noqa: A002 - the field's name
        max: float | Sequence[float] | np.ndarray,  # noqa: A002
        bitwidth: int,
        symmetric: bool = False,
        axis: int | None = None,
        kind: str = "activation",
        strict_symmetric: bool = False,
    ) -> Encoding:
        """Encoding covering ``[min, max]`` (scalars, or arrays for per-channel), REFERENCE §1.

        Zero is forced inside the range and the range is at least 0.01 wide, so the scale is
        always positive and 0.0 is exactly representable (padding, ReLU).
        """
        _check_bitwidth(tensor, "int", bitwidth)
        lo = np.asarray(min, dtype=np.float64).reshape(-1)
        hi = np.asarray(max, dtype=np.float64).reshape(-1)
        if lo.size == 0 or lo.shape != hi.shape:
            raise EncodingsError(
                f"tensor '{tensor}': min and max must be non-empty and of equal length "
                f"(got {lo.size} and {hi.size})"
            )
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise EncodingsError(f"tensor '{tensor}': min/max must be finite numbers")
        if axis is None and lo.size != 1:
            raise EncodingsError(
                f"tensor '{tensor}': {lo.size} channel ranges given but no axis (per-channel needs one)"
            )
        lo = np.minimum(0.0, lo)
        hi = np.maximum(np.maximum(0.0, hi), lo + 0.01)
        steps = float(2**bitwidth - 1)
        if symmetric:
            half = 2 ** (bitwidth - 1)
            absmax = np.maximum(-lo, hi)
            scale = absmax / (half - 1)
            offset = np.full(lo.shape, -(half - 1) if strict_symmetric else -half, dtype=np.int64)
        else:
            scale = (hi - lo) / steps
            offset = _round_half_away(lo / scale).astype(np.int64)
        return cls.from_scale_offset(
            tensor, scale, offset, bitwidth, symmetric=symmetric, axis=axis, kind=kind
        )

    @classmethod
    def from_scale_offset(
        cls,
        tensor: str,
        scale: float | Sequence[float] | np.ndarray,
        offset: int | float | Sequence[float] | np.ndarray,
        bitwidth: int,
        symmetric: bool = False,
        axis: int | None = None,
        kind: str = "activation",
    ) -> Encoding:
        """Encoding from QNN scale/offset (offset <= 0); min/max are derived from them."""
        _check_bitwidth(tensor, "int", bitwidth)
        scales = np.asarray(scale, dtype=np.float64).reshape(-1)
        offs = np.asarray(offset, dtype=np.float64).reshape(-1)
        if offs.size == 1 and scales.size > 1:
            offs = np.full(scales.shape, offs[0])
        if not np.all(np.isfinite(offs)) or np.any(offs != np.round(offs)):
            raise EncodingsError(
                f"tensor '{tensor}': offset must be whole numbers, got {offs.tolist()}"
            )
        enc = cls(
            tensor=tensor,
            bitwidth=int(bitwidth),
            dtype="int",
            symmetric=bool(symmetric),
            axis=axis,
            scale=[float(s) for s in scales],
            offset=[int(o) for o in offs],
            kind=kind,
        )
        enc.validate()
        enc._derive_range()
        return enc

    @classmethod
    def from_onnx(
        cls,
        tensor: str,
        scale: Any,
        zero_point: Any,
        qtype: str,
        axis: int | None = None,
        kind: str = "activation",
        symmetric: bool | None = None,
    ) -> Encoding:
        """Encoding from an ONNX QuantizeLinear's scale/zero point and its element type.

        A signed type with zero point 0 is read as symmetric unless ``symmetric`` says otherwise.
        """
        signed, bitwidth = parse_qtype(tensor, qtype)
        zps = np.asarray(zero_point if zero_point is not None else 0, dtype=np.float64).reshape(-1)
        scales = np.asarray(scale, dtype=np.float64).reshape(-1)
        if zps.size == 1 and scales.size > 1:
            zps = np.full(scales.shape, zps[0])
        offset = -(zps + 2 ** (bitwidth - 1)) if signed else -zps
        if symmetric is None:
            symmetric = bool(signed and np.all(zps == 0))
        return cls.from_scale_offset(
            tensor, scales, offset, bitwidth, symmetric=symmetric, axis=axis, kind=kind
        )

    def with_range(self, min: Any, max: Any) -> Encoding:  # noqa: A002
        """Same settings, new range: scale/offset follow (strictness is kept)."""
        return Encoding.from_range(
            self.tensor,
            min,
            max,
            self.bitwidth,
            symmetric=self.symmetric,
            axis=self.axis,
            kind=self.kind,
            strict_symmetric=self.strict_symmetric,
        )

    def with_scale_offset(self, scale: Any, offset: Any) -> Encoding:
        """Same settings, new scale/offset: min/max follow."""
        return Encoding.from_scale_offset(
            self.tensor,
            scale,
            offset,
            self.bitwidth,
            symmetric=self.symmetric,
            axis=self.axis,
            kind=self.kind,
        )

    def renamed(self, tensor: str) -> Encoding:
        return Encoding.from_json({**self.to_json(), "tensor": tensor})

    # ----------------------------------------------------------------- properties
    @property
    def is_float(self) -> bool:
        return self.dtype == "float"

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def channels(self) -> int:
        return len(self.scale)

    @property
    def strict_symmetric(self) -> bool:
        """Symmetric with offset -(2^(bw-1) - 1): the grid skips its lowest code."""
        if self.is_float or not self.symmetric or not self.offset:
            return False
        return all(o == -(2 ** (self.bitwidth - 1) - 1) for o in self.offset)

    @property
    def qmax(self) -> int:
        """Highest code on the unsigned grid."""
        return 2**self.bitwidth - (2 if self.strict_symmetric else 1)

    def _derive_range(self) -> None:
        s = np.asarray(self.scale, dtype=np.float64)
        o = np.asarray(self.offset, dtype=np.float64)
        self.min = [float(v) for v in o * s]
        self.max = [float(v) for v in (self.qmax + o) * s]

    # ----------------------------------------------------------------- ONNX view
    def default_signed(self) -> bool:
        """The ONNX type the studio picks: bias int32; symmetric weights signed (zp 0, what QNN
        HTP wants for per-channel weights); activations unsigned (uint8/uint16 like QNN)."""
        if self.kind == "bias" or self.bitwidth == 32:
            return True
        return self.kind == "param" and self.symmetric

    def onnx_qtype(self, signed: bool | None = None) -> str:
        """``uint8``, ``int8``, ``uint16``, ``int16``, ``uint4``, ``int4`` or ``int32``."""
        if self.is_float:
            return "float16" if self.bitwidth == 16 else "float32"
        if signed is None:
            signed = self.default_signed()
        if self.bitwidth == 32:
            return "int32" if signed else "uint32"
        return f"{'' if signed else 'u'}int{self.bitwidth}"

    def onnx_zero_point(self, signed: bool | None = None) -> list[int]:
        """ONNX zero points: unsigned ``zp = -offset``; signed ``zp = -offset - 2^(bw-1)``.

        Strict symmetric on a signed type maps to zp 0 (codes -127..127 of int8): the same
        values, and the zero point QNN and ORT require of symmetric weights.
        """
        if self.is_float:
            raise EncodingsError(f"tensor '{self.tensor}': a float encoding has no zero point")
        if signed is None:
            signed = self.default_signed()
        if not signed:
            return [-o for o in self.offset]
        half = 2 ** (self.bitwidth - 1)
        if self.strict_symmetric:
            return [0 for _ in self.offset]
        return [-o - half for o in self.offset]

    def onnx_scale(self) -> np.ndarray:
        return np.asarray(self.scale, dtype=np.float32)

    # ----------------------------------------------------------------- arithmetic
    def _broadcast(self, values: Sequence[float], ndim: int) -> np.ndarray:
        arr = np.asarray(values, dtype=np.float64)
        if self.axis is None:
            return arr.reshape(()) if arr.size == 1 else arr
        axis = self.axis if self.axis >= 0 else self.axis + ndim
        if not 0 <= axis < ndim:
            raise EncodingsError(
                f"tensor '{self.tensor}': axis {self.axis} out of range for a rank-{ndim} array"
            )
        shape = [1] * ndim
        shape[axis] = arr.size
        return arr.reshape(shape)

    def _check_shape(self, x: np.ndarray) -> None:
        if self.axis is not None:
            axis = self.axis if self.axis >= 0 else self.axis + x.ndim
            if not 0 <= axis < x.ndim or x.shape[axis] != self.channels:
                raise EncodingsError(
                    f"tensor '{self.tensor}': {self.channels} channels on axis {self.axis} "
                    f"do not match array shape {list(x.shape)}"
                )

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Codes on the unsigned grid (int64); float encodings return the value cast to float16/32."""
        x = np.asarray(x)
        if self.is_float:
            return x.astype(np.float16 if self.bitwidth == 16 else np.float32)
        self._check_shape(x)
        scale = self._broadcast(self.scale, x.ndim)
        offset = self._broadcast(self.offset, x.ndim)
        q = np.rint(x.astype(np.float64) / scale) - offset
        return np.clip(q, 0, self.qmax).astype(np.int64)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q)
        if self.is_float:
            return q.astype(np.float32)
        self._check_shape(q)
        scale = self._broadcast(self.scale, q.ndim)
        offset = self._broadcast(self.offset, q.ndim)
        return (scale * (q.astype(np.float64) + offset)).astype(np.float32)

    def fake_quant(self, x: np.ndarray) -> np.ndarray:
        return self.dequantize(self.quantize(x))

    # ----------------------------------------------------------------- checks
    def validate(self, channels: int | None = None) -> None:
        """Raise EncodingsError naming the tensor and the problem; ``channels`` is the size of
        the weight's channel axis when known (a per-channel count must equal it)."""
        t = self.tensor
        if not isinstance(t, str) or not t:
            raise EncodingsError(f"encoding has no tensor name ({t!r})")
        if self.kind not in KINDS:
            raise EncodingsError(f"tensor '{t}': kind {self.kind!r} is not one of {KINDS}")
        _check_bitwidth(t, self.dtype, self.bitwidth)
        if self.is_float:
            if self.scale or self.offset:
                raise EncodingsError(f"tensor '{t}': a float encoding carries no scale/offset")
            return
        if not self.scale:
            raise EncodingsError(f"tensor '{t}': no scale")
        if len(self.offset) != len(self.scale):
            raise EncodingsError(
                f"tensor '{t}': {len(self.scale)} scales but {len(self.offset)} offsets"
            )
        if self.axis is None and len(self.scale) != 1:
            raise EncodingsError(
                f"tensor '{t}': {len(self.scale)} channel scales but no axis (per-tensor needs 1)"
            )
        if self.axis is not None and not isinstance(self.axis, int):
            raise EncodingsError(f"tensor '{t}': axis must be an integer, got {self.axis!r}")
        for i, s in enumerate(self.scale):
            if not isinstance(s, (int, float)) or not math.isfinite(s):
                raise EncodingsError(f"tensor '{t}': scale[{i}] = {s!r} is not a finite number")
            if s <= 0:
                raise EncodingsError(f"tensor '{t}': scale[{i}] = {s!r} is not positive")
        lowest = -(2**self.bitwidth - 1)
        for i, o in enumerate(self.offset):
            if not isinstance(o, int) or isinstance(o, bool):
                raise EncodingsError(f"tensor '{t}': offset[{i}] = {o!r} is not an integer")
            if not lowest <= o <= 0:
                raise EncodingsError(
                    f"tensor '{t}': offset[{i}] = {o} is outside [{lowest}, 0] for {self.bitwidth} "
                    "bits (QNN offsets are <= 0: zero must lie on the grid)"
                )
        if self.min and (len(self.min) != len(self.scale) or len(self.max) != len(self.scale)):
            raise EncodingsError(f"tensor '{t}': min/max lengths differ from the scale's")
        if channels is not None and self.axis is not None and channels != len(self.scale):
            raise EncodingsError(
                f"tensor '{t}': {len(self.scale)} per-channel encodings but the tensor has "
                f"{channels} channels on axis {self.axis}"
            )

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "tensor": self.tensor,
            "kind": self.kind,
            "dtype": self.dtype,
            "bitwidth": self.bitwidth,
        }
        if not self.is_float:
            data.update(
                symmetric=self.symmetric,
                axis=self.axis,
                scale=list(self.scale),
                offset=list(self.offset),
                min=list(self.min),
                max=list(self.max),
            )
            if self.block_size:
                data.update(block_size=self.block_size, block_shape=list(self.block_shape))
        return data

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>") -> Encoding:
        """Our own entry shape; scale/offset are authoritative, min/max are recomputed."""
        from studio.core.encodings._fields import Fields

        f = Fields(data, source, "encoding")
        tensor = f.str("tensor")
        f = Fields(data, source, tensor)
        kind = f.choice("kind", KINDS, default="activation")
        dtype = f.choice("dtype", DTYPES, default="int")
        bitwidth = f.int("bitwidth")
        if dtype == "float":
            enc = cls(tensor=tensor, bitwidth=bitwidth, dtype="float", kind=kind)
            f.wrap(enc.validate)
            return enc
        enc = f.wrap(
            lambda: cls.from_scale_offset(
                tensor,
                f.float_list("scale"),
                f.int_list("offset"),
                bitwidth,
                symmetric=f.bool("symmetric", default=False),
                axis=f.opt_int("axis"),
                kind=kind,
            )
        )
        block = f.opt_int("block_size")
        if block:
            enc.block_size = block
            enc.block_shape = [int(d) for d in f.int_list("block_shape")]
        return enc

    def same_as(self, other: Encoding, rtol: float = 1e-6) -> bool:
        """Equal settings and codes; scales within ``rtol`` (files round through float32)."""
        if (self.tensor, self.dtype, self.bitwidth, self.kind) != (
            other.tensor,
            other.dtype,
            other.bitwidth,
            other.kind,
        ):
            return False
        if self.is_float:
            return True
        if self.block_size != other.block_size:
            return False
        return (
            self.symmetric == other.symmetric
            and self.axis == other.axis
            and self.offset == other.offset
            and len(self.scale) == len(other.scale)
            and bool(np.allclose(self.scale, other.scale, rtol=rtol, atol=0))
        )


def _check_bitwidth(tensor: str, dtype: str, bitwidth: Any) -> None:
    if dtype not in DTYPES:
        raise EncodingsError(f"tensor '{tensor}': dtype {dtype!r} is not 'int' or 'float'")
    allowed = INT_BITWIDTHS if dtype == "int" else FLOAT_BITWIDTHS
    if not isinstance(bitwidth, int) or isinstance(bitwidth, bool) or bitwidth not in allowed:
        raise EncodingsError(
            f"tensor '{tensor}': bitwidth {bitwidth!r} is not supported for {dtype} "
            f"(expected one of {list(allowed)})"
        )


_QTYPES = {
    "uint4": (False, 4),
    "int4": (True, 4),
    "uint8": (False, 8),
    "int8": (True, 8),
    "uint16": (False, 16),
    "int16": (True, 16),
    "int32": (True, 32),
    "uint32": (False, 32),
}


def parse_qtype(tensor: str, qtype: Any) -> tuple[bool, int]:
    """``"int8"`` -> (signed, 8); EncodingsError for anything else."""
    key = str(qtype).lower() if isinstance(qtype, str) else None
    if key not in _QTYPES:
        raise EncodingsError(
            f"tensor '{tensor}': quantized type {qtype!r} is not one of {sorted(_QTYPES)}"
        )
    return _QTYPES[key]
