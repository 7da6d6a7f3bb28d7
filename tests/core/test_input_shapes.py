"""The one input-shape fixer (model.prepare.fix_input_shapes) and each place that uses it.

Loading a model (``ModelGraph.load``), calibration (``load_fixed``) and the copy a QNN session
opens (``engine.feeds.write_fixed_copy``) used to fix shapes three ways with three errors; the
same bad request must now give the same error everywhere.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from studio.core.calibration import load_fixed
from studio.core.engine.feeds import needs_fixed_shapes, write_fixed_copy
from studio.core.errors import ModelLoadError
from studio.core.model.graph import ModelGraph
from studio.core.model.prepare import fix_input_shapes
from tests import builders


def _dynamic_cnn(tmp_path):
    """conv_relu with a symbolic batch on the input and the output, as exporters write it."""
    model = builders.conv_relu()
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    return builders.save(model, tmp_path / "dyn.onnx")


def _two_inputs() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["s"], name="add")],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 4]),
        ],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", 4])],
        value_info=[helper.make_tensor_value_info("s", TensorProto.FLOAT, ["n", 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _dims(vi: onnx.ValueInfoProto) -> list:
    return [
        d.dim_value if d.HasField("dim_value") else d.dim_param
        for d in vi.type.tensor_type.shape.dim
    ]


def test_a_symbolic_dim_is_fixed_wherever_the_graph_uses_it():
    model = _two_inputs()
    fix_input_shapes(model, {"a": [3, 4]}, "two.onnx")
    assert _dims(model.graph.input[0]) == [3, 4]
    # b, the output and the value_info shared the name "n": they are 3 now too
    assert _dims(model.graph.input[1]) == [3, 4]
    assert _dims(model.graph.output[0]) == [3, 4]
    assert _dims(model.graph.value_info[0]) == [3, 4]


def test_one_symbolic_dim_cannot_get_two_sizes():
    model = _two_inputs()
    with pytest.raises(ModelLoadError, match=r"dim 'n' two sizes: 3 \(a\) and 5 \(b\)"):
        fix_input_shapes(model, {"a": [3, 4], "b": [5, 4]}, "two.onnx")
    assert _dims(model.graph.input[0]) == ["n", 4]  # nothing changed before the error


def test_anonymous_dims_are_fixed_one_by_one():
    """Paddle writes every unknown size as '?': ppocr's classifier input is [?, 3, ?, ?]. Each
    '?' is its own size, so H=48 and W=192 are accepted, loaded and run."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "paddle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["?", 3, "?", "?"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["?", 3, "?", "?"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    fix_input_shapes(model, {"x": [1, 3, 48, 192]}, "cls.onnx")
    assert _dims(model.graph.input[0]) == [1, 3, 48, 192]
    assert _dims(model.graph.output[0]) == ["?", 3, "?", "?"]  # '?' shares nothing: left alone
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"x": -np.ones((1, 3, 48, 192), np.float32)})[0]
    assert out.shape == (1, 3, 48, 192) and not out.any()


def test_an_input_without_a_shape_takes_the_given_rank():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph)
    fix_input_shapes(model, {"x": [2, 5]}, None)
    assert _dims(model.graph.input[0]) == [2, 5]


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (
            {"image": [1, 3, 16, 16]},
            r"--input-shape names image, which is not a model input \(inputs: x\)",
        ),
        ({"image": [1], "mask": [1]}, r"names image, mask, which are not model inputs"),
        ({"x": [1, 3, 16]}, r"--input-shape x has 3 dims but the input has 4"),
    ],
)
def test_every_caller_refuses_the_same_request_with_the_same_error(tmp_path, shapes, message):
    path = _dynamic_cnn(tmp_path)
    with pytest.raises(ModelLoadError, match=message) as graph_err:
        ModelGraph.load(path, input_shapes=shapes)  # the model package's caller
    with pytest.raises(ModelLoadError, match=message) as calib_err:
        load_fixed(path, shapes)  # calibration's caller
    with pytest.raises(ModelLoadError, match=message) as needs_err:
        needs_fixed_shapes(path, shapes)  # the engine's check before a session
    with pytest.raises(ModelLoadError, match=message) as copy_err:
        write_fixed_copy(path, shapes, tmp_path)  # the engine's copy for QNN
    texts = {str(e.value) for e in (graph_err, calib_err, needs_err, copy_err)}
    assert len(texts) == 1 and "dyn.onnx" in texts.pop()
    assert not (tmp_path / "dyn.fixed.onnx").exists()


