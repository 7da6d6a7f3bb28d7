"""ModelGraph on real models: structure, stable ids, stats, shape fixes, cycles, external data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.errors import ModelLoadError
from studio.core.model.graph import ModelGraph
from tests import builders

DEMO = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo_cnn.onnx"


def test_small_cnn_structure_and_stats(conv_model):
    g = ModelGraph.load(conv_model)
    assert [n.op_type for n in g.nodes][:2] == ["Conv", "Relu"]
    stem = g.node_by_id["/stem/Conv"]
    # 8 output channels, 3 input channels, 3x3 kernel, 32x32 output
    assert stem.macs == 8 * 32 * 32 * 3 * 3 * 3
    assert stem.params == 8 * 3 * 3 * 3 + 8
    assert g.node_by_id["/head/Gemm"].macs == 10 * 8
    assert g.tensors["/stem/Relu_output_0"].producer == "/stem/Relu"
    assert set(g.tensors["/stem/Relu_output_0"].consumers) == {"/block/conv/Conv", "/block/Add"}
    assert g.tensors["/stem/Relu_output_0"].shape == [1, 8, 32, 32]
    assert g.node_by_id["/block/conv/Conv"].scope == ["block", "conv"]
    summary = g.summary()
    assert summary["node_count"] == 8 and summary["op_types"]["Conv"] == 2
    assert summary["total_params"] == sum(n.params for n in g.nodes)
    assert summary["inputs"] == [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]


def test_unnamed_and_duplicate_nodes_get_stable_synthetic_ids(tmp_path):
    model = builders.conv_relu()
    model.graph.node[0].name = ""
    model.graph.node[1].name = ""
    path = builders.save(model, tmp_path / "unnamed.onnx")
    first = [n.id for n in ModelGraph.load(path).nodes]
    second = [n.id for n in ModelGraph.load(path).nodes]
    assert first == second == ["Conv_0", "Relu_1"]
    assert all(n.synthetic_id for n in ModelGraph.load(path).nodes)


def test_unsorted_graph_is_put_in_topological_order(tmp_path):
    model = builders.small_cnn()
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    path = tmp_path / "reversed.onnx"
    onnx.save(model, str(path))
    g = ModelGraph.load(path)
    seen: set[str] = set()
    for node in g.nodes:
        for t in node.inputs:
            producer = g.tensors[t].producer
            assert producer is None or producer in seen
        seen.add(node.id)


def test_cycle_is_a_clear_error(tmp_path):
    nodes = [
        helper.make_node("Add", ["x", "b"], ["a"], name="first"),
        helper.make_node("Relu", ["a"], ["b"], name="second"),
    ]
    graph = helper.make_graph(
        nodes,
        "cyclic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "cycle.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelLoadError, match="cycle") as err:
        ModelGraph.load(path)
    assert "cycle.onnx" in str(err.value)


def _dynamic_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, "h", "w"])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_dynamic_dims_reported_and_fixed_by_input_shapes(tmp_path):
    path = builders.save(_dynamic_model(), tmp_path / "dyn.onnx")
    g = ModelGraph.load(path)
    assert g.dynamic_inputs() == {"x": ["batch", 3, "h", "w"]}
    assert g.node_by_id["conv"].macs == 0  # unknown until the shape is fixed
    fixed = ModelGraph.load(path, input_shapes={"x": [2, 3, 8, 8]})
    assert fixed.dynamic_inputs() == {}
    assert fixed.tensors["y"].shape == [2, 4, 8, 8]
    assert fixed.node_by_id["conv"].macs == 2 * 4 * 8 * 8 * 3


def test_input_shape_for_unknown_input_names_the_inputs(tmp_path):
    path = builders.save(_dynamic_model(), tmp_path / "dyn.onnx")
    with pytest.raises(ModelLoadError, match="not a model input.*x"):
        ModelGraph.load(path, input_shapes={"image": [1, 3, 8, 8]})


def test_external_weights_are_read_only_on_demand(tmp_path):
    model = builders.small_cnn()
    path = tmp_path / "ext.onnx"
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.data",
        size_threshold=0,
    )
    g = ModelGraph.load(path)
    assert g.tensors["stem.weight"].external
    assert g.summary()["external_data"] is True
    # The in-memory protobuf holds no weight bytes; reading one tensor reads its own range.
    assert all(len(t.raw_data) == 0 for t in g.proto.graph.initializer)
    expected = numpy_helper.to_array(builders.small_cnn().graph.initializer[0])
    np.testing.assert_array_equal(g.initializer_array("stem.weight"), expected)


def test_demo_model_is_shipped_and_rebuilds_identically(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "build_demo_cnn", DEMO.with_name("build_demo_cnn.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rebuilt = tmp_path / "demo.onnx"
    onnx.save(module.build(), str(rebuilt))
    assert rebuilt.read_bytes() == DEMO.read_bytes()
    g = ModelGraph.load(DEMO)
    ops = g.op_histogram()
    for op in ("Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "Add", "Gemm"):
        assert op in ops
    assert any(n.attributes.get("group", 1) > 1 for n in g.nodes if n.op_type == "Conv")
    # Trained-looking weights: the per-channel ranges of the pointwise conv differ by > 2x.
    w = g.initializer_array("dsconv.pw.weight")
    ranges = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    assert ranges.max() / ranges.min() > 2.0
