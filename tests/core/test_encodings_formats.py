"""Encodings files: QNN 0.6.1 (+ legacy), AIMET 1.0.0 / 2.0.0, ORT overrides, our own schema.

Round trips use a real ONNX model with every weight layout whose per-channel axis the file
formats leave out (Conv 0, ConvTranspose 1, MatMul last, Gemm by transB).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.encodings import (
    FORMATS,
    Encoding,
    EncodingSet,
    coverage,
    dump_encodings,
    load_encodings,
    parse_encodings,
    save_encodings,
)
from studio.core.errors import EncodingsError

DATA = Path(__file__).resolve().parent.parent / "data" / "encodings"


def weights_model() -> onnx.ModelProto:
    """x -> Conv -> ConvTranspose -> GAP -> Flatten -> MatMul -> Gemm(transB=1) -> Gemm(transB=0)."""
    rng = np.random.default_rng(3)

    def init(name, shape):
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [
        init("conv.w", (4, 3, 3, 3)),
        init("conv.b", (4,)),
        init("ct.w", (4, 6, 2, 2)),
        init("ct.b", (6,)),
        init("mm.w", (6, 5)),
        init("g1.w", (7, 5)),
        init("g1.b", (7,)),
        init("g2.w", (7, 3)),
        init("g2.b", (3,)),
    ]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "conv.w", "conv.b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        n("ConvTranspose", ["c", "ct.w", "ct.b"], ["t"], name="ct", strides=[2, 2]),
        n("GlobalAveragePool", ["t"], ["p"], name="gap"),
        n("Flatten", ["p"], ["f"], name="flat"),
        n("MatMul", ["f", "mm.w"], ["m"], name="mm"),
        n("Gemm", ["m", "g1.w", "g1.b"], ["g"], name="g1", transB=1),
        n("Gemm", ["g", "g2.w", "g2.b"], ["y"], name="g2"),
    ]
    graph = helper.make_graph(
        nodes,
        "weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


AXES = {"conv.w": 0, "ct.w": 1, "mm.w": 1, "g1.w": 0, "g2.w": 1}
SHAPES = {"conv.w": 4, "ct.w": 6, "mm.w": 5, "g1.w": 7, "g2.w": 3}


def full_set(strict: bool = False) -> EncodingSet:
    rng = np.random.default_rng(7)
    encs = [
        Encoding.from_range("x", -0.5, 1.7, 8),
        Encoding.from_range("c", -3.0, 2.0, 16),
        Encoding.from_range("t", -1.0, 1.0, 8, symmetric=True),
        Encoding.from_range("m", 0.0, 4.0, 8),
        Encoding.float_fallback("g", 16),
        Encoding.from_range("y", -8.0, 8.0, 16, symmetric=True),
    ]
    for name, axis in AXES.items():
        c = SHAPES[name]
        absmax = rng.uniform(0.1, 1.0, c)
        encs.append(
            Encoding.from_range(
                name,
                -absmax,
                absmax,
                8 if name != "mm.w" else 4,
                symmetric=True,
                axis=axis,
                kind="param",
                strict_symmetric=strict,
            )
        )
    encs.append(
        Encoding.from_scale_offset(
            "conv.b", rng.uniform(1e-6, 1e-5, 4), -(2**31), 32, True, 0, "bias"
        )
    )
    encs.append(Encoding.from_scale_offset("ct.b", 2e-6, -(2**31), 32, True, None, "bias"))
    encs.append(Encoding.from_range("g1.b", -0.2, 0.3, 8, kind="bias"))  # an asymmetric 8-bit bias
    encs.append(Encoding.float_fallback("g2.b", 32, kind="bias"))
    return EncodingSet(encs)


def assert_same(a: EncodingSet, b: EncodingSet, rtol: float = 1e-6) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        ea, eb = a[name], b[name]
        assert ea.same_as(eb, rtol=rtol), f"{name}:\n{ea}\n{eb}"
        if not ea.is_float:
            np.testing.assert_allclose(ea.min, eb.min, rtol=rtol, atol=1e-12)
            np.testing.assert_allclose(ea.max, eb.max, rtol=rtol, atol=1e-12)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "weights.onnx"
    onnx.save(weights_model(), str(path))
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_format_with_model(fmt, model_path, tmp_path):
    encs = full_set()
    out = tmp_path / f"enc.{fmt}.json"
    save_encodings(encs, out, fmt)
    back, warnings = load_encodings(out, model=model_path)
    assert back.meta["source_format"] == fmt
    assert_same(encs, back)
    assert not [w for w in warnings if "axis" in w]
    # and the ORT file scales are float32: the same within float32 precision only
    # (asserted by rtol 1e-6 above)


@pytest.mark.parametrize("fmt", ["studio", "aimet2", "ort"])
def test_formats_carrying_axes_round_trip_without_model(fmt, tmp_path):
    encs = full_set()
    if fmt == "aimet2":  # 2.0.0 does not say which per-tensor tensors are weights
        for name in ("ct.b", "g1.b", "g2.b"):
            encs.remove(name)
    out = tmp_path / "enc.json"
    save_encodings(encs, out, fmt)
    back, _ = load_encodings(out)
    assert_same(encs, back)


@pytest.mark.parametrize("fmt", ["qnn", "aimet1"])
def test_axis_is_inferred_from_the_consumer(fmt, model_path):
    doc = dump_encodings(full_set(), fmt)
    back, _ = parse_encodings(doc, "f.json", model=onnx.load(str(model_path)))
    assert {n: back[n].axis for n in AXES} == AXES
    assert back["conv.b"].kind == "bias" and back["conv.b"].axis == 0
    # without a model the axis is guessed (0) and the user is told
    guessed, warnings = parse_encodings(doc, "f.json")
    assert guessed["ct.w"].axis == 0
    assert any("'ct.w'" in w and "axis" in w for w in warnings)


def test_strict_symmetric_survives_qnn_aimet1_and_is_equivalent_in_onnx_forms(model_path):
    encs = full_set(strict=True)
    for fmt in ("qnn", "aimet1", "studio"):
        back, _ = parse_encodings(dump_encodings(encs, fmt), "f", model=model_path)
        assert back["conv.w"].offset == [-127] * 4 and back["conv.w"].strict_symmetric
    for fmt in ("aimet2", "ort"):
        back, _ = parse_encodings(dump_encodings(encs, fmt), "f", model=model_path)
        w0, w1 = encs["conv.w"], back["conv.w"]
        assert w1.offset == [-128] * 4  # signed zp 0 carries no strictness
        x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 3, 3))
        x = np.clip(x, np.reshape(w0.min, (4, 1, 1, 1)), np.reshape(w0.max, (4, 1, 1, 1)))
        np.testing.assert_allclose(w0.fake_quant(x), w1.fake_quant(x), rtol=1e-6)


# ----------------------------------------------------------------------------- sample files
def test_reference_qnn_061_sample():
    encs, warnings = load_encodings(DATA / "qnn_061.json")
    act = encs["/conv1/Conv_output_0"]
    assert act.offset == [-58] and act.scale[0] == pytest.approx(0.008627451)
    assert int(act.quantize(np.array(1.0))) == 174 and act.onnx_zero_point() == [58]
    assert encs["/head/Softmax_output_0"].is_float
    w = encs["conv1.weight"]
    assert w.kind == "param" and w.symmetric and w.offset == [-128]
    assert warnings == []


def test_legacy_seed_shape_is_normalised_with_warnings():
    encs, warnings = load_encodings(DATA / "qnn_legacy.json")
    w = encs["conv1.weight"]
    assert w.offset == [-127] and w.bitwidth == 8 and w.symmetric
    assert encs["/conv1/Conv_output_0"].bitwidth == 16  # top-level activation_bitwidth
    assert encs["conv1.bias"].kind == "bias" and encs["conv1.bias"].bitwidth == 32
    assert any("legacy" in m for m in warnings)
    assert not any("disagree" in m for m in warnings)
    assert any("'conv1.weight'" in m and "positive offset 127" in m for m in warnings)


def test_aimet_1_sample_with_float_offsets(tiny_model):
    encs, _ = load_encodings(DATA / "aimet_100.json", model=tiny_model)
    w = encs["conv1.weight"]
    assert w.per_channel and w.axis == 0 and w.channels == 8 and w.offset == [-128] * 8
    assert encs["x"].bitwidth == 16 and encs["x"].offset == [-35799]
    assert encs["conv1.bias"].is_float and encs["conv1.bias"].kind == "bias"
    assert encs["/conv1/Conv_output_0"].offset == [-147]


def test_aimet_2_sample(tiny_model):
    encs, _ = load_encodings(DATA / "aimet_200.json", model=tiny_model)
    assert encs["x"].offset == [-41] and not encs["x"].symmetric
    w = encs["conv1.weight"]
    assert w.onnx_qtype() == "int8" and w.symmetric and w.axis == 0 and w.channels == 8
    b = encs["conv1.bias"]
    assert b.kind == "bias" and b.bitwidth == 32 and b.offset == [-(2**31)] * 8


def test_block_quantization_is_refused_naming_the_tensor_or_skipped(tmp_path):
    doc = {
        "version": "1.0.0",
        "activation_encodings": [],
        "param_encodings": [
            {"name": "w", "enc_type": "LPBQ", "dtype": "INT", "bw": 4, "is_sym": True,
             "scale": [0.1], "offset": [-8], "block_size": 32, "compressed_bw": 8},
            {"name": "v", "enc_type": "PER_TENSOR", "dtype": "INT", "bw": 8, "is_sym": True,
             "scale": [0.1], "offset": [-128]},
        ],
    }  # fmt: skip
    path = tmp_path / "lpbq.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(EncodingsError, match=r"lpbq.json: tensor 'w': LPBQ .*not supported"):
        load_encodings(path)
    encs, warnings = load_encodings(path, skip_unsupported=True)
    assert list(encs) == ["v"] and any("'w'" in w and "skipped" in w for w in warnings)
    v2 = {"version": "2.0.0", "encodings": [
        {"name": "w", "output_dtype": "int4", "y_scale": [[0.1, 0.2]], "axis": 1, "block_size": 32}
    ]}  # fmt: skip
    encs, _ = parse_encodings(v2, "b.json")  # 2.0.0 block-wise: read (block_size, scale tensor)
    assert encs["w"].block_size == 32 and encs["w"].block_shape == [1, 2]
    assert encs["w"].scale == pytest.approx([0.1, 0.2]) and encs["w"].bitwidth == 4


# ----------------------------------------------------------------------------- bad input
def _qnn(entry: dict, section: str = "param_encodings", name: str = "conv.w") -> dict:
    other = "activation_encodings" if section == "param_encodings" else "param_encodings"
    return {"version": "0.6.1", section: {name: [entry]}, other: {}}


GOOD = {"bitwidth": 8, "dtype": "int", "is_symmetric": "True", "scale": 0.01, "offset": -128}


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (_qnn({**GOOD, "scale": "0.01"}), r"tensor 'conv.w': field 'scale': expected a number"),
        (_qnn({**GOOD, "scale": 0}), r"tensor 'conv.w': scale\[0\] = 0.0 is not positive"),
        (_qnn({**GOOD, "offset": 3}), r"tensor 'conv.w': field 'offset': 3 is positive"),
        (_qnn({**GOOD, "offset": -300}), r"tensor 'conv.w': offset\[0\] = -300 is outside"),
        (_qnn({**GOOD, "offset": -1.5}), r"tensor 'conv.w': field 'offset': expected a whole"),
        (_qnn({**GOOD, "is_symmetric": "yes"}), r"field 'is_symmetric'"),
        (_qnn({**GOOD, "bitwidth": 12}), r"tensor 'conv.w': bitwidth 12 is not supported"),
        (_qnn({**GOOD, "dtype": "bf"}), r"tensor 'conv.w': field 'dtype'"),
        ({**_qnn(GOOD), "version": "0.7.0"}, r"field 'version': unsupported QNN"),
        ({"version": "0.6.1", "param_encodings": {}}, r"field 'activation_encodings': missing"),
        (
            {
                "version": "3.0.0",
                "encodings": [{"name": "t", "output_dtype": "uint8", "y_scale": 1}],
            },
            r"unsupported AIMET encodings version '3.0.0'",
        ),
        (
            {
                "version": "2.0.0",
                "encodings": [{"name": "t", "output_dtype": "uint9", "y_scale": 1}],
            },
            r"tensor 't': quantized type 'uint9'",
        ),
        (
            {"version": "1.0.0", "activation_encodings": [{"name": "a", "bw": 8, "scale": [0.1]}]},
            r"tensor 'a': field 'offset': missing",
        ),
        ({"hello": 1}, r"not an encodings file"),
        ([1, 2], r"expected a JSON object"),
    ],
)
def test_bad_documents_name_file_tensor_and_field(doc, match):
    with pytest.raises(EncodingsError, match=match) as info:
        parse_encodings(doc, "bad.json")
    assert str(info.value).startswith("bad.json: ")


def test_nan_scale_and_malformed_json_in_files(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(_qnn(GOOD)).replace("0.01", "NaN"))
    with pytest.raises(EncodingsError, match="nan.json: invalid JSON: NaN is not allowed"):
        load_encodings(path)
    path.write_text('{"version": "0.6.1", "activation_encodings": {')
    with pytest.raises(EncodingsError, match="nan.json: malformed JSON at line 1"):
        load_encodings(path)
    with pytest.raises(EncodingsError, match="file not found"):
        load_encodings(tmp_path / "missing.json")


def test_channel_count_mismatch_against_model(model_path):
    doc = dump_encodings(full_set(), "aimet1")
    entry = next(e for e in doc["param_encodings"] if e["name"] == "ct.w")
    entry["scale"], entry["offset"] = entry["scale"][:5], entry["offset"][:5]
    with pytest.raises(EncodingsError) as info:
        parse_encodings(doc, "m.json", model=model_path)
    msg = str(info.value)
    assert msg.startswith("m.json: tensor 'ct.w': field 'scale': 5 per-channel encodings")
    assert "[4, 6, 2, 2] has 6 channels on axis 1" in msg
    doc2 = dump_encodings(full_set(), "aimet2")
    entry = next(e for e in doc2["encodings"] if e["name"] == "conv.w")
    entry["axis"] = 4
    with pytest.raises(
        EncodingsError, match="tensor 'conv.w': field 'axis': axis 4 is out of range"
    ):
        parse_encodings(doc2, "m.json", model=model_path)


def test_failed_save_leaves_previous_file_untouched(tmp_path):
    path = tmp_path / "enc.json"
    save_encodings(full_set(), path, "qnn")
    before = path.read_bytes()
    broken = full_set()
    broken["x"].scale[0] = float("nan")
    for fmt in FORMATS:
        with pytest.raises(EncodingsError, match="enc.json: not saved: tensor 'x': scale"):
            save_encodings(broken, path, fmt)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.json"]
    with pytest.raises(EncodingsError, match="unknown encodings format 'tflite'"):
        save_encodings(full_set(), tmp_path / "other.json", "tflite")
    assert not (tmp_path / "other.json").exists()


def test_saved_files_are_strict_json_with_versions(tmp_path):
    for fmt, key, value in [
        ("qnn", "version", "0.6.1"),
        ("aimet1", "version", "1.0.0"),
        ("aimet2", "version", "2.0.0"),
        ("ort", "schema_version", 1),
        ("studio", "schema_version", 1),
    ]:
        path = tmp_path / f"{fmt}.json"
        save_encodings(full_set(), path, fmt)
        data = json.loads(path.read_text())
        assert data[key] == value
    qnn = json.loads((tmp_path / "qnn.json").read_text())
    assert qnn["param_encodings"]["conv.w"][0]["is_symmetric"] == "True"
    assert len(qnn["param_encodings"]["conv.w"]) == 4
    assert qnn["activation_encodings"]["g"] == [{"bitwidth": 16, "dtype": "float"}]
    assert qnn["quantizer_args"]["per_channel_quantization"] == "True"
    a2 = json.loads((tmp_path / "aimet2.json").read_text())
    by_name = {e["name"]: e for e in a2["encodings"]}
    assert by_name["x"] == {
        "name": "x",
        "output_dtype": "uint8",
        "y_scale": pytest.approx(0.008627451),
        "y_zero_point": 58,
    }
    assert "y_zero_point" not in by_name["conv.w"] and by_name["conv.w"]["axis"] == 0
    assert by_name["conv.b"]["output_dtype"] == "int32"


# ----------------------------------------------------------------------------- coverage
def test_coverage_against_model_and_names(model_path):
    encs = full_set()
    encs.remove("c")
    encs.set(Encoding.from_range("ghost", -1, 1, 8))
    report = coverage(encs, model_path)
    assert report.unknown_tensors == ["ghost"]
    assert report.missing_tensors == ["c", "p", "f"]
    assert "g" in report.float_tensors and not report.complete
    data = report.to_json()
    assert data["schema_version"] == 1 and data["covered"] == report.quantizable - 3
    assert coverage(encs, ["x", "ghost"]).unknown_tensors == [
        t for t in encs if t not in ("x", "ghost")
    ]


# ----------------------------------------------------------------------------- ORT, for real
def test_ort_overrides_drive_quantize_static(tiny_model, tmp_path):
    """The live overrides go into onnxruntime's quantize_static unchanged and come out as the
    QDQ model's scale/zero-point initializers; ORT derives the int32 bias from them."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from studio.core.encodings import to_ort_overrides

    model = onnx.load(str(tiny_model))
    w = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "conv1.weight"))
    absmax = np.abs(w).reshape(8, -1).max(axis=1)
    encs = EncodingSet(
        [
            Encoding.from_range("x", -1.0, 1.0, 8),
            Encoding.from_range("y", 0.0, 3.0, 8),
            Encoding.from_range("conv1.weight", -absmax, absmax, 8, True, 0, "param"),
            Encoding.from_scale_offset("conv1.bias", [1e-5] * 8, -(2**31), 32, True, 0, "bias"),
            Encoding.float_fallback("/conv1/Conv_output_0"),
        ]
    )
    ov = to_ort_overrides(encs)
    assert ov.biases == ["conv1.bias"] and ov.float_tensors == {"/conv1/Conv_output_0": 16}
    assert ov.overrides["x"][0]["scale"].dtype == np.float32
    assert ov.overrides["x"][0]["zero_point"].dtype == np.uint8
    assert ov.overrides["conv1.weight"][3]["zero_point"].dtype == np.int8
    assert len(ov.overrides["conv1.weight"]) == 8 and ov.overrides["conv1.weight"][0]["axis"] == 0

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.it = iter([{"x": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)}])

        def get_next(self):
            return next(self.it, None)

    out = tmp_path / "q.onnx"
    quantize_static(
        str(tiny_model),
        str(out),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"TensorQuantOverrides": ov.overrides},
    )
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
    assert inits["x_scale"] == np.float32(encs["x"].scale[0])
    assert inits["x_zero_point"] == 128 and inits["x_zero_point"].dtype == np.uint8
    assert inits["y_zero_point"] == 0 and inits["y_scale"] == np.float32(3.0 / 255)
    np.testing.assert_array_equal(inits["conv1.weight_scale"], encs["conv1.weight"].onnx_scale())
    np.testing.assert_array_equal(inits["conv1.weight_zero_point"], np.zeros(8, np.int8))
    np.testing.assert_allclose(
        inits["conv1.bias_quantized_scale"],
        np.float32(encs["x"].scale[0]) * encs["conv1.weight"].onnx_scale(),
        rtol=1e-6,
    )
    # and reading the QDQ model gives our encodings back, the bias as QNN would derive it
    from studio.core.encodings import bias_encoding, from_qdq_model

    back = from_qdq_model(out)
    assert sorted(back) == ["conv1.bias", "conv1.weight", "x", "y"]
    for name in ("x", "y", "conv1.weight"):
        assert back[name].same_as(encs[name], rtol=2**-23), name
    derived = bias_encoding("conv1.bias", encs["x"], encs["conv1.weight"])
    assert back["conv1.bias"].same_as(derived, rtol=1e-6)
    assert back["conv1.bias"].kind == "bias" and back["conv1.bias"].axis == 0


