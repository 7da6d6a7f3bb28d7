"""Device catalogue and on-device estimate: real shipped data, real models built with onnx.helper."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from studio.core.devices.catalogue import (
    DEFAULT_DEVICE,
    UnknownDeviceError,
    load_catalogue,
    resolve_device,
)
from studio.core.devices.estimate import estimate_model, load_coefficients
from tests import builders


def test_catalogue_matches_qualcomm_file():
    cat = load_catalogue()
    assert cat.source["package"] == "qai-hub-models" and cat.source["version"]
    assert len(cat.devices) >= 40
    s24 = resolve_device("Samsung Galaxy S24")
    assert (s24.chipset, s24.htp_arch, s24.soc_model, s24.fp16) == (
        "Snapdragon 8 Gen 3",
        75,
        57,
        True,
    )
    assert s24.provider_options() == {"soc_model": "57", "htp_arch": "75"}


@pytest.mark.parametrize(
    "name", ["samsung galaxy s24", "Snapdragon 8 Gen 3", "qualcomm-snapdragon-8gen3"]
)
def test_names_chipsets_and_aliases_resolve(name):
    assert resolve_device(name).soc_model == 57


def test_default_target_is_one_catalogue_entry():
    assert resolve_device(None).name == DEFAULT_DEVICE
    assert resolve_device(None) == resolve_device(DEFAULT_DEVICE)


def test_unknown_device_names_it_and_close_matches():
    with pytest.raises(UnknownDeviceError) as err:
        resolve_device("Galaxy S42")
    msg = str(err.value)
    assert "Galaxy S42" in msg and "Samsung Galaxy S2" in msg


def _conv_chain(path, channels: int, layers: int, size: int = 32):
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    c_in = 3
    for i in range(layers):
        w = numpy_helper.from_array(
            rng.standard_normal((channels, c_in, 3, 3)).astype(np.float32), f"w{i}"
        )
        inits.append(w)
        nodes.append(
            helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"conv{i}")
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev, c_in = f"r{i}", channels
    onnx.save(
        builders.float_model(
            "chain", nodes, inits, [1, 3, size, size], [1, channels, size, size], y=prev
        ),
        path,
    )
    return path


def test_estimate_is_per_node_and_grows_with_work(tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    small = estimate_model(_conv_chain(tmp_path / "s.onnx", 16, 2), "Samsung Galaxy S24")
    big = estimate_model(_conv_chain(tmp_path / "b.onnx", 128, 6, 64), "Samsung Galaxy S24")
    assert big.total_ms > 3 * small.total_ms
    assert big.total_ms == pytest.approx(big.overhead_ms + sum(n.ms for n in big.nodes))
    # each Relu is fused into its Conv by the QNN compiler: it costs nothing of its own
    assert {n.id for n in big.nodes} == {f"conv{i}" for i in range(6)}
    assert big.precision == "fp16" and big.kind == "estimated"
    assert big.label.startswith("≈") and "Samsung Galaxy S24 (estimated" in big.label
    # another device of another HTP generation gives another figure
    other = estimate_model(tmp_path / "b.onnx", "Samsung Galaxy S22 5G")
    assert other.total_ms != pytest.approx(big.total_ms, rel=1e-3)


def test_estimate_cache_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    path = _conv_chain(tmp_path / "m.onnx", 32, 3)
    first = estimate_model(path, "Samsung Galaxy S25")
    files = list((tmp_path / "cache" / "estimates").glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    data["total_ms"] = 123.0  # a cached entry is what a second call returns
    files[0].write_text(json.dumps(data))
    assert estimate_model(path, "Samsung Galaxy S25").total_ms == 123.0
    assert estimate_model(path, "Samsung Galaxy S25", use_cache=False).total_ms == pytest.approx(
        first.total_ms
    )


def test_qdq_model_is_estimated_at_its_int_precision(tmp_path, monkeypatch):
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    fp = builders.save(builders.small_cnn(), tmp_path / "f.onnx")
    q = builders.quantize_for_qnn(fp, tmp_path / "q.onnx")
    est_f = estimate_model(fp, "Samsung Galaxy S24")
    est_q = estimate_model(q, "Samsung Galaxy S24")
    assert est_f.precision == "fp16"
    assert est_q.precision == "w8a8"
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in est_q.nodes)


def test_coefficients_record_their_fit_set():
    prov = load_coefficients()["provenance"]
    assert "resnet18" in prov["fit_models"] and "resnext101" in prov["fit_models"]
    assert prov["measurements"]["package"] == "qai-hub-models"


def test_engine_default_target_is_the_catalogue_default():
    from studio.core.devices import catalogue
    from studio.core.engine import sessions

    dev = resolve_device(None)
    assert sessions.DEFAULT_HTP_TARGET == {
        "device": dev.name,
        "soc_model": str(dev.soc_model),
        "htp_arch": str(dev.htp_arch),
    }
    assert sessions.TARGET_ENV == catalogue.TARGET_ENV


def test_set_target_reaches_sessions_and_current_device(monkeypatch):
    from studio.core.devices.catalogue import current_device
    from studio.core.engine import sessions

    monkeypatch.delenv(sessions.TARGET_ENV, raising=False)
    s25 = resolve_device("Samsung Galaxy S25")
    sessions.set_htp_target(s25.name, s25.soc_model, s25.htp_arch)
    assert current_device() == s25
    assert sessions.apply_htp_target({}) == {"soc_model": "69", "htp_arch": "79"}
    # options that name an architecture themselves are left alone
    assert sessions.apply_htp_target({"soc_model": "60"}) == {"soc_model": "60"}


def test_phone_cpu_figure_is_labelled_assumed(tmp_path, monkeypatch):
    from studio.core.devices.estimate import ASSUMED_CPU

    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    est = estimate_model(_conv_chain(tmp_path / "c.onnx", 64, 4, 64), "Samsung Galaxy S24")
    assert est.cpu_total_ms == pytest.approx(sum(est.cpu_nodes.values()))
    assert est.cpu_total_ms > est.total_ms  # the NPU beats the phone CPU on convolutions
    data = est.to_json()
    assert "assumed" in data["cpu_label"] and data["cpu_assumptions"] == ASSUMED_CPU


def _flatten_head(path, dynamic: bool):
    """Conv -> Reshape(x, [1, -1]) -> Gemm, the reshape target either computed from the Conv's
    Shape as a dynamic torch export writes it (Shape -> Gather -> Unsqueeze -> Concat) or given
    as a constant."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((10, 8 * 16 * 16)).astype(np.float32), "fc"),
    ]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv")]
    if dynamic:
        inits += [
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1"),
            numpy_helper.from_array(np.array([0], dtype=np.int64), "axes"),
        ]
        nodes += [
            helper.make_node("Shape", ["c"], ["s"], name="shape"),
            helper.make_node("Gather", ["s", "zero"], ["n"], axis=0, name="gather"),
            helper.make_node("Unsqueeze", ["n", "axes"], ["n1"], name="unsqueeze"),
            helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0, name="concat"),
        ]
    else:
        inits.append(numpy_helper.from_array(np.array([1, -1], dtype=np.int64), "target"))
    nodes += [
        helper.make_node("Reshape", ["c", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "fc"], ["y"], transB=1, name="fc"),
    ]
    onnx.save(builders.float_model("head", nodes, inits, [1, 3, 16, 16], [1, 10]), path)
    return path


