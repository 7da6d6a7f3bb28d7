"""Cross-cutting hardening: huge external-data models, no unsafe deserialisation, no stray libraries."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import numpy as np
import onnx
import psutil
import pytest
from onnx import TensorProto, helper

from studio.core.model.graph import ModelGraph

STUDIO = Path(__file__).resolve().parents[2] / "studio"
DEMO = STUDIO.parent / "resources" / "models" / "demo_cnn.onnx"
BIG_ELEMENTS = 600_000_000  # float32: 2.4 GB of weights, more than protobuf's 2 GB limit


def _huge_external_model(folder: Path) -> Path:
    """A MatMul whose 2.4 GB weight lives in a sparse external file (no disk space used)."""
    weight = TensorProto()
    weight.name = "huge.weight"
    weight.data_type = TensorProto.FLOAT
    weight.dims.extend([BIG_ELEMENTS // 1000, 1000])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (
        ("location", "huge.data"),
        ("offset", "0"),
        ("length", str(BIG_ELEMENTS * 4)),
    ):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "huge.weight"], ["y"], name="/fc/MatMul")],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, BIG_ELEMENTS // 1000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "huge.onnx"
    onnx.save(model, str(path))
    with open(folder / "huge.data", "wb") as handle:
        handle.truncate(BIG_ELEMENTS * 4)
    return path


def test_2gb_external_data_model_opens_without_loading_weights(tmp_path):
    path = _huge_external_model(tmp_path)
    gc.collect()
    process = psutil.Process()
    before = process.memory_info().rss
    graph = ModelGraph.load(path)
    grown = process.memory_info().rss - before
    assert graph.total_params == BIG_ELEMENTS
    assert graph.node_by_id["/fc/MatMul"].macs == BIG_ELEMENTS
    assert graph.summary()["external_data"] is True
    assert grown < 200 * 2**20, f"opening grew RSS by {grown / 2**20:.0f} MiB"
    # One slice of the weights can still be read on demand (it is zeros: a sparse file).
    ref = graph.external_refs["huge.weight"]
    assert ref.length == BIG_ELEMENTS * 4


def _builtin_calls(tree: ast.AST) -> list[tuple[str, int]]:
    """Calls of bare names (``eval(...)``), not methods such as ``QDialog.exec()``."""
    return [
        (node.func.id, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("source", sorted(STUDIO.rglob("*.py")), ids=lambda p: p.name)
def test_no_pickle_eval_or_custom_op_libraries(source):
    """No unsafe deserialisation anywhere; custom op libraries only through an explicit user path."""
    tree = ast.parse(source.read_text(), filename=str(source))
    assert not {"pickle", "cPickle", "dill", "marshal", "shelve"} & _imports(tree), source
    for name, line in _builtin_calls(tree):
        assert name not in {"eval", "exec"}, f"{source}:{line} calls {name}"
    text = source.read_text()
    assert "allow_pickle=True" not in text, f"{source} enables pickle in numpy loading"
    if "register_custom_ops_library" in text:
        assert "custom_op_library" in text, f"{source} loads custom ops without a user-given path"


def test_pickled_calibration_arrays_are_refused_not_unpickled(tmp_path, capsys):
    """A .npy holding Python objects could run code when unpickled: the studio refuses the file."""
    from studio.cli import main

    bad = tmp_path / "objects.npy"
    np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    out = tmp_path / "q.onnx"
    code = main(["quantize", str(DEMO), "-o", str(out), "--calib", str(bad)])
    assert code == 2
    assert "objects.npy" in capsys.readouterr().err
    assert not out.exists()
