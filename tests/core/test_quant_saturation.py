"""A tensor only saturating functions read is quantised over the range that can change the
output (``studio.core.quantize.saturation``): tanh-GELU's Tanh input, a gate's Sigmoid input,
HardSigmoid's exact knees; measured on real built graphs against the calibrated-range build."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.accuracy.report import SqnrReport
from studio.core.accuracy.sqnr import Analyser
from studio.core.calibration import calibrate
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq, check_htp_offload
from studio.core.quantize.saturation import saturation_limits

WIDTH = 32


def _f(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def tanh_gelu_gate(seed: int = 0) -> onnx.ModelProto:
    """magika's shape of block: Dense -> tanh-GELU (``0.5 h (1 + tanh(c (h + 0.0447 h^3)))``)
    -> Dense -> Sigmoid gate times a HardSigmoid gate. The cubic makes the Tanh input span
    thousands while tanh is flat past +-4."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="dense1"),
        helper.make_node("Mul", ["h", "h"], ["h2"], name="sq"),
        helper.make_node("Mul", ["h2", "h"], ["h3"], name="cube"),
        helper.make_node("Mul", ["h3", "k"], ["h3k"], name="cube_k"),
        helper.make_node("Add", ["h", "h3k"], ["inner"], name="inner_add"),
        helper.make_node("Mul", ["c", "inner"], ["pre"], name="pre_mul"),  # constant first
        helper.make_node("Tanh", ["pre"], ["t"], name="tanh"),
        helper.make_node("Add", ["t", "one"], ["t1"], name="t_plus_1"),
        helper.make_node("Mul", ["h", "t1"], ["ht"], name="h_t"),
        helper.make_node("Mul", ["ht", "half"], ["gelu"], name="gelu"),
        helper.make_node("MatMul", ["gelu", "w2"], ["z"], name="dense2"),
        helper.make_node("Mul", ["z", "gain"], ["zg"], name="gate_gain"),
        helper.make_node("Sigmoid", ["zg"], ["s"], name="sigmoid"),
        helper.make_node("MatMul", ["gelu", "w3"], ["u"], name="dense3"),
        helper.make_node("HardSigmoid", ["u"], ["hs"], name="hardsigmoid", alpha=0.2, beta=0.5),
        helper.make_node("Mul", ["s", "hs"], ["y"], name="gates"),
    ]
    inits = [
        _f("w1", rng.normal(0, 2.5, (WIDTH, WIDTH))),
        _f("w2", rng.normal(0, 1.0, (WIDTH, WIDTH))),
        _f("w3", rng.normal(0, 1.0, (WIDTH, WIDTH))),
        _f("k", 0.044715),
        _f("c", 0.7978845608),
        _f("one", 1.0),
        _f("half", 0.5),
        _f("gain", 0.2),
    ]
    graph = helper.make_graph(
        nodes,
        "tanh_gelu_gate",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(count: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1.0, (1, WIDTH)).astype(np.float32)} for _ in range(count)]


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("saturation")
    path = tmp / "gate.onnx"
    onnx.save(tanh_gelu_gate(), str(path))
    np.savez(tmp / "calib.npz", x=np.stack([f["x"] for f in _feeds(16, 1)]))
    stats = calibrate(path, tmp / "calib.npz", cache_dir=tmp / "c")
    return stats, tmp


def _calibrated(stats, plan: QuantPlan, names: list[str]) -> QuantPlan:
    """``plan`` with ``names`` pinned to their calibrated min/max: the build before the clip."""
    out = plan.copy()
    for name in names:
        lo, hi = stats.range(name)
        out.set_override(TensorOverride(name, min=lo, max=hi))
    return out