def test_shape_arithmetic_of_a_dynamic_export_is_folded_before_featurising(tmp_path):
    from studio.core.devices.features import node_features, totals
    from studio.core.model.graph import ModelGraph

    dynamic = ModelGraph.load(_flatten_head(tmp_path / "dyn.onnx", True))
    static = ModelGraph.load(_flatten_head(tmp_path / "static.onnx", False))
    assert {"shape", "gather", "unsqueeze", "concat"} <= set(dynamic.node_by_id)
    feats = node_features(dynamic)
    # the Reshape feeding only the Gemm is the FullyConnected's input reshape (QNN EP fusion)
    assert [f.id for f in feats] == ["conv", "fc"]
    assert totals(feats) == pytest.approx(totals(node_features(static)))
    assert totals(feats)["macs_dense"] > 10 * 8 * 16 * 16  # the Gemm's MACs are counted


def test_phone_cpu_figure_follows_the_assumed_constants(tmp_path):
    from studio.core.assignment.assumptions import Assumptions
    from studio.core.assignment.scoring import device_costs_for
    from studio.core.model.graph import ModelGraph

    path = _conv_chain(tmp_path / "c.onnx", 64, 3, 32)
    base = estimate_model(path, "Samsung Galaxy S24")
    faster = estimate_model(path, "Samsung Galaxy S24", assumptions={"cpu_macs_per_ms": 4e7})
    assert faster.total_ms == base.total_ms  # the NPU estimate is fitted, not assumed
    assert faster.cpu_assumptions["macs_per_ms"] == 4e7
    conv = "conv1"  # compute-bound: twice the MAC rate halves its compute time
    assert faster.cpu_nodes[conv] < 0.6 * base.cpu_nodes[conv]
    # the assignment's CPU costs and the estimate's CPU figure are the same numbers
    graph = ModelGraph.load(path)
    costs = device_costs_for(graph, "Samsung Galaxy S24", Assumptions({"cpu_macs_per_ms": 4e7}))
    assert costs["cpu"][conv][0] == pytest.approx(faster.cpu_nodes[conv])


