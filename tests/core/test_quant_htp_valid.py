"""HTP-valid by construction: only bit widths QNN HTP runs are offered or built, and a build is
checked for full offload on the target, naming what falls back."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from studio.core.calibration import calibrate
from studio.core.errors import BadInputError
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq, check_htp_offload
from studio.core.quantize.editing import allowed_bitwidths, why_not
from tests import builders
from tests import real_graphs as rg


def test_allowed_bitwidths_follow_the_consuming_op_and_the_architecture():
    model = rg.yolo_head()
    assert allowed_bitwidths(model, "backbone.0.weight", 68) == (4, 8)  # v68 Conv weight: no 16
    assert allowed_bitwidths(model, "backbone.0.weight", 75) == (4, 8, 16)  # v75 takes 16
    assert allowed_bitwidths(model, "image_size", 68) == (8, 16)  # a Mul operand: no 4
    assert allowed_bitwidths(model, "b1a", 68) == (8, 16)  # an activation
    assert "16-bit" in why_not(model, "backbone.0.weight", 16, 68)
    assert why_not(model, "backbone.0.weight", 16, 75) is None
    assert why_not(model, "backbone.0.weight", 4, 68) is None
    assert "4-bit" in why_not(model, "image_size", 4, 68)


@pytest.fixture(scope="module")
def cnn_stats(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("htpvalid")
    path = builders.save(builders.small_cnn(), tmp / "cnn.onnx")
    return calibrate(path, "random:2", cache_dir=tmp / "c")


def test_sixteen_bit_conv_weights_are_refused_before_building(cnn_stats, tmp_path, monkeypatch):
    from studio.core.engine.sessions import TARGET_ENV

    monkeypatch.setenv(TARGET_ENV, "Samsung Galaxy S21|30|68")  # HTP v68: no 16-bit Conv weights
    with pytest.raises(BadInputError, match=r"16-bit weights cannot run on QNN HTP.*'"):
        build_qdq(cnn_stats, QuantPlan(weight_bitwidth=16), tmp_path / "q.onnx")
    plan = QuantPlan()
    plan.set_override(TensorOverride("stem.weight", bitwidth=16))
    with pytest.raises(BadInputError, match=r"tensor 'stem.weight'.*no 16-bit weights for Conv"):
        build_qdq(cnn_stats, plan, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()
    build_qdq(cnn_stats, QuantPlan(weight_bitwidth=4), tmp_path / "q4.onnx")  # INT4 Conv: fine


def test_build_check_names_the_node_that_falls_back(tmp_path):
    float_path = builders.save(builders.small_cnn_erf_head(), tmp_path / "erf.onnx")
    stats = calibrate(float_path, "random:2", cache_dir=tmp_path / "c")
    built = build_qdq(stats, QuantPlan(), tmp_path / "erf.qdq.onnx")
    ok, reason = check_htp_offload(built.qdq_path)
    assert not ok
    assert "/head/Erf" in reason and "Erf" in reason and "HTP v75" in reason
    good = build_qdq(stats, QuantPlan(), tmp_path / "cnn.qdq.onnx", model=_without_erf(stats))
    assert check_htp_offload(good.qdq_path, "Samsung Galaxy S23") == (True, "")


def _without_erf(stats) -> onnx.ModelProto:
    proto = onnx.load(str(stats.prepared_model))
    erf = next(n for n in proto.graph.node if n.op_type == "Erf")
    proto.graph.node.remove(erf)
    out = proto.graph.output[0]
    out.name = erf.input[0]
    return proto


def test_weight_sqnr_is_finite_for_int4(cnn_stats, tmp_path):
    from studio.core.accuracy import Analyser

    built = build_qdq(cnn_stats, QuantPlan(weight_bitwidth=4), tmp_path / "q4.onnx")
    feeds = [{"input": np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)}]
    report = Analyser(cnn_stats.prepared_model).analyse(built.qdq_path, feeds)
    assert 5 < report.weights["stem.weight"] < 30  # 4-bit weights really stored at 4 bits


def test_int4_conv_weights_with_16_bit_activations_need_htp_v68(cnn_stats, tmp_path, monkeypatch):
    """HTP v65/v66 has no INT4 Conv kernel under 16-bit activations (bench/lpbq_probe.py);
    Gemm/MatMul take it everywhere, and v68+ takes the Conv too."""
    from studio.core.engine.sessions import TARGET_ENV
    from studio.core.quantize.editing import check_plan_for_htp

    proto = onnx.load(str(cnn_stats.prepared_model))
    assert "v66" in why_not(proto, "stem.weight", 4, 66, activation_bits=16)
    assert why_not(proto, "stem.weight", 4, 66, activation_bits=8) is None
    assert why_not(proto, "stem.weight", 4, 68, activation_bits=16) is None
    assert why_not(proto, "head.weight", 4, 66, activation_bits=16) is None  # a Gemm weight
    a16w4 = QuantPlan(activation_bitwidth=16, weight_bitwidth=4)
    check_plan_for_htp(a16w4, proto, 68)
    check_plan_for_htp(QuantPlan(weight_bitwidth=4), proto, 66)
    # one 16-bit Conv input is enough to refuse that Conv's INT4 weight
    plan = QuantPlan(weight_bitwidth=4)
    plan.set_override(TensorOverride("/stem/Relu_output_0", bitwidth=16))
    with pytest.raises(BadInputError, match=r"'block.conv.weight'.*v66 has no INT4 Conv"):
        check_plan_for_htp(plan, proto, 66)
    monkeypatch.setenv(TARGET_ENV, "Google Pixel 4|12|66")
    with pytest.raises(BadInputError, match=r"4-bit weights cannot run on QNN HTP: tensor"):
        build_qdq(cnn_stats, a16w4, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


def test_a_weights_bits_are_its_overrides_else_the_plans():
    plan = QuantPlan(weight_bitwidth=4)
    plan.set_override(TensorOverride("head.weight", bitwidth=8))
    plan.set_override(TensorOverride("other.weight", dtype="float"))
    assert plan.weight_bits("head.weight") == 8
    assert plan.weight_bits("stem.weight") == 4
    assert plan.weight_bits("other.weight") == 4, "float-ness is the caller's question"
