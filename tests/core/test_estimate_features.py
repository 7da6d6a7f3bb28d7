"""The estimate's features follow the graph the QNN EP builds: real ONNX models built in the test,
featurised as the estimate featurises them (no torch, no fitted numbers asserted)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from studio.core.devices.estimate import estimate_model
from studio.core.devices.features import (
    HMX_CHANNEL_TILE,
    SPILL_BYTES,
    node_features,
    totals,
)
from studio.core.model.graph import ModelGraph
from tests.core.test_devices import _qdq_concat


def _save(tmp_path, name, nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def _feats(path):
    return {f.id: f for f in node_features(ModelGraph.load(path))}


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


@pytest.mark.parametrize("half_first", [False, True])
def test_erf_gelu_is_one_op(tmp_path, half_first):
    """x * 0.5 * (1 + erf(x / sqrt 2)) as exported (either Mul order): one Gelu (the Erf) in a
    float graph."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w"),
        _const("sqrt2", 1.4142135),
        _const("one", 1.0),
        _const("half", 0.5),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
        helper.make_node("Div", ["h", "sqrt2"], ["d"], name="div"),
        helper.make_node("Erf", ["d"], ["e"], name="erf"),
        helper.make_node("Add", ["e", "one"], ["a"], name="add"),
    ]
    if half_first:
        nodes += [
            helper.make_node("Mul", ["h", "half"], ["hh"], name="mul_half"),
            helper.make_node("Mul", ["hh", "a"], ["y"], name="mul"),
        ]
    else:
        nodes += [
            helper.make_node("Mul", ["h", "a"], ["m"], name="mul"),
            helper.make_node("Mul", ["m", "half"], ["y"], name="mul_half"),
        ]
    path = _save(
        tmp_path,
        "gelu",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 32])],
        inits,
    )
    feats = _feats(path)
    assert set(feats) == {"fc", "erf"}
    assert feats["erf"].values["norm_elems"] == 8 * 32
    assert totals(list(feats.values()))["nodes"] == 2


def test_erf_without_the_gelu_around_it_is_not_fused(tmp_path):
    nodes = [
        helper.make_node("Div", ["x", "sqrt2"], ["d"], name="div"),
        helper.make_node("Erf", ["d"], ["e"], name="erf"),
        helper.make_node("Add", ["e", "one"], ["y"], name="add"),
    ]
    path = _save(
        tmp_path,
        "erf",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 16])],
        [_const("sqrt2", 1.4142135), _const("one", 1.0)],
    )
    assert set(_feats(path)) == {"div", "erf", "add"}


def test_only_layout_transposes_are_free(tmp_path):
    """NCHW<->NHWC Transposes cancel against the layout HTP runs in; a head split does not."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Transpose", ["nhwc"], ["heads"], perm=[0, 2, 1, 3], name="heads"),
        helper.make_node("Transpose", ["heads"], ["y"], perm=[0, 3, 1, 2], name="to_nchw"),
    ]
    path = _save(
        tmp_path,
        "layout",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4, 8])],
    )
    assert set(_feats(path)) == {"relu", "heads"}


def test_matmul_of_two_activations_counts_as_macs(tmp_path):
    """Attention's Q @ K^T runs on HMX like any MatMul: its MACs are priced as MACs."""
    nodes = [
        helper.make_node("Relu", ["q"], ["qr"], name="rq"),
        helper.make_node("Relu", ["k"], ["kr"], name="rk"),
        helper.make_node("MatMul", ["qr", "kr"], ["s"], name="scores"),
    ]
    path = _save(
        tmp_path,
        "attn",
        nodes,
        [
            helper.make_tensor_value_info("q", TensorProto.FLOAT, [2, 10, 16]),
            helper.make_tensor_value_info("k", TensorProto.FLOAT, [2, 16, 12]),
        ],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 10, 12])],
    )
    assert _feats(path)["scores"].values["macs_dense"] == 2 * 10 * 16 * 12