def test_a_fixed_dim_can_be_given_another_size_on_every_path(tmp_path):
    # a fully convolutional model at another resolution: every path takes the new input size
    # (shapes the model declares elsewhere are the model's: only symbolic dims follow the input)
    path = _dynamic_cnn(tmp_path)
    shapes = {"x": [1, 3, 32, 32]}
    graph = ModelGraph.load(path, input_shapes=shapes)
    assert graph.tensors["x"].shape == [1, 3, 32, 32]
    assert _dims(load_fixed(path, shapes).graph.input[0]) == [1, 3, 32, 32]
    assert needs_fixed_shapes(path, shapes)
    session = ort.InferenceSession(
        str(write_fixed_copy(path, shapes, tmp_path)), providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {"x": np.ones((1, 3, 32, 32), np.float32)})
    assert out.shape == (1, 8, 32, 32)


def test_loading_a_model_with_a_fixed_batch(tmp_path):
    graph = ModelGraph.load(_dynamic_cnn(tmp_path), input_shapes={"x": [4, 3, 16, 16]})
    assert graph.dynamic_inputs() == {}
    assert graph.tensors["y"].shape == [4, 8, 16, 16]
    assert graph.node_by_id["/conv1/Conv"].macs == 4 * 8 * 16 * 16 * 3 * 3 * 3


def test_calibration_reads_the_model_with_the_batch_fixed(tmp_path):
    proto = load_fixed(_dynamic_cnn(tmp_path), {"x": [2, 3, 16, 16]})
    assert _dims(proto.graph.input[0]) == [2, 3, 16, 16]
    assert _dims(proto.graph.output[0]) == [2, 8, 16, 16]
    assert proto.graph.initializer[0].raw_data or proto.graph.initializer[0].float_data


def test_the_session_copy_is_fixed_and_runs(tmp_path):
    path = _dynamic_cnn(tmp_path)
    shapes = {"x": [2, 3, 16, 16]}
    assert needs_fixed_shapes(path, shapes)
    assert not needs_fixed_shapes(path, None)
    copy = write_fixed_copy(path, shapes, tmp_path)
    assert copy == tmp_path / "dyn.fixed.onnx"
    fixed = onnx.load(str(copy))
    assert _dims(fixed.graph.input[0]) == [2, 3, 16, 16]
    assert _dims(fixed.graph.output[0]) == [2, 8, 16, 16]
    assert not needs_fixed_shapes(copy, shapes)  # nothing left to fix: no second copy
    session = ort.InferenceSession(str(copy), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].shape == [2, 8, 16, 16]
    (out,) = session.run(None, {"x": np.ones((2, 3, 16, 16), np.float32)})
    assert out.shape == (2, 8, 16, 16) and np.all(out >= 0)


@pytest.mark.parametrize("text", ["1,a,3", "", "1,0,3", "-1,3"])
def test_typed_dims_are_refused_the_same_on_the_command_line_and_in_core(text):
    from studio.cli.common import parse_input_shapes
    from studio.core.errors import BadInputError
    from studio.core.model.prepare import parse_dims

    with pytest.raises(BadInputError, match=r"input 'x': '.*' is not a list of positive integers"):
        parse_dims(text, "input 'x'")
    with pytest.raises(BadInputError, match=r"--input-shape x: '.*' is not a list of positive"):
        parse_input_shapes([f"x={text}"])


def test_typed_dims_take_commas_or_x():
    from studio.cli.common import parse_input_shapes
    from studio.core.model.prepare import parse_dims

    assert parse_dims("1, 3,224,224", "x") == [1, 3, 224, 224]
    assert parse_dims("1x3x8x8", "x") == [1, 3, 8, 8]
    assert parse_input_shapes(["a=1,2", "b:c=3x4"]) == {"a": [1, 2], "b:c": [3, 4]}
