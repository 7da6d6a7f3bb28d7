"""Broken model files for the bad-input tests of the model core, the CLI and the GUI.

Each maker writes one kind of broken file into a folder and returns its path; the ``expect``
text is a fragment the user-facing message must contain (it names the actual problem).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from tests import builders


def empty(folder: Path) -> Path:
    path = folder / "empty.onnx"
    path.write_bytes(b"")
    return path


def truncated(folder: Path) -> Path:
    data = builders.small_cnn().SerializeToString()
    path = folder / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def png_renamed(folder: Path) -> Path:
    path = folder / "picture.onnx"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64))
    return path


def checker_failure(folder: Path) -> Path:
    """A node reads a tensor nothing produces: onnx's checker rejects the graph."""
    node = helper.make_node("Relu", ["nowhere"], ["y"], name="relu")
    graph = helper.make_graph(
        [node],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "checker.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _external(folder: Path, name: str) -> Path:
    model = builders.small_cnn()
    path = folder / f"{name}.onnx"
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=f"{name}.bin",
        size_threshold=0,
    )
    return path


def missing_external_data(folder: Path) -> Path:
    path = _external(folder, "missing_weights")
    (folder / "missing_weights.bin").unlink()
    return path


def path_traversal(folder: Path) -> Path:
    """External data pointing outside the model's folder (``../``)."""
    inner = folder / "inner"
    inner.mkdir(exist_ok=True)
    path = _external(inner, "escape")
    model = onnx.load_model(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    (folder / "secret.bin").write_bytes((inner / "escape.bin").read_bytes())
    path.write_bytes(model.SerializeToString())
    return path


def cycle(folder: Path) -> Path:
    a = helper.make_node("Add", ["x", "b_out"], ["a_out"], name="a")
    b = helper.make_node("Relu", ["a_out"], ["b_out"], name="b")
    graph = helper.make_graph(
        [a, b],
        "cycle",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("b_out", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "cycle.onnx"
    path.write_bytes(model.SerializeToString())
    return path


CASES = {
    "empty": (empty, "empty"),
    "truncated": (truncated, "truncated"),
    "png": (png_renamed, "PNG"),
    "checker": (checker_failure, "checker"),
    "missing_external": (missing_external_data, "missing"),
    "path_traversal": (path_traversal, ".."),
    "cycle": (cycle, "cycle"),
}
