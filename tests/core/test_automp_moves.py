"""Auto mixed precision over precision AND per-layer technique moves, priced on the target
device's latency estimate (real builds, real ORT sessions, the shipped device coefficients)."""

from __future__ import annotations

import numpy as np
import pytest

from studio.core.accuracy import Analyser, AutoMpResult, auto_mixed_precision
from studio.core.accuracy.mp_moves import Move, ranked
from studio.core.calibration import calibrate
from studio.core.devices.estimate import estimate_model
from studio.core.quantize import QuantPlan, build_qdq

DEVICE = "Samsung Galaxy S24"


@pytest.fixture
def setup(conv_model, tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    data = rng.random((6, 3, 32, 32), dtype=np.float32)
    np.savez(tmp_path / "calib.npz", input=data)
    stats = calibrate(conv_model, tmp_path / "calib.npz", cache_dir=tmp_path / "cache")
    feeds = [{"input": data[i : i + 1]} for i in range(4)]
    return stats, feeds, tmp_path


def test_moves_are_ranked_by_gain_per_estimated_ms():
    cheap = Move("a", "act16", 2.0, cost_ms=0.01)
    dear = Move("b", "act16", 3.0, cost_ms=0.10)
    free = Move("w", "seqmse", 0.5, cost_ms=0.0)
    # 1 ms model: costs under 0.01 ms rank as 0.01 ms (a free move is not infinitely good)
    assert [m.tensor for m in ranked([dear, cheap, free], 1.0)] == ["a", "w", "b"]
    assert [m.tensor for m in ranked([dear, cheap, free], None)] == ["b", "a", "w"]


def test_each_move_is_priced_by_the_estimate_of_its_own_build(setup):
    """A move's predicted ms is the device estimate of the model built with it minus the current
    point's: after a kept one-move step, the point's estimate is exactly base + prediction."""
    stats, feeds, tmp = setup
    result = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp / "mp.onnx", target_db=200.0, max_steps=2,
        device=DEVICE, min_gain_db=-1e9,  # keep every step: each is then the next base
    )  # fmt: skip
    assert result.estimated_for == DEVICE
    assert all(p.estimated_ms and p.estimated_ms > 0 for p in result.curve)
    for before, point in zip(result.curve, result.curve[1:], strict=False):
        (move,) = point.moves
        assert move["kind"] == "act16" and move["predicted_ms"] is not None
        # the same build, estimated twice: equal up to float rounding of the scales it reads
        assert point.estimated_ms == pytest.approx(
            before.estimated_ms + move["predicted_ms"], rel=1e-4
        )
    assert estimate_model(tmp / "mp.onnx", DEVICE).total_ms == pytest.approx(
        result.curve[-1].estimated_ms, rel=1e-4
    )
    assert result.curve[-1].estimated_ms > result.curve[0].estimated_ms  # 16 bits cost time
    again = AutoMpResult.from_json(result.to_json())
    assert again.to_json() == result.to_json()


def test_latency_budget_skips_moves_that_would_break_it(setup):
    stats, feeds, tmp = setup
    free = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp / "free.onnx", target_db=200.0, max_steps=3,
        device=DEVICE, min_gain_db=-1e9,
    )  # fmt: skip
    start = free.curve[0].estimated_ms
    costs = [p.moves[0]["predicted_ms"] for p in free.curve[1:]]
    dear = min(c for c in costs if c > 0)  # 16-bit tensors at new boundaries cost time
    budget = start + dear / 2
    capped = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp / "capped.onnx", target_db=200.0, max_steps=12,
        device=DEVICE, latency_budget_ms=budget, min_gain_db=-1e9,
    )  # fmt: skip
    assert capped.stopped_by_budget  # it ran out of moves that fit, not of steps
    assert len(capped.curve) < 13
    assert all(p.estimated_ms <= budget for p in capped.curve)
    chosen = [m for p in capped.curve for m in p.moves]
    assert all(m["predicted_ms"] <= dear / 2 for m in chosen)
    assert capped.to_json()["latency_budget_ms"] == budget


