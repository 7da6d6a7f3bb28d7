"""The editor's rules in core (studio.core.quantize.editing), checked without Qt on real encodings."""

from __future__ import annotations

import pytest

from studio.core.encodings import Encoding
from studio.core.errors import ConfigError, EncodingsError
from studio.core.quantize.editing import edited_override, range_override, reflects
from studio.core.quantize.plan import TensorOverride


def _act(name: str = "/conv/out") -> Encoding:
    return Encoding(tensor=name, kind="activation", bitwidth=8, dtype="int").with_range(-1.0, 3.0)


def test_a_bias_cannot_be_edited():
    with pytest.raises(EncodingsError, match="is a bias"):
        edited_override("conv.bias", "bias", None, None, "bits", "16")


def test_4_bit_activations_are_refused_but_4_bit_weights_are_not():
    with pytest.raises(EncodingsError, match="4-bit activations are not supported"):
        edited_override("/conv/out", "activation", _act(), None, "bits", "4")
    ov = edited_override("conv.weight", "param", None, None, "bits", "4")
    assert (ov.dtype, ov.bitwidth) == ("int", 4)


def test_a_range_edit_pins_the_bits_and_leaves_the_current_override_alone():
    current = TensorOverride(tensor="/conv/out", symmetric=False)
    enc = _act()
    ov = edited_override("/conv/out", "activation", enc, current, "max", "6")
    assert (ov.min, ov.max, ov.bitwidth, ov.dtype) == (enc.min[0], 6.0, 8, "int")
    assert ov.min == pytest.approx(-1.0, abs=0.01)  # the encoding's own (grid-aligned) min kept
    assert current.max is None  # a copy was edited
    with pytest.raises(EncodingsError, match="must be below"):
        range_override("/conv/out", _act(), None, 2.0, 1.0)


def test_offset_must_be_whole_and_columns_must_exist():
    with pytest.raises(EncodingsError, match="whole number"):
        edited_override("/conv/out", "activation", _act(), None, "offset", "3.5")
    with pytest.raises(ConfigError, match="not editable"):
        edited_override("/conv/out", "activation", _act(), None, "name", "x")
    with pytest.raises(ValueError, match="not a finite number"):
        edited_override("/conv/out", "activation", _act(), None, "min", "nan")


def test_float_fallback_and_what_the_encoding_reflects():
    ov = edited_override("/conv/out", "activation", _act(), None, "bits", "float16")
    assert (ov.dtype, ov.bitwidth) == ("float", 16)
    assert reflects(_act(), "bits", "8") and not reflects(_act(), "bits", "16")
