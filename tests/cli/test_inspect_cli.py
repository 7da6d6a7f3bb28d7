"""`npu-studio inspect`: the summary of real models, and exit 2 with one clear line on bad input."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from studio.cli import main
from tests import bad_models, builders


def _run(capsys, *argv):
    rc = main(["inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_inspect_json_summary(capsys, conv_model):
    rc, out, err = _run(capsys, conv_model, "--json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["schema_version"] == 1
    assert data["opset"] == 17
    assert data["ir_version"] == onnx.load(str(conv_model)).ir_version
    assert data["node_count"] == 8
    assert data["op_types"] == {
        "Conv": 2, "Relu": 2, "Add": 1, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1,
    }  # fmt: skip
    # stem 8*3*3*3+8, block 8*8*3*3+8, head 10*8+10
    assert data["total_params"] == 224 + 584 + 90
    # Conv MACs = out elements * in_ch * k*k; Gemm = 10*8
    assert data["total_macs"] >= 8 * 32 * 32 * 27 + 8 * 32 * 32 * 72 + 80
    assert data["inputs"] == [{"name": "input", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert data["outputs"][0]["name"] == "logits"
    assert data["dynamic_inputs"] == {}


def test_inspect_text_report(capsys, conv_model):
    rc, out, _ = _run(capsys, conv_model)
    assert rc == 0
    assert "opset 17" in out
    assert "Parameters 898" in out
    assert "Conv" in out and "GlobalAveragePool" in out
    assert "[1, 3, 32, 32]" in out


def _dynamic_model(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    graph = helper.make_graph(
        [node],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.producer_name = "pytorch"
    model.producer_version = "2.3"
    return builders.save(model, tmp_path / "dyn.onnx")


def test_dynamic_dims_reported_and_fixed(capsys, tmp_path):
    path = _dynamic_model(tmp_path)
    rc, out, _ = _run(capsys, path, "--json")
    data = json.loads(out)
    assert rc == 0
    assert data["dynamic_inputs"] == {"x": ["batch", 3, 8, 8]}
    assert data["producer"] == "pytorch 2.3"
    rc, out, _ = _run(capsys, path)
    assert "dynamic: fix with --input-shape" in out
    rc, out, _ = _run(capsys, path, "--json", "--input-shape", "x=2,3,8,8")
    data = json.loads(out)
    assert data["dynamic_inputs"] == {}
    assert data["inputs"][0]["shape"] == [2, 3, 8, 8]


def test_bad_input_shape_argument(capsys, conv_model):
    rc, _, err = _run(capsys, conv_model, "--input-shape", "nosuch=1,2")
    assert rc == 2
    assert "nosuch" in err and "not a model input" in err
    rc, _, err = _run(capsys, conv_model, "--input-shape", "input=1,a")
    assert rc == 2 and "integers" in err


@pytest.mark.parametrize("case", sorted(bad_models.CASES))
def test_bad_model_exit_2(capsys, tmp_path, case):
    make, expect = bad_models.CASES[case]
    path = make(tmp_path)
    rc, out, err = _run(capsys, path)
    assert rc == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.count("\n") == 1  # one line
    assert expect.lower() in err.lower()
    assert err.startswith("npu-studio inspect: error:")


def test_an_unknown_subcommand_is_an_error_not_a_window(capsys):
    from studio.cli import main

    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown subcommand or file 'frobnicate'" in err and "inspect" in err
