"""Auto-MP on top of a technique: the search builds every point from a given float model
(``model=``) and, with ``bias_correction_feeds``, corrects the biases of the point it chose for
that point's own plan (a correction fitted to W8A8 is wrong once tensors are 16-bit)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.accuracy import Analyser, auto_mixed_precision
from studio.core.accuracy.automp import AutoMpResult
from studio.core.accuracy.techniques import run_techniques
from studio.core.calibration import calibrate
from studio.core.model.loading import copy_model
from studio.core.quantize import QuantPlan, build_qdq
from tests import builders


def _biases(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer if "bias" in t.name}


def test_search_from_a_technique_model_then_correct_its_own_point(tmp_path):
    stats, calib, feeds, _ = builders.calibrated_cnn(tmp_path)
    analyser = Analyser(stats.prepared_model)

    def score(plan: QuantPlan, name: str, model: onnx.ModelProto | None = None) -> float:
        built = build_qdq(stats, plan, tmp_path / f"{name}.onnx", model=model)
        return analyser.analyse(built.qdq_path, feeds).output_sqnr_db

    bc = run_techniques(
        stats, QuantPlan(), ["bias-correction"], tmp_path / "bc.onnx", calib_feeds=calib,
        eval_feeds=feeds, recalibrate=lambda p: calibrate(p, tmp_path / "d.npz"),
    )  # fmt: skip
    prepared = onnx.load(str(stats.prepared_model))
    # the technique run keeps its model before the correction: the prepared model's biases
    assert bc.uncorrected is not None
    for name, b in _biases(bc.uncorrected).items():
        assert np.array_equal(b, _biases(prepared)[name])
    assert any(
        not np.array_equal(b, _biases(prepared)[n]) for n, b in _biases(bc.technique.model).items()
    )

    # every point is built from the given model: step 0 is the W8A8 build of that model
    shifted = copy_model(prepared)
    bias = next(t for t in shifted.graph.initializer if "bias" in t.name)
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 0.5, bias.name))
    acts = len(stats.tensor_names())
    budget = max(1, int(0.15 * acts))
    common = dict(target_db=1e9, max_steps=2 * budget, max_promoted=budget, rank="measured")
    from_shifted = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp_path / "s.onnx", model=shifted, **common
    )
    assert abs(from_shifted.curve[0].output_sqnr_db - score(QuantPlan(), "s0", shifted)) < 1e-6
    assert abs(from_shifted.curve[0].output_sqnr_db - score(QuantPlan(), "p0")) > 1.0
    assert from_shifted.model is shifted  # no AdaRound, no correction: the model as given

    # then its own point's biases corrected for its own plan
    mp = auto_mixed_precision(
        stats, QuantPlan(), feeds, tmp_path / "mp.onnx", model=bc.uncorrected,
        bias_correction_feeds=calib, **common,
    )  # fmt: skip
    last = mp.curve[-1]
    assert last.techniques == ["bias-correction"] and last.extends is not None
    assert last.kept and mp.bias_corrected, [p.to_json() for p in mp.curve]
    searched = mp.curve[last.extends]
    assert searched.kept and last.output_sqnr_db > searched.output_sqnr_db + 0.05
    assert mp.final_report.output_sqnr_db == last.output_sqnr_db
    assert len(mp.promoted) <= budget
    # the result rebuilds as measured (its plan with its model), and the correction is values
    # only: the point's plan is the searched point's
    assert abs(score(mp.plan, "again", mp.model) - last.output_sqnr_db) < 1e-6
    assert mp.plan_at(QuantPlan(), len(mp.curve) - 1).to_json() == mp.plan.to_json()
    assert mp.plan_at(QuantPlan(), last.extends).to_json() == mp.plan.to_json()
    start = _biases(bc.uncorrected)
    assert any(not np.array_equal(b, start[n]) for n, b in _biases(mp.model).items())
    again = AutoMpResult.from_json(mp.to_json())
    assert again.bias_corrected and again.curve[-1].extends == last.extends
