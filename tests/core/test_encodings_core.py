"""The Encoding model: REFERENCE.md §1 arithmetic, validation and its own JSON."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.core.encodings import Encoding, EncodingSet
from studio.core.errors import EncodingsError, StudioError


def test_reference_asymmetric_example():
    enc = Encoding.from_range("t", -0.5, 1.7, 8)
    assert enc.scale[0] == pytest.approx(0.008627451, rel=1e-7)
    assert enc.offset == [-58]
    assert enc.min[0] == pytest.approx(-0.5003922, abs=1e-7)
    assert enc.max[0] == pytest.approx(1.6996078, abs=1e-7)
    assert int(enc.quantize(np.array(1.0))) == 174
    assert enc.onnx_qtype() == "uint8"
    assert enc.onnx_zero_point() == [58]
    # the signed view of the same grid: zp = -offset - 128
    assert enc.onnx_zero_point(signed=True) == [-70]
    assert enc.onnx_qtype(signed=True) == "int8"


def test_reference_symmetric_example():
    enc = Encoding.from_range("w", -1.2, 0.4, 8, symmetric=True, kind="param")
    assert enc.scale[0] == pytest.approx(0.0094488, rel=1e-5)
    assert enc.offset == [-128]
    assert enc.min[0] == pytest.approx(-1.2094, abs=1e-4)
    assert enc.max[0] == pytest.approx(1.2, abs=1e-9)
    assert enc.onnx_qtype() == "int8"
    assert enc.onnx_zero_point() == [0]
    assert enc.onnx_zero_point(signed=False) == [128]


def test_strict_symmetric_uses_offset_minus_127_and_skips_lowest_code():
    enc = Encoding.from_range("w", -1.2, 0.4, 8, symmetric=True, strict_symmetric=True)
    assert enc.offset == [-127]
    assert enc.strict_symmetric
    assert enc.qmax == 254
    assert enc.min[0] == pytest.approx(-1.2) and enc.max[0] == pytest.approx(1.2)
    # values beyond +absmax clamp to +127 steps, not +128
    assert enc.fake_quant(np.array([5.0]))[0] == pytest.approx(1.2, rel=1e-6)
    assert enc.onnx_zero_point(signed=True) == [0]
    assert enc.onnx_zero_point(signed=False) == [127]


def test_zero_is_forced_into_range_and_range_never_empty():
    pos = Encoding.from_range("a", 0.5, 2.0, 8)
    assert pos.offset == [0] and pos.min[0] == 0.0
    neg = Encoding.from_range("a", -3.0, -1.0, 8)
    assert neg.offset == [-255] and neg.max[0] == pytest.approx(0.0, abs=1e-12)
    flat = Encoding.from_range("a", 0.0, 0.0, 8)
    assert flat.scale[0] == pytest.approx(0.01 / 255)
    assert float(flat.fake_quant(np.array(0.0))) == 0.0


def test_16_bit_and_4_bit_and_bias():
    a16 = Encoding.from_range("a", -1.0, 3.0, 16)
    assert a16.onnx_qtype() == "uint16"
    assert a16.scale[0] == pytest.approx(4.0 / 65535)
    w4 = Encoding.from_range("w", -0.7, 0.7, 4, symmetric=True, kind="param")
    assert w4.onnx_qtype() == "int4" and w4.offset == [-8] and w4.onnx_zero_point() == [0]
    b = Encoding.from_scale_offset("b", 1e-6, -(2**31), 32, symmetric=True, kind="bias")
    assert b.onnx_qtype() == "int32" and b.onnx_zero_point() == [0]
    assert b.quantize(np.array([1e-3]))[0] == 2**31 + 1000


def test_per_channel_quantize_along_axis():
    lo = np.array([-1.0, -0.5, -2.0])
    hi = np.array([1.0, 0.5, 2.0])
    enc = Encoding.from_range("w", lo, hi, 8, symmetric=True, axis=1, kind="param")
    assert enc.channels == 3 and enc.per_channel
    x = np.tile(np.array([[0.9, 0.45, 1.8]]), (4, 1))
    q = enc.quantize(x)
    assert q.shape == x.shape
    assert np.all(q[:, 0] == q[:, 1]) and np.all(q[:, 1] == q[:, 2])  # same relative value
    np.testing.assert_allclose(enc.fake_quant(x), x, atol=max(enc.scale) / 2 + 1e-7)
    with pytest.raises(EncodingsError, match="'w'.*3 channels"):
        enc.quantize(np.zeros((3, 4)))


def test_with_range_and_with_scale_offset_keep_fields_consistent():
    enc = Encoding.from_range("t", -0.5, 1.7, 8)
    wider = enc.with_range(-1.0, 1.0)
    assert wider.offset == [-128] and wider.scale[0] == pytest.approx(2.0 / 255)
    moved = enc.with_scale_offset(0.01, -10)
    assert moved.min == [pytest.approx(-0.1)] and moved.max == [pytest.approx(2.45)]
    strict = Encoding.from_range("s", -1, 1, 8, symmetric=True, strict_symmetric=True)
    assert strict.with_range(-2, 2).offset == [-127]


def test_from_onnx_inverts_zero_point():
    enc = Encoding.from_onnx("t", 0.008627451, 58, "uint8")
    assert enc.offset == [-58] and not enc.symmetric
    sym = Encoding.from_onnx("w", [0.1, 0.2], [0, 0], "int8", axis=0, kind="param")
    assert sym.offset == [-128, -128] and sym.symmetric
    assert Encoding.from_onnx("b", 1e-5, None, "int32", kind="bias").offset == [-(2**31)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": [0.0], "offset": [0]}, "scale\\[0\\].*not positive"),
        ({"scale": [-1.0], "offset": [0]}, "not positive"),
        ({"scale": [float("nan")], "offset": [0]}, "not a finite"),
        ({"scale": [float("inf")], "offset": [0]}, "not a finite"),
        ({"scale": [0.1], "offset": [5]}, "offset\\[0\\] = 5 is outside"),
        ({"scale": [0.1], "offset": [-256]}, "outside \\[-255, 0\\]"),
        ({"scale": [0.1, 0.2], "offset": [0, 0]}, "no axis"),
        ({"scale": [0.1, 0.2], "offset": [0]}, "2 scales but 1 offsets"),
        ({"scale": [0.1], "offset": [0], "bitwidth": 7}, "bitwidth 7"),
        ({"scale": [], "offset": []}, "no scale"),
        ({"scale": [0.1], "offset": [0], "kind": "weights"}, "kind"),
    ],
)
def test_validate_names_tensor_and_problem(kwargs, match):
    fields = {"tensor": "conv1.weight", "bitwidth": 8, **kwargs}
    enc = Encoding(**fields)
    with pytest.raises(EncodingsError, match=match) as info:
        enc.validate()
    assert "conv1.weight" in str(info.value)


def test_validate_channel_count_against_model():
    enc = Encoding.from_range("w", [-1, -1], [1, 1], 8, symmetric=True, axis=0, kind="param")
    enc.validate(channels=2)
    with pytest.raises(EncodingsError, match="'w': 2 per-channel encodings but the tensor has 8"):
        enc.validate(channels=8)


def test_float_fallback():
    enc = Encoding.float_fallback("/head/Softmax_output_0", 16)
    assert enc.is_float and enc.onnx_qtype() == "float16"
    x = np.array([1.0 / 3.0])
    assert enc.fake_quant(x)[0] == np.float32(np.float16(1.0 / 3.0))
    with pytest.raises(EncodingsError, match="bitwidth 8"):
        Encoding(tensor="f", bitwidth=8, dtype="float").validate()
    with pytest.raises(EncodingsError, match="no zero point"):
        enc.onnx_zero_point()


def test_set_json_round_trip_and_bad_versions():
    encs = EncodingSet(
        [
            Encoding.from_range("a", -0.5, 1.7, 8),
            Encoding.from_range("w", [-1, -2], [1, 2], 8, symmetric=True, axis=0, kind="param"),
            Encoding.from_scale_offset("b", [1e-6, 2e-6], -(2**31), 32, True, 0, "bias"),
            Encoding.float_fallback("f", 32),
        ],
        meta={"source": "test"},
    )
    data = encs.to_json()
    assert data["schema_version"] == 1
    back = EncodingSet.from_json(data)
    assert back == encs and back.meta == {"source": "test"}
    assert len(back) == 4 and list(back) == ["a", "w", "b", "f"]
    copy = back.copy()
    copy.remove("a")
    assert "a" in back and "a" not in copy and copy.get("a") is None
    with pytest.raises(EncodingsError, match="schema_version 99"):
        EncodingSet.from_json({**data, "schema_version": 99}, "x.json")
    bad = {**data, "encodings": [{**data["encodings"][0], "scale": ["abc"]}]}
    with pytest.raises(EncodingsError, match="x.json: tensor 'a': field 'scale\\[0\\]'"):
        EncodingSet.from_json(bad, "x.json")


# ----------------------------------------------------------------------------- properties
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    lo=finite,
    hi=finite,
    bw=st.sampled_from([4, 8, 16]),
    sym=st.booleans(),
    strict=st.booleans(),
    x=st.lists(finite, min_size=1, max_size=8),
)
def test_property_range_contains_zero_and_fake_quant_is_bounded(lo, hi, bw, sym, strict, x):
    enc = Encoding.from_range("t", lo, hi, bw, symmetric=sym, strict_symmetric=strict)
    enc.validate()
    assert enc.min[0] <= 0.0 <= enc.max[0]
    assert float(enc.fake_quant(np.array(0.0))) == 0.0
    xs = np.array(x)
    fq = enc.fake_quant(xs).astype(np.float64)
    tol = 1e-6 * max(1.0, abs(enc.min[0]), abs(enc.max[0]))
    assert np.all(fq >= enc.min[0] - tol) and np.all(fq <= enc.max[0] + tol)
    inside = (xs >= enc.min[0]) & (xs <= enc.max[0])
    assert np.all(np.abs(fq - xs)[inside] <= enc.scale[0] / 2 + tol)
    # idempotent: fake-quantized values are on the grid
    np.testing.assert_allclose(enc.fake_quant(fq), fq, rtol=1e-6, atol=tol)
    # ONNX zero points reproduce the same real values
    for signed in (False, True):
        zp = enc.onnx_zero_point(signed)[0]
        back = Encoding.from_onnx("t", enc.scale, zp, enc.onnx_qtype(signed), symmetric=sym)
        np.testing.assert_allclose(back.fake_quant(xs[inside]), fq[inside], rtol=1e-6, atol=tol)


@settings(max_examples=100, deadline=None)
@given(
    scale=st.floats(1e-8, 1e3, allow_nan=False),
    bw=st.sampled_from([4, 8, 16, 32]),
    frac=st.floats(0, 1),
)
def test_property_scale_offset_round_trip(scale, bw, frac):
    offset = -int(frac * (2**bw - 1))
    enc = Encoding.from_scale_offset("t", scale, offset, bw)
    again = enc.with_scale_offset(enc.scale, enc.offset)
    assert again.same_as(enc, rtol=0)
    assert Encoding.from_json(enc.to_json()).same_as(enc, rtol=0)


def test_errors_are_studio_errors():
    assert issubclass(EncodingsError, StudioError)


def test_set_versions_and_mapping_protocol():
    encs = EncodingSet([Encoding.from_range("a", -1, 1, 8)])
    data = encs.to_json()
    for bad, match in [(0, "unsupported schema_version 0"), ("1", "must be an integer")]:
        with pytest.raises(EncodingsError, match=match):
            EncodingSet.from_json({**data, "schema_version": bad}, "v.json")
    encs["b"] = Encoding.from_range("b", 0, 1, 16)
    assert encs.keys() == ["a", "b"] and encs["b"].bitwidth == 16
    with pytest.raises(EncodingsError, match="tensor 'c': the encoding is for 'a'"):
        encs["c"] = encs["a"]
    del encs["a"]
    assert list(encs) == ["b"]
