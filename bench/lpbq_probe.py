"""Which QNN HTP architectures take INT4 weights, per-channel and block-wise (BQ/LPBQ), from a
QDQ model: one real HTP session per catalogue architecture with CPU fallback disabled.

    python bench/lpbq_probe.py [--block 32] [--out FILE]

Each case is a one-layer QDQ model built with onnx.helper (opset 21, INT4 symmetric weights,
uint8 or uint16 activations): a 1x1 and a 3x3 Conv over 64 input channels, a Gemm and a
MatMul [64, 32]. Block-wise cases are tried with the EP option
``enable_block_quant_weight_optimization`` off (QNN's float block-scale path) and on (QNN
converts to LPBQ). Accepted cases also give HTP's output error relative to onnxruntime's CPU
kernels on one input (emulated HTP on x86-64). The rules in
``studio/core/quantize/blockwise.py`` are these figures. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure  # noqa: E402

CIN, COUT = 64, 32


def _act_qdq(name: str, nodes: list, inits: list, act16: bool) -> str:
    scale = 0.05 / 256 if act16 else 0.05
    ztype, zero = (TensorProto.UINT16, 32768) if act16 else (TensorProto.UINT8, 128)
    inits += [
        numpy_helper.from_array(np.array(scale, np.float32), f"{name}.s"),
        helper.make_tensor(f"{name}.z", ztype, [], [zero]),
    ]
    nodes += [
        helper.make_node("QuantizeLinear", [name, f"{name}.s", f"{name}.z"], [f"{name}.q"]),
        helper.make_node("DequantizeLinear", [f"{name}.q", f"{name}.s", f"{name}.z"], [f"{name}.dq"]),
    ]  # fmt: skip
    return f"{name}.dq"


def case_model(op: str, kernel: int, block: int | None, act16: bool) -> onnx.ModelProto:
    """One ``op`` layer with an INT4 weight, per-channel (``block`` None) or block-wise."""
    rng = np.random.default_rng(0)
    nodes: list = []
    inits: list = []
    x = _act_qdq("x", nodes, inits, act16)
    if op == "Conv":
        w = rng.normal(0, 0.1, (COUT, CIN, kernel, kernel)).astype(np.float32)
        axis = 1 if block else 0
    else:
        w = rng.normal(0, 0.1, (CIN, COUT)).astype(np.float32)
        axis = 0 if block else 1
    if block:
        from studio.core.quantize.blockwise import block_scales

        scales = block_scales(w, axis, block)
        full = np.repeat(scales, block, axis=axis)
        attrs = {"axis": axis, "block_size": block}
    else:
        scales = np.abs(w).max(axis=tuple(a for a in range(w.ndim) if a != axis)) / 7.0
        shape = [1] * w.ndim
        shape[axis] = -1
        full = scales.reshape(shape)
        attrs = {"axis": axis}
    codes = np.clip(np.round(w / full), -8, 7).astype(np.int8)
    inits += [
        helper.make_tensor("w.q", TensorProto.INT4, list(w.shape), codes.ravel().tolist()),
        numpy_helper.from_array(scales.astype(np.float32), "w.s"),
        helper.make_tensor("w.z", TensorProto.INT4, list(scales.shape), [0] * scales.size),
    ]
    nodes.append(helper.make_node("DequantizeLinear", ["w.q", "w.s", "w.z"], ["w"], **attrs))
    if op == "Conv":
        nodes.append(helper.make_node("Conv", [x, "w"], ["y"], pads=[kernel // 2] * 4))
        shapes = ([1, CIN, 16, 16], [1, COUT, 16, 16])
    else:
        nodes.append(helper.make_node(op, [x, "w"], ["y"]))
        shapes = ([1, CIN], [1, COUT])
    y = _act_qdq("y", nodes, inits, act16)
    nodes.append(helper.make_node("Identity", [y], ["out"]))
    graph = helper.make_graph(
        nodes,
        "int4_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shapes[0])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shapes[1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def main() -> int:
    import tempfile

    from studio.core.devices.catalogue import load_catalogue
    from studio.core.engine.sessions import make_session

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--out")
    args = parser.parse_args()
    devices = load_catalogue().devices
    archs = sorted({d.htp_arch for d in devices})
    reps = {a: next(d for d in devices if d.htp_arch == a) for a in archs}
    cases = [("Conv", 1), ("Conv", 3), ("Gemm", 1), ("MatMul", 1)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="int4-probe-") as tmp:
        for op, k in cases:
            for block in (None, args.block):
                for act16 in (False, True):
                    path = Path(tmp) / "m.onnx"
                    onnx.save(case_model(op, k, block, act16), path)
                    cpu, _ = make_session(path, "cpu")
                    shape = cpu.get_inputs()[0].shape
                    feed = {"x": np.random.default_rng(1).random(shape).astype(np.float32)}
                    ref = cpu.run(None, feed)[0]
                    for opt in ("0", "1") if block else ("0",):
                        row = {
                            "op": op if op != "Conv" else f"Conv{k}x{k}",
                            "weights": f"int4 block {block}" if block else "int4 per-channel",
                            "activations": 16 if act16 else 8,
                            "enable_block_quant_weight_optimization": int(opt),
                            "accepted": [],
                            "refused": [],
                            "rel_error": {},
                        }
                        for arch in archs:
                            opts = reps[arch].provider_options()
                            if block:
                                opts["enable_block_quant_weight_optimization"] = opt
                            try:
                                sess, _ = make_session(
                                    path, "htp", disable_cpu_fallback=True, provider_options=opts
                                )
                                out = sess.run(None, feed)[0]
                            except Exception:  # noqa: BLE001 - a probe records refusals
                                row["refused"].append(arch)
                                continue
                            row["accepted"].append(arch)
                            err = np.sqrt(np.mean((out - ref) ** 2))
                            row["rel_error"][f"v{arch}"] = round(
                                float(err / (np.sqrt(np.mean(ref**2)) + 1e-12)), 5
                            )
                        rows.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "bench": "lpbq_probe",
        "what": "QNN HTP sessions (x86-64 emulator, CPU fallback disabled) per architecture",
        "architectures": archs,
        "rows": rows,
    }
    return _measure.emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
