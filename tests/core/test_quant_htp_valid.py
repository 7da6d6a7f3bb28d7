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


# --- HTP_WEIGHT_RULES: each rule against the real QNN HTP backend (emulated on x86-64) --------
# One QDQ node per case (tests.builders.qdq_weight_case, the way the build writes it); the HTP
# session has CPU fallback disabled, so it opens only when HTP takes the whole node.


def _htp_takes(tmp_path, model: onnx.ModelProto, arch: int) -> bool:
    from studio.core.devices.catalogue import load_catalogue
    from studio.core.engine.sessions import make_session
    from studio.core.errors import BackendUnavailableError

    device = next(d for d in load_catalogue().devices if d.htp_arch == arch)
    path = builders.save(model, tmp_path / f"{model.graph.name}_v{arch}.onnx")
    try:
        make_session(
            path, "htp", disable_cpu_fallback=True, provider_options=device.provider_options()
        )
    except BackendUnavailableError:
        return False
    return True


def _plan(weight_bits: int, act_bits: int, override: bool) -> QuantPlan:
    """The plan asking for ``weight_bits`` on the case's weight ``w``: as the plan's default
    weight width, or as the editor does, an override."""
    if not override:
        return QuantPlan(weight_bitwidth=weight_bits, activation_bitwidth=act_bits)
    plan = QuantPlan(activation_bitwidth=act_bits)
    plan.set_override(TensorOverride("w", bitwidth=weight_bits))
    return plan


@pytest.mark.parametrize("op", ["MatMul", "LayerNormalization", "Conv", "Gemm", "ConvTranspose"])
@pytest.mark.parametrize("override", [False, True])
def test_sixteen_bit_weights_under_8_bit_activations_are_refused_like_htp(tmp_path, op, override):
    """W16A8 runs nowhere (v75, the default target, included); W16A16 runs from v73. The
    check said yes to W16A8 MatMul/LayerNorm (and Conv/Gemm on v73+) before the rule table."""
    from studio.core.quantize.editing import check_plan_for_htp

    float_case = builders.qdq_weight_case(op, 16, 8, quantised=False)
    assert not _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 8), 75)
    with pytest.raises(BadInputError, match=rf"'w' \({op}\).*only with 16-bit activations"):
        check_plan_for_htp(_plan(16, 8, override), float_case, 75)
    assert 16 not in allowed_bitwidths(float_case, "w", 75, activation_bits=8)

    assert _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 16), 75)
    check_plan_for_htp(_plan(16, 16, override), float_case, 75)
    assert 16 in allowed_bitwidths(float_case, "w", 75, activation_bits=16)
    # v68 has no 16-bit weights for these ops at all
    assert not _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 16), 68)
    with pytest.raises(BadInputError, match=r"v68 has no 16-bit weights"):
        check_plan_for_htp(_plan(16, 16, override), float_case, 68)


def test_instancenorm_scales_take_16_bits_only_unsigned_under_16_bit_activations(tmp_path):
    """HTP refuses a signed INT16 InstanceNorm scale everywhere and a 16-bit one under 8-bit
    activations; it takes an unsigned one under 16-bit activations on every architecture, which
    is how the build now stores it (and INT4: the op has an INT4 kernel)."""
    from studio.core.quantize.editing import check_plan_for_htp

    op = "InstanceNormalization"
    float_case = builders.qdq_weight_case(op, 16, 8, quantised=False)
    assert not _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 8, signed=False), 68)
    assert not _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 16, signed=True), 75)
    with pytest.raises(BadInputError, match=r"'w' \(InstanceNormalization\).*16-bit activations"):
        check_plan_for_htp(_plan(16, 8, False), float_case, 68)
    assert _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 16, signed=False), 68)
    check_plan_for_htp(_plan(16, 16, False), float_case, 68)
    assert _htp_takes(tmp_path, builders.qdq_weight_case(op, 4, 16), 68)
    assert allowed_bitwidths(float_case, "w", 68, activation_bits=16) == (4, 8, 16)


