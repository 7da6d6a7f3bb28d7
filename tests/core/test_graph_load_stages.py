"""ModelGraph in two stages: the structure first (to draw), then checker, shapes and statistics."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from studio.core.errors import ModelLoadError
from studio.core.model.graph import ModelGraph
from tests import builders


def test_structure_first_then_shapes_and_stats_match_a_full_load(tmp_path):
    path = builders.save(builders.small_cnn(), tmp_path / "small_cnn.onnx")
    full = ModelGraph.load(path)
    quick = ModelGraph.load(path, shapes=False)
    assert quick.shapes_pending and not full.shapes_pending
    assert [n.id for n in quick.nodes] == [n.id for n in full.nodes]
    hidden = "/stem/Conv_output_0"
    assert full.tensors[hidden].shape == [1, 8, 32, 32]
    assert quick.tensors[hidden].shape is None  # not declared in the file: inferred later
    assert quick.tensors[hidden].producer == full.tensors[hidden].producer
    assert quick.tensors["input"].shape == full.tensors["input"].shape  # declared: known now
    assert quick.total_macs == 0 and full.total_macs > 0

    tensors_before = set(quick.tensors)
    quick.complete()
    assert not quick.shapes_pending
    assert set(quick.tensors) == tensors_before  # filled in, never added (a reader may iterate)
    assert quick.tensors[hidden].shape == [1, 8, 32, 32]
    assert {n.id: (n.macs, n.params, n.activation_bytes) for n in quick.nodes} == {
        n.id: (n.macs, n.params, n.activation_bytes) for n in full.nodes
    }
    quick.complete()  # a second call does nothing
    assert quick.total_macs == full.total_macs


def test_unsorted_nodes_are_sorted_in_the_first_stage(tmp_path):
    nodes = [
        helper.make_node("Relu", ["b"], ["c"], name="second"),
        helper.make_node("Neg", ["a"], ["b"], name="first"),
    ]
    graph = helper.make_graph(
        nodes,
        "unsorted",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2, 3])],
    )
    path = tmp_path / "unsorted.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    quick = ModelGraph.load(path, shapes=False)
    assert [n.id for n in quick.nodes] == ["first", "second"]
    assert [n.index for n in quick.nodes] == [0, 1]
    quick.complete()
    assert quick.tensors["b"].shape == [2, 3]


def test_a_cycle_is_named_in_the_first_stage(tmp_path):
    nodes = [
        helper.make_node("Relu", ["a", "c"], ["b"], name="r"),
        helper.make_node("Neg", ["b"], ["c"], name="n"),
    ]
    graph = helper.make_graph(
        nodes,
        "cycle",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "cycle.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ModelLoadError, match="cycle"):
        ModelGraph.load(path, shapes=False)


def test_the_checker_refuses_in_the_second_stage(tmp_path):
    path = builders.save(builders.small_cnn(), tmp_path / "small_cnn.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(path.read_bytes().replace(b"Relu", b"Relx"))
    quick = ModelGraph.load(bad, shapes=False)  # the structure parses: it can be drawn
    assert "Relx" in quick.op_histogram()
    with pytest.raises(ModelLoadError, match="checker") as info:
        quick.complete()
    assert str(bad) in str(info.value)
    assert quick.shapes_pending


def test_attributes_and_scopes_of_the_first_stage_are_those_of_the_protobuf(tmp_path):
    """Attributes are read on first use and scope lists shared per prefix: same values."""
    from studio.core.model.graph import scope_of
    from studio.core.model.prepare import attribute_value

    path = builders.save(builders.small_cnn(), tmp_path / "small_cnn.onnx")
    proto = onnx.load(str(path))
    quick = ModelGraph.load(path, shapes=False)
    assert any(not isinstance(n.attribute_source, dict) for n in quick.nodes)  # not read yet
    for node, raw in zip(quick.nodes, proto.graph.node, strict=True):
        assert node.attributes == {a.name: attribute_value(a) for a in raw.attribute}
        assert node.scope == scope_of(raw.name)
    assert any(n.attributes for n in quick.nodes)
    fresh = ModelGraph.load(path, shapes=False)
    fresh.complete()  # reads every node's attributes before the protobuf is swapped
    assert all(isinstance(n.attribute_source, dict) for n in fresh.nodes)
    assert [n.attributes for n in fresh.nodes] == [n.attributes for n in quick.nodes]


def test_file_based_shape_inference_equals_the_in_memory_one():
    """The second stage infers shapes through files (that binding releases the GIL, so the window
    keeps running); it must infer exactly what the in-memory call does, symbolic dims included."""
    from studio.core.model.prepare import _onnx_infer

    model = builders.small_cnn()
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    expected = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    got = _onnx_infer(model)
    assert len(got.graph.value_info) == len(expected.graph.value_info) > 0
    assert got.graph.value_info == expected.graph.value_info
    assert got.graph.output == expected.graph.output
