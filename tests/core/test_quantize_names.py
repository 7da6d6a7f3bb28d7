"""Names survive BatchNorm folding: exported encodings match the user's ONNX, AIMET files apply.

Real model (resources/models/demo_cnn.onnx: Conv+BN+Relu blocks), real calibration, real ORT
quantiser. Also: a bitwidth-only override keeps the folded Relu range (the default path's rule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from studio.core.calibration import calibrate
from studio.core.encodings import Encoding, EncodingSet, coverage, load_encodings, save_encodings
from studio.core.quantize import QuantPlan, TensorOverride, build_qdq

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "models" / "demo_cnn.onnx"


@pytest.fixture(scope="module")
def demo_stats(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo_names")
    return calibrate(DEMO, "random:8", cache_dir=tmp / "cache")


def _original_names() -> tuple[set[str], set[str]]:
    model = onnx.load(str(DEMO))
    values = {i.name for i in model.graph.input} | {o for n in model.graph.node for o in n.output}
    return values, {t.name for t in model.graph.initializer}


def test_exported_qnn_encodings_name_only_tensors_of_the_original_model(demo_stats, tmp_path):
    result = build_qdq(demo_stats, QuantPlan(), tmp_path / "q.onnx")
    save_encodings(result.encodings, tmp_path / "enc.json", fmt="qnn")
    exported, _ = load_encodings(tmp_path / "enc.json", DEMO)
    values, inits = _original_names()
    params = [n for n, e in exported.items() if e.kind in ("param", "bias")]
    acts = [n for n, e in exported.items() if e.kind == "activation"]
    assert "res.conv1.weight" in params and "res.conv1.bias" in params  # BN folded in place
    assert "/res/bn1/BatchNormalization_output_0" in values  # fused conv output: the BN's name
    assert [n for n in params if n not in inits] == []
    assert [n for n in acts if n not in values] == []
    assert len(acts) > 10 and len(params) >= 18


def test_aimet_file_with_original_conv_weight_names_is_applied(demo_stats, tmp_path):
    prepared = onnx.load(str(demo_stats.prepared_model))
    folded = {t.name: numpy_helper.to_array(t) for t in prepared.graph.initializer}
    names = ["stem.conv.weight", "res.conv1.weight", "down.conv.weight"]
    encs = []
    for name in names:
        w = folded[name]
        # deliberately not what calibration would pick, so "applied" is visible
        scales = np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127 * 1.5
        encs.append(
            Encoding.from_scale_offset(
                name, scales, [-128] * w.shape[0], 8, symmetric=True, axis=0, kind="param"
            )
        )
    save_encodings(EncodingSet(encs), tmp_path / "aimet.encodings", fmt="aimet1")
    loaded, _ = load_encodings(tmp_path / "aimet.encodings", demo_stats.prepared_model)
    assert coverage(loaded, prepared).unknown_tensors == []
    plan = QuantPlan(imported=loaded, imported_source="aimet.encodings")
    result = build_qdq(demo_stats, plan, tmp_path / "q.onnx")
    assert not any("not in the model" in w for w in result.warnings)
    qdq = onnx.load(result.qdq_path)
    q_inits = {t.name: numpy_helper.to_array(t) for t in qdq.graph.initializer}
    for name, enc in zip(names, encs, strict=True):
        dq = next(n for n in qdq.graph.node if n.input[0] == f"{name}_quantized")
        assert np.array_equal(q_inits[dq.input[1]], np.asarray(enc.scale, dtype=np.float32))
        assert result.encodings[name].scale == pytest.approx(enc.scale, rel=1e-6)


def test_bitwidth_only_override_keeps_the_folded_relu_range(demo_stats, tmp_path):
    add, relu = "/res/Add_output_0", "/res/relu_out/Relu_output_0"
    default = QuantPlan().encodings(demo_stats, weights="none")
    assert default[add].min[0] == 0.0  # the Relu after the Add is folded: [0, max]
    plan = QuantPlan()
    plan.set_override(TensorOverride(add, bitwidth=16))
    planned = plan.encodings(demo_stats, weights="none")
    assert planned[add].bitwidth == 16
    assert planned[add].min[0] == 0.0
    assert planned[add].max[0] == pytest.approx(default[relu].max[0], rel=1e-3)
    built = build_qdq(demo_stats, plan, tmp_path / "q.onnx").encodings
    assert built[add].bitwidth == 16 and built[add].min[0] == 0.0
    # an explicit range or method in the override is still the user's
    plan.set_override(TensorOverride(add, bitwidth=16, min=-1.0, max=2.0))
    assert plan.encodings(demo_stats, weights="none")[add].min[0] < -0.9