@pytest.mark.parametrize("op", ["Mul", "Add", "PRelu"])
def test_a_constant_operand_runs_quantised_only_at_its_activations_width(tmp_path, op):
    """A Mul/Add operand or PRelu slope is quantised like an activation: at another width HTP
    v68 refuses the node, so an override to that width is refused there; v75 takes the node
    (in float), so it is allowed there."""
    from studio.core.quantize.editing import check_plan_for_htp

    float_case = builders.qdq_weight_case(op, 8, 8, quantised=False)
    assert not _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 8, signed=False), 68)
    with pytest.raises(BadInputError, match=rf"'w' \({op}\).*v68 runs .* as wide as its 8-bit act"):
        check_plan_for_htp(_plan(16, 8, True), float_case, 68)
    assert allowed_bitwidths(float_case, "w", 68, activation_bits=8) == (8,)
    assert _htp_takes(tmp_path, builders.qdq_weight_case(op, 8, 8, signed=False), 68)
    check_plan_for_htp(_plan(8, 8, True), float_case, 68)
    check_plan_for_htp(QuantPlan(weight_bitwidth=16), float_case, 68)  # built at 8 bits
    assert _htp_takes(tmp_path, builders.qdq_weight_case(op, 16, 8, signed=False), 75)
    check_plan_for_htp(_plan(16, 8, True), float_case, 75)


def test_int4_conv_transpose_weights_run_on_htp(tmp_path):
    """ConvTranspose has INT4 weight kernels on every architecture, under 8- and 16-bit
    activations (the editor did not offer 4 bits for it)."""
    from studio.core.quantize.editing import check_plan_for_htp

    float_case = builders.qdq_weight_case("ConvTranspose", 4, 16, quantised=False)
    assert _htp_takes(tmp_path, builders.qdq_weight_case("ConvTranspose", 4, 16), 66)
    check_plan_for_htp(_plan(4, 16, True), float_case, 66)
    assert 4 in allowed_bitwidths(float_case, "w", 66, activation_bits=16)


def test_build_refuses_w16a8_transformer_and_builds_what_htp_runs(tmp_path):
    """The CLI path (build_qdq on the default target, HTP v75): W16A8 on a LayerNorm + MatMul
    block is refused naming the tensor, the op and the rule (it built a model HTP refused);
    W16A16, and a 16-bit LayerNorm scale override under 16-bit activations, build a model HTP
    runs whole (the override was stored unsigned, which HTP refuses)."""
    path = builders.save(builders.transformer_mlp_block(tokens=4, dim=32), tmp_path / "t.onnx")
    stats = calibrate(path, "random:2", cache_dir=tmp_path / "c")
    with pytest.raises(BadInputError, match=r"16-bit weights cannot run on QNN HTP: tensor '"):
        build_qdq(stats, QuantPlan(weight_bitwidth=16), tmp_path / "w16a8.onnx")
    assert not (tmp_path / "w16a8.onnx").exists()
    plan = QuantPlan()
    plan.set_override(TensorOverride("ln.weight", bitwidth=16))
    with pytest.raises(BadInputError, match=r"'ln.weight' \(LayerNormalization\).*16-bit act"):
        build_qdq(stats, plan, tmp_path / "ln16.onnx")
    built = build_qdq(
        stats, QuantPlan(weight_bitwidth=16, activation_bitwidth=16), tmp_path / "a.onnx"
    )
    assert check_htp_offload(built.qdq_path) == (True, "")
    plan = QuantPlan(activation_bitwidth=16)
    plan.set_override(TensorOverride("ln.weight", bitwidth=16))
    built = build_qdq(stats, plan, tmp_path / "ln16a16.onnx")
    assert built.encodings.get("ln.weight").symmetric
    assert check_htp_offload(built.qdq_path) == (True, "")


def test_a_16_bit_plan_builds_instancenorm_scales_htp_runs(tmp_path):
    """W16A16 stored an InstanceNorm scale signed INT16, which HTP refuses on every
    architecture; the build stores it unsigned, which HTP runs."""
    case = builders.qdq_weight_case("InstanceNormalization", 8, 8, quantised=False)
    path = builders.save(case, tmp_path / "in.onnx")
    stats = calibrate(path, "random:2", cache_dir=tmp_path / "c")
    plan = QuantPlan(weight_bitwidth=16, activation_bitwidth=16)
    built = build_qdq(stats, plan, tmp_path / "in.qdq.onnx")
    enc = built.encodings.get("w")
    assert enc.bitwidth == 16 and not enc.symmetric
    assert check_htp_offload(built.qdq_path) == (True, "")
