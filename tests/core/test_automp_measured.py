"""Auto-MP ranked by measured sensitivity, on a graph with silero_vad's failure: an STFT
magnitude ``sqrt(re² + im²)`` whose squares, sum and root are in series.

With the 8-bit rounding of any one of them left, 16 bits on the others buys nothing: the greedy
search by estimated added error measured ~0 dB for each such move, undid it, and on silero_vad
(PyPI ``silero-vad==6.2.3``) promoted 0 of 32 tensors. Measured from the all-16-bit end, each of
them alone costs most of the gap, so the measured ranking promotes them first and carries the
no-gain steps of the chain until it completes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.accuracy import Analyser, auto_mixed_precision
from studio.core.accuracy.automp import AutoMpResult, measured_sensitivity
from studio.core.calibration import calibrate
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq

BINS = 64


def _magnitude_net(blocks: int = 4) -> onnx.ModelProto:
    """x [1, 2, BINS] (re, im) -> |X| = sqrt(re² + im²) -> ``blocks`` residual blocks
    (MatMul, bias, Relu, scale, add) -> MatMul -> Sigmoid: ~30 tensors, so that 15% of them
    is a handful and the chain of three is within it."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.asarray([0], np.int64), "s0"),
        numpy_helper.from_array(np.asarray([1], np.int64), "s1"),
        numpy_helper.from_array(np.asarray([2], np.int64), "s2"),
        numpy_helper.from_array(np.asarray([1], np.int64), "ax"),
        numpy_helper.from_array(np.asarray(0.5, np.float32), "half"),
        numpy_helper.from_array(rng.normal(0, 0.3, (BINS, 8)).astype(np.float32), "w_out"),
    ]
    nodes = [
        helper.make_node("Slice", ["x", "s0", "s1", "ax"], ["re"], name="re"),
        helper.make_node("Slice", ["x", "s1", "s2", "ax"], ["im"], name="im"),
        helper.make_node("Mul", ["re", "re"], ["re2"], name="re2"),
        helper.make_node("Mul", ["im", "im"], ["im2"], name="im2"),
        helper.make_node("Add", ["re2", "im2"], ["power"], name="power"),
        helper.make_node("Sqrt", ["power"], ["mag"], name="mag"),
    ]
    h = "mag"
    for i in range(blocks):
        inits += [
            numpy_helper.from_array(rng.normal(0, 0.15, (BINS, BINS)).astype(np.float32), f"w{i}"),
            numpy_helper.from_array(rng.normal(0, 0.1, (1, 1, BINS)).astype(np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [h, f"w{i}"], [f"mm{i}"], name=f"fc{i}"),
            helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"lin{i}"], name=f"bias{i}"),
            helper.make_node("Relu", [f"lin{i}"], [f"act{i}"], name=f"relu{i}"),
            helper.make_node("Mul", [f"act{i}", "half"], [f"half{i}"], name=f"scale{i}"),
            helper.make_node("Add", [f"half{i}", h], [f"res{i}"], name=f"residual{i}"),
        ]
        h = f"res{i}"
    nodes += [
        helper.make_node("MatMul", [h, "w_out"], ["logits"], name="fc_out"),
        helper.make_node("Sigmoid", ["logits"], ["y"], name="out"),
    ]
    graph = helper.make_graph(
        nodes,
        "magnitude",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, BINS])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _spectra(count: int, seed: int) -> np.ndarray:
    """Spectrum-like re/im: a few strong bins, most near zero (a power spread over decades)."""
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(-11.0, 1.5, (count, 1, 1, BINS)))
    return (scale * rng.standard_normal((count, 1, 2, BINS))).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("automp_measured")
    path = tmp / "mag.onnx"
    onnx.save(_magnitude_net(), path)
    np.savez(tmp / "calib.npz", x=_spectra(16, 1))
    stats = calibrate(path, tmp / "calib.npz", cache_dir=tmp / "c")
    feeds = [{"x": s} for s in _spectra(8, 2)]
    analyser = Analyser(stats.prepared_model)

    def score(plan: QuantPlan, name: str) -> float:
        built = build_qdq(stats, plan, tmp / f"{name}.onnx")
        return analyser.analyse(built.qdq_path, feeds).output_sqnr_db

    w8 = score(QuantPlan(), "w8")
    w16 = score(QuantPlan(activation_bitwidth=16), "w16")
    return tmp, stats, feeds, w8, w16, score


def test_sensitivity_puts_the_magnitude_chain_first(setup):
    tmp, stats, feeds, w8, w16, _ = setup
    assert w16 > w8 + 6.0, (w8, w16)  # a gap worth winning back
    names = [n for n in stats.tensor_names() if n != "x"]
    base, drops = measured_sensitivity(stats, QuantPlan(), names, feeds, tmp / "probe.onnx")
    assert abs(base - w16) < 0.01  # the all-16-bit point, measured on the same samples
    top = sorted(drops, key=lambda n: -drops[n])[:3]
    assert set(top) <= {"re2", "im2", "power", "mag", "re", "im"}, drops
    assert not (tmp / "probe.onnx").exists()