def test_model_graph_is_accepted_as_the_model(model_path):
    from studio.core.model.graph import ModelGraph

    graph = ModelGraph.load(model_path)
    back, _ = parse_encodings(dump_encodings(full_set(), "aimet1"), "f.json", model=graph)
    assert {n: back[n].axis for n in AXES} == AXES
    report = coverage(full_set(), graph)
    assert report.missing_tensors == ["p", "f"] and report.unknown_tensors == []


def test_min_max_disagreeing_with_scale_offset_is_reported():
    doc = _qnn({**GOOD, "min": -1.28, "max": 1.27}, "activation_encodings", "a")
    _, warnings = parse_encodings(doc, "ok.json")
    assert warnings == []
    doc = _qnn({**GOOD, "min": -0.5, "max": 0.5}, "activation_encodings", "a")
    encs, warnings = parse_encodings(doc, "mm.json")
    assert encs["a"].min == [-1.28] and len(warnings) == 1
    assert "mm.json: tensor 'a': min/max in the file disagree" in warnings[0]


def test_qnn_min_max_only_entries_are_computed_like_the_converter():
    doc = _qnn({"bitwidth": 8, "min": -0.5, "max": 1.7}, "activation_encodings", "a")
    encs, _ = parse_encodings(doc, "r.json")
    assert encs["a"].offset == [-58] and encs["a"].scale[0] == pytest.approx(2.2 / 255)


def test_from_qdq_model_reads_a_hand_built_qdq_graph():
    from studio.core.encodings import bias_encoding, from_qdq_model
    from tests import builders

    encs = from_qdq_model(builders.qdq_conv_erf())
    assert sorted(encs) == ["conv.bias_q", "conv.weight_q", "conv_out", "relu_out", "x"]
    x = encs["x"]
    assert x.kind == "activation" and x.offset == [0] and x.scale[0] == pytest.approx(1 / 255)
    assert encs["conv_out"].offset == [-128] and encs["conv_out"].onnx_zero_point() == [128]
    w = encs["conv.weight_q"]
    assert w.kind == "param" and w.symmetric and w.onnx_qtype() == "int8" and w.axis is None
    b = encs["conv.bias_q"]
    assert b.kind == "bias" and b.bitwidth == 32 and b.offset == [-(2**31)]
    assert b.same_as(bias_encoding("conv.bias_q", x, w), rtol=1e-6)
    with pytest.raises(EncodingsError, match="bias 'b': its input and weight"):
        bias_encoding("b", Encoding.float_fallback("f"), w)