def _conv(tmp_path, name, c_in, c_out, group):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((c_out, c_in // group, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], group=group, pads=[1, 1, 1, 1], name="conv")
    ]
    path = _save(
        tmp_path,
        name,
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, 8, 8])],
        [numpy_helper.from_array(w, "w")],
    )
    graph = ModelGraph.load(path)
    return node_features(graph)[0].values, float(graph.node_by_id["conv"].macs)


def test_grouped_convolution_pays_for_padded_channel_blocks(tmp_path):
    dense, dense_macs = _conv(tmp_path, "dense", 64, 64, 1)
    assert dense["macs_dense"] == dense_macs  # ungrouped: as counted
    narrow, narrow_macs = _conv(tmp_path, "narrow", 64, 64, 16)  # 4 input channels per group
    assert narrow["macs_dense"] == pytest.approx(narrow_macs * HMX_CHANNEL_TILE / 4)
    full, full_macs = _conv(tmp_path, "full", 128, 128, 4)  # 32 per group: one whole block
    assert full["macs_dense"] == pytest.approx(full_macs)
    dw, dw_macs = _conv(tmp_path, "dw", 32, 32, 32)  # depthwise: its own feature, unpadded
    assert dw["macs_dw"] == dw_macs and dw["macs_dense"] == 0.0


def test_activation_too_large_for_vtcm_spills(tmp_path):
    def relu(name, hw):
        nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
        shape = [1, 64, hw, hw]
        path = _save(
            tmp_path,
            name,
            nodes,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        )
        return _feats(path)["relu"].values

    small, big = relu("small", 32), relu("big", 256)
    assert small["spill_bytes"] == 0.0
    fp16_bytes = 64 * 256 * 256 * 2  # 8 MiB in fp16, above half of an 8 MB VTCM
    assert fp16_bytes > SPILL_BYTES
    assert big["spill_bytes"] == 2 * fp16_bytes  # written out, read back
    assert big["act_bytes"] == 2 * fp16_bytes


def test_each_requantised_concat_input_is_one_more_op(tmp_path):
    def concat(scale):
        feats = node_features(ModelGraph.load(_qdq_concat(tmp_path / f"c{scale}.onnx", scale)))
        return next(f for f in feats if f.op_type == "Concat").values

    shared, rescaled = concat(0.1), concat(0.05)
    assert shared["nodes"] == 1.0
    assert rescaled["nodes"] == 2.0  # the Concat and the rescale of its input at 0.05
    # the rescale reads and writes the input (int8, 4 x 8 x 8) on top of the Concat's own bytes
    assert rescaled["act_bytes"] == shared["act_bytes"] + 2 * 4 * 8 * 8


def test_tensors_above_htp_rank_are_named_in_the_estimate(tmp_path, monkeypatch):
    """A window partition through a rank-6 tensor (as Swin exports it) is flagged, not hidden."""
    monkeypatch.setenv("NPU_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    inits = [
        numpy_helper.from_array(np.array([1, 2, 2, 2, 2, 8], dtype=np.int64), "to6"),
        numpy_helper.from_array(np.array([4, 4, 8], dtype=np.int64), "to3"),
    ]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "to6"], ["w6"], name="partition"),
        helper.make_node("Transpose", ["w6"], ["t6"], perm=[0, 1, 3, 2, 4, 5], name="windows"),
        helper.make_node("Reshape", ["t6", "to3"], ["y"], name="flatten"),
    ]
    path = _save(
        tmp_path,
        "win",
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4, 8])],
        inits,
    )
    est = estimate_model(path, "Samsung Galaxy S24")
    note = next(n for n in est.notes if "rank > 5" in n)
    assert note.startswith("3 node(s)")  # partition, windows, flatten; not the Relu
    plain = estimate_model(_conv_path(tmp_path), "Samsung Galaxy S24")
    assert not any("rank > 5" in n for n in plain.notes)


def _conv_path(tmp_path):
    _conv(tmp_path, "plain", 8, 8, 1)
    return tmp_path / "plain.onnx"