def test_technique_moves_per_layer_are_free_and_reproducible_from_the_plan(setup):
    """With no room for 16-bit tensors (max_promoted=0) the only moves are the MSE scale search
    per layer; the chosen plan alone rebuilds the model the search measured."""
    stats, feeds, tmp = setup
    plan = QuantPlan(weight_bitwidth=4)
    result = auto_mixed_precision(
        stats, plan, feeds, tmp / "mp.onnx", target_db=200.0, max_steps=2, max_promoted=0,
        device=DEVICE, techniques=("seqmse",), technique_feeds=feeds, min_gain_db=-1e9,
    )  # fmt: skip
    effects = {e["weight"]: e for e in result.technique_effects}
    assert set(effects) == {"stem.weight", "block.conv.weight", "head.weight"}
    assert len(result.curve) == 3 and result.promoted == []
    for point in result.curve[1:]:
        (key,) = point.techniques
        kind, weight = key.split(":", 1)
        assert kind == "seqmse" and point.moves[0]["predicted_ms"] == 0.0
        assert effects[weight]["after_db"] > effects[weight]["before_db"]
        assert point.estimated_ms == pytest.approx(result.curve[0].estimated_ms)
    assert len(result.techniques) == 2 and set(result.techniques.values()) == {"seqmse"}
    for weight in result.techniques:
        ov = result.plan.overrides[weight]
        assert ov.bitwidth == 4 and ov.scale and len(ov.scale) > 1  # pinned per-channel grid
    rebuilt = build_qdq(stats, result.plan, tmp / "again.onnx")
    analyser = Analyser(stats.prepared_model)
    db = analyser.analyse(rebuilt.qdq_path, feeds).output_sqnr_db
    assert db == pytest.approx(result.final_report.output_sqnr_db, abs=1e-6)
    # every point is its own plan: point 1 rebuilt from plan_at measures what the search did
    again = AutoMpResult.from_json(result.to_json())
    one = build_qdq(stats, again.plan_at(plan, 1), tmp / "one.onnx")
    assert analyser.analyse(one.qdq_path, feeds).output_sqnr_db == pytest.approx(
        result.curve[1].output_sqnr_db, abs=1e-6
    )


def test_adaround_moves_round_the_chosen_layers_weights(setup):
    stats, feeds, tmp = setup
    result = auto_mixed_precision(
        stats, QuantPlan(weight_bitwidth=4), feeds, tmp / "mp.onnx", target_db=200.0,
        max_steps=1, max_promoted=0, device=DEVICE, techniques=("adaround",),
        technique_feeds=feeds, min_gain_db=-1e9,
    )  # fmt: skip
    ((weight, kind),) = result.techniques.items()
    assert kind == "adaround" and result.model is not None
    from studio.core.quantize.techniques.layers import initializer

    rounded = initializer(result.model, weight)
    scale = np.asarray(result.plan.overrides[weight].scale, np.float64)
    codes = rounded.reshape(len(scale), -1) / scale[:, None]  # output channels first here
    assert np.allclose(codes, np.round(codes), atol=1e-3)  # on the pinned 4-bit grid
    assert not np.allclose(rounded, initializer(_float(stats), weight))
    rebuilt = build_qdq(stats, result.plan, tmp / "again.onnx", model=result.model)
    db = Analyser(stats.prepared_model).analyse(rebuilt.qdq_path, feeds).output_sqnr_db
    assert db == pytest.approx(result.final_report.output_sqnr_db, abs=1e-6)


def _float(stats):
    import onnx

    return onnx.load(str(stats.prepared_model))


def test_an_undone_point_is_rebuilt_from_plan_at(setup):
    """A point the search undid still names a measured configuration: plan_at gives it."""
    stats, feeds, tmp = setup
    result = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp / "mp.onnx", target_db=200.0, max_steps=2,
        device=DEVICE, min_gain_db=1e9,  # every step is undone
    )  # fmt: skip
    assert [p.kept for p in result.curve] == [True, False, False] and result.promoted == []
    analyser = Analyser(stats.prepared_model)
    for index in (1, 2):
        plan = AutoMpResult.from_json(result.to_json()).plan_at(QuantPlan(), index)
        (move,) = result.curve[index].moves
        assert set(plan.overrides) == {move["tensor"]}  # the point's own move, nothing kept
        built = build_qdq(stats, plan, tmp / f"p{index}.onnx")
        db = analyser.analyse(built.qdq_path, feeds).output_sqnr_db
        assert db == pytest.approx(result.curve[index].output_sqnr_db, abs=1e-6)


@pytest.mark.slow  # calibrates the demo on its 16 images (~3 s on an idle machine)
def test_a_4bit_head_is_widened_before_its_output(tmp_path, monkeypatch):
    """On the demo CNN at W4 the logits lose 17 dB at the Gemm head, almost all of it its
    4-bit weight's: the first move widens that weight (not the logits to 16 bits) and wins
    back most of it in one measured step."""
    from pathlib import Path

    from studio.core.accuracy.jobs import load_feeds

    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    root = Path(__file__).resolve().parents[2] / "resources" / "models"
    stats = calibrate(
        root / "demo_cnn.onnx", root / "demo_cnn_data" / "calibration", cache_dir=tmp_path / "c"
    )
    feeds = load_feeds(str(stats.prepared_model), str(root / "demo_cnn_data" / "heldout"), limit=4)
    result = auto_mixed_precision(
        stats, QuantPlan(weight_bitwidth=4), feeds, tmp_path / "mp.onnx", target_db=200.0,
        max_steps=1, device=DEVICE,
    )  # fmt: skip
    (move,) = result.curve[1].moves
    assert (move["kind"], move["tensor"]) == ("weight8", "head.fc.weight")
    assert result.curve[1].output_sqnr_db > result.curve[0].output_sqnr_db + 10.0