def _qdq_concat(path, second_scale: float):
    """Two int8 activations concatenated: the second quantised at ``second_scale``, the output
    (and the first input) at 0.1."""
    inits = [
        numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s_a"),
        numpy_helper.from_array(np.array(second_scale, dtype=np.float32), "s_b"),
        numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s_out"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "zp"),
    ]
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
        helper.make_node("Sigmoid", ["x"], ["b"], name="sig_b"),
        helper.make_node("QuantizeLinear", ["a", "s_a", "zp"], ["qa"], name="qa"),
        helper.make_node("DequantizeLinear", ["qa", "s_a", "zp"], ["da"], name="da"),
        helper.make_node("QuantizeLinear", ["b", "s_b", "zp"], ["qb"], name="qb"),
        helper.make_node("DequantizeLinear", ["qb", "s_b", "zp"], ["db"], name="db"),
        helper.make_node("Concat", ["da", "db"], ["cat"], axis=1, name="concat"),
        helper.make_node("QuantizeLinear", ["cat", "s_out", "zp"], ["qc"], name="qc"),
        helper.make_node("DequantizeLinear", ["qc", "s_out", "zp"], ["y"], name="dc"),
    ]
    onnx.save(builders.float_model("qcat", nodes, inits, [1, 4, 8, 8], [1, 8, 8, 8]), path)
    return path


def test_concat_requantisation_counts_only_inputs_at_another_scale(tmp_path):
    from studio.core.devices.features import node_features
    from studio.core.model.graph import ModelGraph

    def concat(scale):
        feats = node_features(ModelGraph.load(_qdq_concat(tmp_path / f"c{scale}.onnx", scale)))
        return next(f for f in feats if f.op_type == "Concat").values

    shared, rescaled = concat(0.1), concat(0.05)
    assert shared["requant_bytes"] == 0.0  # one scale: a copy
    assert rescaled["requant_bytes"] == 4 * 8 * 8  # the int8 input at 0.05 is rescaled
    assert shared["concat_bytes"] == rescaled["concat_bytes"] == 8 * 8 * 8