def test_tanh_input_range_is_cut_where_tanh_saturates(gate):
    stats, _ = gate
    lo, hi = stats.range("pre")
    assert lo < -1000 and hi > 1000  # the cubic: thousands, as magika's
    enc = QuantPlan().encodings(stats)
    # 8-bit Tanh output over [-1, 1]: flat to a quarter step (2/255/4) past atanh(1 - 1/510)
    t = 0.5 * np.log((2 - 1 / 510) / (1 / 510))
    assert enc.get("pre").max[0] == pytest.approx(t, rel=0.02)
    assert enc.get("pre").min[0] == pytest.approx(-t, rel=0.02)
    # walked back through the constant-first Mul: c * inner saturates where inner = t / c
    assert enc.get("inner").max[0] == pytest.approx(t / 0.7978845608, rel=0.02)
    # the sum of two tensors is not walked through (no one operand's range follows): kept
    assert enc.get("h3k").max[0] == pytest.approx(stats.range("h3k")[1], rel=0.01)
    # HardSigmoid(0.2 x + 0.5) is flat outside [-2.5, 2.5], exactly
    u_lo, u_hi = stats.range("u")
    assert u_lo < -2.5 and u_hi > 2.5
    assert enc.get("u").min[0] == pytest.approx(-2.5, abs=0.02)
    assert enc.get("u").max[0] == pytest.approx(2.5, abs=0.02)
    # a 16-bit Tanh output has a finer grid: the clip moves out (flat to 2/65535/4)
    wide = QuantPlan(activation_bitwidth=16).encodings(stats)
    t16 = 0.5 * np.log((2 - 1 / 131070) / (1 / 131070))
    assert wide.get("pre").max[0] == pytest.approx(t16, rel=0.02)


def test_clipped_saturating_inputs_gain_sqnr_and_run_on_htp(gate):
    stats, tmp = gate
    proto = onnx.load(str(stats.prepared_model))
    ranges = {n: stats.range(n) for n in stats.tensor_names()}
    clipped = sorted(saturation_limits(proto, ranges, QuantPlan().activation_bits))
    assert clipped == ["inner", "pre", "u", "z", "zg"]  # z: through Mul(z, gain)
    feeds = _feeds(8, 2)  # held out from the calibration draw
    analyser = Analyser(stats.prepared_model)
    for bits in (8, 16):
        plan = QuantPlan(activation_bitwidth=bits)
        before = build_qdq(stats, _calibrated(stats, plan, clipped), tmp / f"before{bits}.onnx")
        after = build_qdq(stats, plan, tmp / f"after{bits}.onnx")
        r_before = analyser.analyse(before.qdq_path, feeds)
        r_after = analyser.analyse(after.qdq_path, feeds)
        if bits == 8:
            # the Tanh output is destroyed over +-thousands (a step of ~17: |pre| < 8 -> 0),
            # and both gates lose their knee; the output gains although the cubic's own
            # 8-bit error (h3: ~7 dB) stays
            assert r_after.layer("t").sqnr_db > r_before.layer("t").sqnr_db + 20
            assert r_after.layer("hs").sqnr_db > r_before.layer("hs").sqnr_db + 5
            assert r_after.layer("s").sqnr_db > r_before.layer("s").sqnr_db + 2
            assert r_after.output_sqnr_db > r_before.output_sqnr_db + 1
        else:  # 16 bits: the clipped build is never worse
            assert r_after.output_sqnr_db >= r_before.output_sqnr_db - 0.01
    ok, reason = check_htp_offload(tmp / "after8.onnx")
    assert ok, reason


def test_clipped_tensors_are_measured_after_their_saturating_function(gate):
    """The per-layer figures of a clipped tensor compare what the saturating function makes of
    it (as for a fused Relu): against its unclipped float values the Tanh input read ~0 dB
    and its added error looked the model's worst, which is neither true nor what propagates."""
    stats, tmp = gate
    built = build_qdq(stats, QuantPlan(), tmp / "measured.onnx")
    report = Analyser(stats.prepared_model).analyse(built.qdq_path, _feeds(8, 2))
    t_db = report.layer("t").sqnr_db
    for name, node in (("pre", "tanh"), ("inner", "tanh"), ("u", "hardsigmoid")):
        layer = report.layer(name)
        assert layer.saturates_in == node and layer.fused_with is None, name
        assert layer.sqnr_db > 15, (name, layer.sqnr_db)  # was ~0 against the raw values
    # Tanh's input measured after tanh differs from its output only by the output's rounding
    assert report.layer("pre").sqnr_db >= t_db - 0.5
    assert report.layer("zg").saturates_in == report.layer("z").saturates_in == "sigmoid"
    # a tensor other ops read too is compared as it is
    assert report.layer("h").saturates_in is None
    back = SqnrReport.from_json(report.to_json())
    assert back.layer("pre").saturates_in == "tanh"