def test_measured_search_wins_back_the_gap_where_the_estimate_cannot(setup):
    tmp, stats, feeds, w8, w16, score = setup
    acts = len(stats.tensor_names())
    budget = max(1, int(0.15 * acts))
    runs = {}
    for rank in ("gain", "measured"):
        runs[rank] = auto_mixed_precision(
            stats, QuantPlan(), feeds, tmp / f"mp_{rank}.onnx", target_db=w16,
            max_steps=2 * budget, step_size=1, max_promoted=budget, rank=rank,
        )  # fmt: skip
    measured = runs["measured"]
    recovered = (measured.final_report.output_sqnr_db - w8) / (w16 - w8)
    assert recovered >= 0.75, (recovered, w8, w16, [p.to_json() for p in measured.curve])
    assert len(measured.promoted) <= budget
    assert any(p.carried for p in measured.curve)  # the chain's first step measured no gain
    gain = runs["gain"].final_report.output_sqnr_db
    assert measured.final_report.output_sqnr_db > gain + 1.0, (gain, measured.final_report)

    # every point, carried ones included, rebuilds as the configuration it measured
    for index, point in enumerate(measured.curve):
        plan = measured.plan_at(QuantPlan(), index)
        assert abs(score(plan, f"at{index}") - point.output_sqnr_db) < 1e-6, index
    # and the result survives its JSON
    again = AutoMpResult.from_json(measured.to_json())
    assert [p.carried for p in again.curve] == [p.carried for p in measured.curve]
    assert again.sensitivity.keys() == measured.sensitivity.keys()


def test_an_undone_step_drops_the_carried_moves_before_it(setup):
    """plan_at after a carried step and an undone one: back to the last kept point."""
    tmp, stats, feeds, w8, w16, _ = setup
    result = AutoMpResult(target_db=w16, met=False, plan=QuantPlan())
    from studio.core.accuracy.automp import CurvePoint

    def point(step, tensor, kept, carried):
        move = {"tensor": tensor, "kind": "act16", "gain_db": 1.0, "predicted_ms": None}
        result.move_overrides[f"act16:{tensor}"] = TensorOverride(tensor, bitwidth=16).to_json()
        return CurvePoint(step, 0, 0.0, [tensor], kept=kept, moves=[move], carried=carried)

    result.curve = [
        CurvePoint(0, 0, 0.0),
        point(1, "re2", False, True),  # carried
        point(2, "im2", False, False),  # undone: re2 goes too
        point(3, "power", True, False),
    ]
    wide = lambda plan: {n for n, ov in plan.overrides.items() if ov.bitwidth == 16}  # noqa: E731
    assert wide(result.plan_at(QuantPlan(), 2)) == {"re2", "im2"}
    assert wide(result.plan_at(QuantPlan(), 3)) == {"power"}
    result.curve[2].kept = True  # had step 2 gained, step 3 would have built on both
    assert wide(result.plan_at(QuantPlan(), 3)) == {"re2", "im2", "power"}


def test_a_rewritten_pair_scores_as_the_build_with_that_width(setup):
    """The refinement scores rewritten copies of one build instead of building each candidate:
    a tensor's pair rewritten to 16 bits must give about the figure the real build with that
    tensor at 16 bits gives (within 1 dB: the build nudges the range so that 0 is a code and
    converts at the 8/16-bit boundaries). Downwards the build differs by design: onnxruntime's
    mixed-precision fixer puts a narrowed tensor's producer inputs and consumer outputs at 8
    bits too, while the sensitivity measures the tensor alone; it must still measure a loss."""
    from studio.core.accuracy.automp import _OutputScorer, _with_width

    tmp, stats, feeds, w8, w16, score = setup
    scorer = _OutputScorer(stats.prepared_model, feeds)
    narrow = onnx.load(str(build_qdq(stats, QuantPlan(), tmp / "n.onnx").qdq_path))
    wide_plan = QuantPlan(activation_bitwidth=16)
    wide = onnx.load(str(build_qdq(stats, wide_plan, tmp / "w.onnx").qdq_path))
    assert abs(scorer(narrow.SerializeToString()) - w8) < 0.01
    assert abs(scorer(wide.SerializeToString()) - w16) < 0.01
    for name in ("power", "re2"):
        plan = QuantPlan()
        plan.set_override(TensorOverride(name, bitwidth=16))
        up = scorer(_with_width(narrow, name, 16))
        assert abs(up - score(plan, f"up_{name}")) < 1.0, name
        assert scorer(_with_width(wide, name, 8)) < w16 - 0.5, name
    assert _with_width(narrow, "power", 8) is None  # already 8 bits
    assert _with_width(narrow, "no_such_tensor", 16) is None


def test_refined_search_also_wins_back_the_gap(setup):
    tmp, stats, feeds, w8, w16, _ = setup
    budget = max(1, int(0.15 * len(stats.tensor_names())))
    run = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp / "mp_refined.onnx", target_db=w16,
        max_steps=2 * budget, step_size=1, max_promoted=budget, rank="measured", refine=3,
    )  # fmt: skip
    recovered = (run.final_report.output_sqnr_db - w8) / (w16 - w8)
    assert recovered >= 0.75 and len(run.promoted) <= budget, (recovered, run.promoted)
