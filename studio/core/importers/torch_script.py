"""Runs inside the user's Python (``--python PATH``) or the studio's own: PyTorch -> ONNX.

This file is sent as it is to another interpreter, so it imports only the standard library at the
top and torch/numpy/onnx inside ``main``, and imports nothing from the studio. It reads one JSON
request (argv[1]) and writes JSON lines on stdout (``progress``, then one ``result`` or
``error``); the exporter's own messages go to stderr, which the studio shows as the job's log. Only
files come back: the ONNX model and an ``.npz`` of the inputs and the source's outputs on them.

Request: ``{"mode": "inspect"|"convert", "source": PATH, "kind": "torchscript"|"exported_program",
"output": OUT.onnx, "reference": REF.npz, "input_shapes": {name: [dims]}, "seed": 0}``.
"""

from __future__ import annotations

import importlib.util
import json
import sys

DYNAMO_OPSET = 18  # the torch.export-based exporter's own opset; QNN EP takes it
TORCHSCRIPT_OPSET = 17  # the TorchScript exporter's most exercised opset; QNN EP takes it


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def fail(kind: str, message: str, **fields: object) -> None:
    emit("error", kind=kind, message=message, **fields)
    sys.exit(3)


def check_packages(kind: str) -> None:
    needed = ["torch", "onnx", "numpy"] + (["onnxscript"] if kind == "exported_program" else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        fail(
            "missing",
            f"{sys.executable} lacks {', '.join(missing)}: install with "
            f"'{sys.executable} -m pip install {' '.join(missing)}'",
            packages=missing,
        )


def input_specs(program, kind):
    """[(name, shape or None, dynamic)] of the user inputs, from the program itself."""
    specs = []
    if kind == "exported_program":
        import torch

        examples = None
        if getattr(program, "example_inputs", None):
            examples = list(program.example_inputs[0])
        nodes = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
        for i, name in enumerate(program.graph_signature.user_inputs):
            val = nodes[name].meta.get("val")
            dims = [d if isinstance(d, int) else None for d in getattr(val, "shape", [])]
            example = None
            if examples and i < len(examples) and isinstance(examples[i], torch.Tensor):
                example = list(examples[i].shape)
            dtype = str(getattr(val, "dtype", "torch.float32")).replace("torch.", "")
            specs.append(
                {
                    "name": name,
                    "shape": dims,
                    "example": example,
                    "dtype": dtype,
                    "dynamic": any(d is None for d in dims),
                }
            )
    else:
        for arg in program.forward.schema.arguments[1:]:
            specs.append(
                {
                    "name": arg.name,
                    "shape": None,
                    "example": None,
                    "dtype": "float32",
                    "dynamic": True,
                }
            )
    return specs


def main() -> None:
    with open(sys.argv[1]) as fh:
        request = json.load(fh)
    kind = request["kind"]
    check_packages(kind)
    import numpy as np
    import torch

    emit(
        "progress",
        fraction=0.05,
        text=f"loading {request['source']} with torch {torch.__version__}",
    )
    try:
        if kind == "exported_program":
            program = torch.export.load(request["source"])
        else:
            program = torch.jit.load(request["source"], map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - reported to the studio as a message
        fail("load", f"torch could not load the file: {type(exc).__name__}: {exc}")
    specs = input_specs(program, kind)
    if request.get("mode") == "inspect":
        emit("result", inputs=specs, torch_version=torch.__version__)
        return
    shapes = request.get("input_shapes") or {}
    unknown = sorted(set(shapes) - {s["name"] for s in specs})
    if unknown:
        fail(
            "input_shape",
            f"no input named {', '.join(unknown)} (inputs: {', '.join(s['name'] for s in specs)})",
        )
    missing = [s for s in specs if s["name"] not in shapes and s["dynamic"]]
    if missing:
        hints = " ".join(
            f"--input-shape {s['name']}=" + ",".join(str(d) for d in (s["example"] or ["D0", "D1"]))
            for s in missing
        )
        fail(
            "dynamic",
            "inputs with dynamic or unrecorded shapes: "
            f"{', '.join(s['name'] for s in missing)}; QNN needs static shapes: give {hints}",
        )
    gen = torch.Generator().manual_seed(int(request.get("seed", 0)))
    args = []
    for s in specs:
        dims = shapes.get(s["name"]) or s["shape"]
        dtype = getattr(torch, s["dtype"], torch.float32)
        if dtype.is_floating_point:
            args.append(torch.randn(*dims, generator=gen, dtype=torch.float32).to(dtype))
        else:
            args.append(torch.randint(0, 8, tuple(dims), generator=gen, dtype=dtype))
    args = tuple(args)
    module = program.module() if kind == "exported_program" else program
    if kind == "exported_program" and (shapes or any(s["dynamic"] for s in specs)):
        emit("progress", fraction=0.15, text="re-exporting the program with static input shapes")
        program = torch.export.export(module, args, strict=False)
        module = program.module()
    emit("progress", fraction=0.2, text="running the source model on random inputs")
    with torch.no_grad():
        ref = module(*args)
    flat = list(ref) if isinstance(ref, (tuple, list)) else [ref]
    if not all(isinstance(t, torch.Tensor) for t in flat):
        fail(
            "outputs",
            "the model returns something other than tensors (a dict or None); "
            "return a tensor or a tuple of tensors",
        )
    names = [s["name"] for s in specs]
    emit("progress", fraction=0.3, text="exporting to ONNX")
    try:
        if kind == "exported_program":
            opset = DYNAMO_OPSET
            torch.onnx.export(
                program,
                args,
                request["output"],
                dynamo=True,
                opset_version=opset,
                optimize=True,
                external_data=False,
            )
        else:
            opset = TORCHSCRIPT_OPSET
            out_names = ["output"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]
            torch.onnx.export(
                module,
                args,
                request["output"],
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                input_names=names,
                output_names=out_names,
                dynamic_axes=None,
            )
    except Exception as exc:  # noqa: BLE001
        fail("export", f"{type(exc).__name__}: {exc}")
    emit("progress", fraction=0.9, text="saving the reference inputs and outputs")
    arrays = {f"input:{n}": a.detach().float().numpy() for n, a in zip(names, args)}  # noqa: B905
    arrays.update({f"output:{i}": t.detach().float().numpy() for i, t in enumerate(flat)})
    np.savez(request["reference"], **arrays)
    emit(
        "result",
        inputs=specs,
        opset=opset,
        torch_version=torch.__version__,
        exporter="torch.export (dynamo)" if kind == "exported_program" else "TorchScript",
        outputs=len(flat),
    )


if __name__ == "__main__":
    main()
