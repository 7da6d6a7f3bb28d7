"""Per-layer SQNR of tensors quantised with their Relu/Clip's range reflects the real error.

demo_cnn (resources/models) at W8A8 with real random calibration, built by the real ORT
quantiser in two configurations that keep pre-activation tensors quantised (so they are tapped):
symmetric activations (ORT keeps the Relus), and a 16-bit Relu output after an 8-bit Conv. Such a
tensor is quantised on its activation's range; compared with the raw float value it read 2-24 dB
while the model output was ~40 dB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from studio.core.accuracy import SqnrReport, analyse
from studio.core.calibration import calibrate
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "models" / "demo_cnn.onnx"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo_fused")
    stats = calibrate(DEMO, "random:16", cache_dir=tmp / "cache")
    rng = np.random.default_rng(7)
    feeds = [{"image": rng.random((1, 3, 64, 64), dtype=np.float32)} for _ in range(8)]
    return stats, feeds, tmp


def _relu16() -> QuantPlan:
    plan = QuantPlan()
    plan.set_override(TensorOverride("/res/relu1/Relu_output_0", bitwidth=16))
    return plan


@pytest.mark.parametrize(
    "name, make_plan",
    [("symmetric", lambda: QuantPlan(activation_symmetric=True)), ("relu16", _relu16)],
)
def test_pre_activation_tensors_are_measured_after_their_activation(demo, name, make_plan):
    stats, feeds, tmp = demo
    result = build_qdq(stats, make_plan(), tmp / f"{name}.onnx")
    report = analyse(stats.prepared_model, result.qdq_path, feeds)
    by_name = {layer.tensor: layer for layer in report.layers}
    out_db = report.output_sqnr_db
    assert 30.0 < out_db < 60.0
    too_low = {x.tensor: round(x.sqnr_db, 1) for x in report.layers if x.sqnr_db < out_db - 10}
    assert "/res/bn1/BatchNormalization_output_0" in by_name  # tapped: it has a Q
    assert too_low == {}
    fused = [layer for layer in report.layers if layer.fused_with]
    assert "/res/bn1/BatchNormalization_output_0" in {layer.tensor for layer in fused}
    float_model = onnx.load(str(stats.prepared_model))
    consumer = {n.input[0]: n for n in float_model.graph.node if n.input}
    for layer in fused:
        act = consumer[layer.tensor]
        assert act.op_type in ("Relu", "Clip") and layer.fused_with == act.name
        after = by_name.get(act.output[0])
        if after is not None:  # the activation's own output: nearly the same figure
            assert abs(layer.sqnr_db - after.sqnr_db) < 1.5, (layer.tensor, after.tensor)
    # the tag survives the report's JSON (what the GUI and the project store)
    back = SqnrReport.from_json(report.to_json())
    assert {x.tensor for x in back.layers if x.fused_with} == {x.tensor for x in fused}
