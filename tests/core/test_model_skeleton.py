"""Large initializers inside the file stay on disk at load (studio.core.model.skeleton)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.calibration.collect import load_fixed
from studio.core.errors import ModelLoadError
from studio.core.model import skeleton
from studio.core.model.graph import ModelGraph
from studio.core.model.loading import read_model_proto


def _mlp(tmp_path, hidden: int = 64):
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((16, hidden)).astype(np.float32)
    w2 = rng.standard_normal((hidden, 4)).astype(np.float32)
    bias = rng.standard_normal(hidden).astype(np.float32)
    shape = np.array([1, 4], dtype=np.int64)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="/fc1/MatMul"),
        helper.make_node("Add", ["h", "b1"], ["h1"], name="/fc1/Add"),
        helper.make_node("Relu", ["h1"], ["r"], name="/act/Relu"),
        helper.make_node("MatMul", ["r", "w2"], ["y0"], name="/fc2/MatMul"),
        helper.make_node("Reshape", ["y0", "shape"], ["y"], name="/out/Reshape"),
    ]
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(bias, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(shape, "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    return path, {"w1": w1, "b1": bias, "w2": w2}


def test_large_initializers_point_into_the_file_and_read_back_exactly(tmp_path):
    path, arrays = _mlp(tmp_path)
    skel = skeleton.read_skeleton(path)
    # w1 (4 KB) is left on disk; w2 (1 KB), the bias and the int64 shape stay inline
    assert set(skel.lazy) == {"w1"} and skel.weight_bytes == arrays["w1"].nbytes
    # the reference (location, offset, length) costs a few dozen bytes instead of 4 KB
    assert skel.proto.ByteSize() < path.stat().st_size - arrays["w1"].nbytes + 100
    g = ModelGraph.load(path)
    for name, expected in arrays.items():
        np.testing.assert_array_equal(g.initializer_array(name), expected)
    assert g.tensors["w1"].shape == [16, 64] and not g.tensors["w1"].external
    assert g.tensors["y0"].shape == [1, 4] and g.tensors["h1"].shape == [1, 64]  # inferred
    assert g.node_by_id["/fc1/MatMul"].params == 16 * 64
    assert g.summary()["external_data"] is False
    assert "w1" in g.inline_weights


def test_calibration_loader_restores_every_weight(tmp_path):
    path, arrays = _mlp(tmp_path)
    proto = load_fixed(path, None)
    by_name = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for name, expected in arrays.items():
        np.testing.assert_array_equal(by_name[name], expected)
    onnx.checker.check_model(proto)


def test_truncated_file_is_still_named_as_truncated(tmp_path):
    path, _ = _mlp(tmp_path)
    data = path.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="truncated|cannot parse"):
        ModelGraph.load(cut)


def test_checker_still_runs_on_the_weightless_copy(tmp_path):
    path, _ = _mlp(tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(onnx.load(str(path)).SerializeToString().replace(b"Relu", b"Relx"))
    with pytest.raises(ModelLoadError, match="checker"):
        ModelGraph.load(bad)


def test_weightless_copy_is_small_and_restorable(tmp_path):
    path, _ = _mlp(tmp_path)
    proto = read_model_proto(path)
    copy, names = skeleton.without_weights(proto)
    assert "w1" in names and "w1" in {i.name for i in copy.graph.input}
    restored = skeleton.restore_weights(copy, proto, names)
    assert [t.name for t in restored.graph.initializer] == [t.name for t in proto.graph.initializer]
    assert "w1" not in {i.name for i in restored.graph.input}


def test_exported_like_transformer_loads_with_symbolic_shapes_and_lazy_weights(tmp_path):
    from studio.core.model.synthetic_export import exported_transformer, save_exported

    path = save_exported(exported_transformer(600, hidden=32, heads=2, ffn=64), tmp_path / "b.onnx")
    g = ModelGraph.load(path)
    assert len(g.nodes) == 600
    assert sum(n.op_type == "Constant" for n in g.nodes) > 100
    assert g.tensors["last_hidden_state"].shape == ["batch_size", "sequence_length", 32]
    assert "embeddings.word_embeddings.weight" in g.inline_weights
    word = g.initializer_array("embeddings.word_embeddings.weight")
    assert word.shape == (30522, 32) and word.dtype == np.float32 and float(word.std()) > 0.01
