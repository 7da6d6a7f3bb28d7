"""The one topological sort (model.toposort) and its two callers: loading a model, laying it out."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from studio.core.errors import ModelLoadError
from studio.core.model import layout as lay
from studio.core.model.graph import ModelGraph
from studio.core.model.prepare import sort_nodes, topological_order
from studio.core.model.toposort import kahn_order


def test_a_sorted_graph_comes_back_as_it_is():
    edges = [(0, 1), (0, 2), (1, 3), (2, 3)]
    assert kahn_order(4, edges) == ([0, 1, 2, 3], [])


def test_ties_keep_index_order_and_repeated_edges_count_once_each_side():
    # 3 -> 1 twice (a node reading one tensor twice), 2 and 0 are free: ready in index order
    order, stuck = kahn_order(4, [(3, 1), (3, 1), (2, 1)])
    assert stuck == []
    assert order == [0, 2, 3, 1]


def test_a_cycle_leaves_its_vertices_and_those_below_it_stuck():
    # 0 -> 1 -> 2 -> 1 (cycle 1,2), 2 -> 3 (downstream), 4 alone
    order, stuck = kahn_order(5, [(0, 1), (1, 2), (2, 1), (2, 3)])
    assert order == [0, 4]
    assert stuck == [1, 2, 3]


def _relu_graph(nodes: list[onnx.NodeProto]) -> onnx.GraphProto:
    return helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )


def test_loading_orders_nodes_written_out_of_order(tmp_path):
    graph = _relu_graph(
        [
            helper.make_node("Relu", ["b"], ["y"], name="last"),
            helper.make_node("Relu", ["x"], ["a"], name="first"),
            helper.make_node("Relu", ["a"], ["b"], name="middle"),
        ]
    )
    assert topological_order(graph, tmp_path / "m.onnx") == [1, 2, 0]
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert [n.id for n in ModelGraph.load(path).nodes] == ["first", "middle", "last"]


def test_loading_names_the_nodes_of_a_cycle_and_a_self_loop(tmp_path):
    cyclic = _relu_graph(
        [
            helper.make_node("Add", ["x", "c"], ["a"], name="add"),
            helper.make_node("Relu", ["a"], ["c"], name="relu"),
            helper.make_node("Relu", ["c"], ["y"], name="after"),
        ]
    )
    with pytest.raises(ModelLoadError, match=r"cycle through 3 nodes, e\.g\. add, relu, after"):
        topological_order(cyclic, tmp_path / "c.onnx")
    selfish = _relu_graph([helper.make_node("Add", ["x", "y"], ["y"], name="loop")])
    with pytest.raises(ModelLoadError, match="node 'loop' consumes its own output 'y'") as err:
        topological_order(selfish, tmp_path / "s.onnx")
    assert "s.onnx" in str(err.value)


def test_a_rewrite_appending_a_producer_is_sorted_back_and_a_cycle_kept_at_the_end():
    # the bias-correction rewrite: a node appended after its consumer
    graph = _relu_graph(
        [
            helper.make_node("Relu", ["x"], ["a"], name="first"),
            helper.make_node("Relu", ["b"], ["y"], name="consumer"),
            helper.make_node("Relu", ["a"], ["b"], name="appended"),
        ]
    )
    sort_nodes(graph)
    assert [n.name for n in graph.node] == ["first", "appended", "consumer"]
    cyclic = _relu_graph(
        [
            helper.make_node("Relu", ["c"], ["y"], name="after"),
            helper.make_node("Add", ["x", "c"], ["a"], name="add"),
            helper.make_node("Relu", ["a"], ["c"], name="relu"),
            helper.make_node("Relu", ["x"], ["free"], name="free"),
        ]
    )
    sort_nodes(cyclic)  # no error: the cycle's nodes and the one below it keep their order
    assert [n.name for n in cyclic.node] == ["free", "after", "add", "relu"]


def test_layout_draws_a_cycle_that_collapsing_two_scopes_makes(tmp_path):
    # a/r1 -> b/r2 -> a/r3 -> c/r4: with a and b collapsed, the boxes a and b feed each other
    graph = _relu_graph(
        [
            helper.make_node("Relu", ["x"], ["t1"], name="a/r1"),
            helper.make_node("Relu", ["t1"], ["t2"], name="b/r2"),
            helper.make_node("Relu", ["t2"], ["t3"], name="a/r3"),
            helper.make_node("Relu", ["t3"], ["y"], name="c/r4"),
        ]
    )
    path = tmp_path / "scopes.onnx"
    onnx.save(helper.make_model(graph), str(path))
    layout = lay.compute(ModelGraph.load(path), {"a", "b"})
    a, b = layout.vertex_of["scope:a"], layout.vertex_of["scope:b"]
    c, x = layout.vertex_of["c/r4"], layout.vertex_of["input:x"]
    assert sorted([a, b, c, x]) == [0, 1, 2, 3]
    assert [a, b] in layout.edges.tolist() and [b, a] in layout.edges.tolist()
    y = layout.boxes[:, 1]
    # Kahn's order reaches only the input; the stuck rest is layered in index order (a, b, c)
    assert y[x] < y[a] < y[b]
    assert y[a] < y[c]
