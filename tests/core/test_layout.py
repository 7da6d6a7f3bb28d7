"""Layout: every node gets a box, edges run downwards as polylines, scopes collapse and expand."""

from __future__ import annotations

import numpy as np
import pytest

from studio.core.model import layout as lay
from studio.core.model.graph import ModelGraph
from studio.core.model.synthetic import transformer_like
from tests import builders


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    path = builders.save(builders.small_cnn(), tmp_path_factory.mktemp("m") / "cnn.onnx")
    return ModelGraph.load(path)


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    path = builders.save(transformer_like(600), tmp_path_factory.mktemp("t") / "t.onnx")
    return ModelGraph.load(path)


def _check_geometry(layout):
    boxes = layout.boxes
    for e, (s, t) in enumerate(layout.edges.tolist()):
        line = layout.polyline(e)
        sx, sy, sw, sh = boxes[s]
        tx, ty, tw, _th = boxes[t]
        assert line[0] == pytest.approx([sx + sw / 2, sy + sh])  # leaves the bottom centre
        assert line[-1] == pytest.approx([tx + tw / 2, ty])  # enters the top centre
        assert np.all(np.diff(line[:, 1]) > 0), "edges run downwards"
    # no two boxes overlap
    order = np.lexsort((boxes[:, 0], boxes[:, 1]))
    for a, b in zip(order[:-1], order[1:], strict=True):
        if boxes[a, 1] == boxes[b, 1]:
            assert boxes[a, 0] + boxes[a, 2] <= boxes[b, 0]


def test_small_cnn_layout(cnn):
    layout = lay.compute(cnn)
    node_ids = [n.id for n in cnn.nodes]
    assert layout.ids[: len(node_ids)] == node_ids
    assert layout.ids[len(node_ids) :] == ["input:input", "output:logits"]
    assert layout.labels[0] == "Conv"
    # 8 node->node edges (Relu feeds Conv and Add) + input edge + output edge
    assert len(layout.edges) == 10
    _check_geometry(layout)
    x, y, w, h = layout.bounds()
    assert w > 0 and h > 8 * lay.Y_STEP
    # the residual edge Relu -> Add skips a layer, so it is routed through a bend
    relu, add = layout.vertex_of["/stem/Relu"], layout.vertex_of["/block/Add"]
    edge = [i for i, e in enumerate(layout.edges.tolist()) if e == [relu, add]][0]
    assert len(layout.polyline(edge)) >= 3


def test_without_io_vertices(cnn):
    layout = lay.compute(cnn, show_io=False)
    assert layout.size == len(cnn.nodes)
    assert len(layout.edges) == 8


def test_scopes(transformer):
    groups = lay.scope_groups(transformer)
    assert groups["encoder"] == sum(1 for n in transformer.nodes if n.scope[:1] == ["encoder"])
    level2 = lay.scopes_at_depth(transformer, 2)
    assert "encoder/layer.0" in level2
    assert all(s.count("/") == 1 for s in level2)


def test_collapse_and_expand(transformer):
    full = lay.compute(transformer)
    scope = "encoder/layer.0"
    members = [n.id for n in transformer.nodes if n.scope[:2] == ["encoder", "layer.0"]]
    folded = lay.compute(transformer, {scope})
    gid = lay.GROUP_PREFIX + scope
    assert folded.members[gid] == members
    assert folded.size == full.size - len(members) + 1
    v = folded.vertex_of[gid]
    assert folded.kinds[v] == lay.KIND_GROUP
    assert folded.labels[v] == "layer.0"
    assert all(folded.vertex_of[m] == v for m in members)
    assert not any(s == t for s, t in folded.edges.tolist())
    assert any(t == v for _, t in folded.edges.tolist())  # something flows in
    assert any(s == v for s, _ in folded.edges.tolist())  # and out
    _check_geometry(folded)
    # nested collapse: the outer scope wins
    outer = lay.compute(transformer, {"encoder", "encoder/layer.0"})
    assert list(outer.members) == [lay.GROUP_PREFIX + "encoder"]
    # expanding is laying out without the scope
    again = lay.compute(transformer, set())
    assert again.ids == full.ids
    np.testing.assert_allclose(again.boxes, full.boxes)


def test_level_collapse_makes_a_big_model_small(transformer):
    folded = lay.compute(transformer, lay.scopes_at_depth(transformer, 1))
    assert folded.size < 20
    _check_geometry(folded)


def test_synthetic_ids_have_no_scope(tmp_path):
    model = builders.small_cnn()
    for node in model.graph.node:
        node.name = ""
    graph = ModelGraph.load(builders.save(model, tmp_path / "unnamed.onnx"))
    assert all(n.synthetic_id and n.scope == [] for n in graph.nodes)
    layout = lay.compute(graph, lay.scopes_at_depth(graph, 1))
    assert layout.members == {}
    assert layout.ids[0] == "Conv_0"


def test_edges_spanning_many_layers_run_in_a_side_lane(tmp_path):
    from studio.core.model.synthetic_export import exported_transformer, save_exported

    model = exported_transformer(900, hidden=16, heads=2, ffn=32)
    graph = ModelGraph.load(save_exported(model, tmp_path / "bert.onnx"))
    layout = lay.compute(graph)
    _check_geometry(layout)
    mask = layout.vertex_of["/Mul"]  # the attention mask, added in every layer
    lane = [e for e, (s, _t) in enumerate(layout.edges.tolist()) if s == mask]
    tall = [e for e in lane if len(layout.polyline(e)) == 4]
    assert len(tall) >= 2  # the later layers' masks are too far below to be routed by igraph
    left = float(layout.boxes[:, 0].min())
    for e in tall:
        assert layout.polyline(e)[1:3, 0] == pytest.approx([layout.polyline(e)[1, 0]] * 2)
        assert layout.polyline(e)[1, 0] < left  # the lane is left of every box
