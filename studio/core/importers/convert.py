"""One entry point for every source format: sniff, convert, check, name, then write atomically.

The result is an ordinary ONNX model plus a sidecar ``OUT.onnx.import.json`` holding the settings
it was made with, the source's sha256 (so a changed source is re-imported) and the comparison
with the source framework. Nothing is written when the input is bad; a conversion whose outputs
disagree with the source is written but reported as disagreeing (``agrees: false``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from studio.core.atomic import atomic_write_bytes, atomic_write_json, read_json_strict
from studio.core.errors import BadInputError
from studio.core.hashing import file_sha256
from studio.core.importers import checks, naming, sniff
from studio.core.jobs.protocol import JobContext

SCHEMA_VERSION = 1
SOURCE_SUFFIXES = (".pt", ".pt2", ".tflite")
SIDECAR_SUFFIX = ".import.json"


def is_importable(path: str | Path) -> bool:
    """Whether ``path`` is a source the importers take (by suffix; the bytes decide later)."""
    return Path(path).suffix.lower() in SOURCE_SUFFIXES


def sidecar_path(output: str | Path) -> Path:
    return Path(str(output) + SIDECAR_SUFFIX)


def reference_path(output: str | Path) -> Path:
    """The random inputs and the source framework's outputs on them (``input:NAME``,
    ``output:NAME``), to compare later models (the QDQ one, on HTP) with the source."""
    return Path(str(output) + ".reference.npz")


def encodings_path(output: str | Path) -> Path:
    """Where a quantised TFLite source's scales and zero points are written (AIMET 2.0.0)."""
    return Path(str(output) + ".encodings.json")


def inspect_source(
    source: str | Path, python: str | None = None, ctx: JobContext | None = None
) -> dict[str, Any]:
    """The source's inputs (name, shape, example shape, dynamic) to prefill an input-shape form."""
    ctx = ctx or JobContext()
    found = sniff.sniff(source)
    if found.kind == sniff.TFLITE:
        from studio.core.importers.tflite_reader import read_tflite

        graph = read_tflite(source)
        inputs = [
            {"name": n, "shape": s, "example": s, "dtype": d, "dynamic": False}
            for n, s, d in graph.inputs
        ]
        return {"kind": found.kind, "what": found.what, "inputs": inputs}
    from studio.core.importers.pytorch import resolve_python, run_torch_script

    interpreter = resolve_python(python)
    event = run_torch_script(
        interpreter,
        {"mode": "inspect", "source": str(Path(source).resolve()), "kind": found.kind},
        ctx,
    )
    return {
        "kind": found.kind,
        "what": found.what,
        "inputs": event["inputs"],
        "python": interpreter,
    }


def import_model(
    source: str | Path,
    output: str | Path,
    *,
    python: str | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    seed: int = 0,
    ctx: JobContext | None = None,
) -> dict[str, Any]:
    """Convert ``source`` to ONNX at ``output``; returns the sidecar record (also written)."""
    ctx = ctx or JobContext()
    source = Path(source).resolve()
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise BadInputError("the output must be an .onnx file", path=str(output))
    started = time.monotonic()
    found = sniff.sniff(source)
    ctx.log(f"{source.name}: {found.what}")
    with tempfile.TemporaryDirectory(prefix="studio-import-") as tmp:
        if found.kind == sniff.TFLITE:
            model, inputs, reference, settings = _from_tflite(source, input_shapes, seed, ctx)
            expected_outputs = [o.name for o in model.graph.output]
            ref_name = "LiteRT interpreter (ai-edge-litert)"
            if settings["quantised_source"]:
                ref_name += ", its quantised outputs dequantised"
        else:
            model, inputs, reference, settings = _from_torch(
                source, found.kind, Path(tmp), python, input_shapes, seed, ctx
            )
            expected_outputs = None  # torch outputs carry no names; order is compared
            ref_name = f"torch {settings['torch_version']}"
        ctx.check_cancelled()
        renamed = naming.apply_module_names(model)
        if renamed:
            ctx.log(f"{renamed} nodes named after their source modules")
        staged = Path(tmp) / "model.onnx"
        onnx.save(model, staged)
        ctx.progress(0.92, "comparing outputs with the source framework")
        check = checks.compare(
            staged,
            inputs,
            reference,
            ref_name,
            expected_outputs,
            steps=settings.get("output_steps") if settings.get("quantised_source") else None,
        )
        ctx.log(check.summary())
        record = {
            "schema_version": SCHEMA_VERSION,
            "source": str(source),
            "source_sha256": file_sha256(source),
            "source_kind": found.kind,
            "output": str(output.resolve()),
            "settings": {
                "python": python,
                "input_shapes": input_shapes or {},
                "seed": seed,
                **settings,
            },
            "inputs": [{"name": k, "shape": list(v.shape)} for k, v in inputs.items()],
            "outputs": [o.name for o in model.graph.output],
            "check": check.to_json(),
            "seconds": round(time.monotonic() - started, 3),
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output, staged.read_bytes())
        encodings = tflite_encodings(record)
        if encodings is not None:
            ctx.progress(0.95, "building the QDQ model with the TFLite encodings")
            enc_tmp = Path(tmp) / "encodings.json"
            atomic_write_json(enc_tmp, encodings)
            qdq_check = _qdq_check(staged, enc_tmp, inputs, reference, ref_name, Path(tmp), ctx)
            ctx.log("QDQ model with the carried encodings: " + qdq_check.summary())
            # the float graph of an integer model differs by its quantisation: informational
            record["float_graph_check"] = record["check"]
            record["check"] = qdq_check.to_json()
            record["encodings"] = str(encodings_path(output).resolve())
            atomic_write_json(encodings_path(output), encodings)
        ref_file = Path(tmp) / "reference.npz"
        np.savez(
            ref_file,
            **{f"input:{k}": v for k, v in inputs.items()},
            **{f"output:{name}": r for name, r in zip(record["outputs"], reference, strict=True)},
        )
        record["reference"] = str(reference_path(output).resolve())
        atomic_write_bytes(reference_path(output), ref_file.read_bytes())
        atomic_write_json(sidecar_path(output), record)
    ctx.progress(1.0, "imported" if check.agrees else "imported, outputs disagree")
    return record


def needs_reimport(record: dict[str, Any]) -> bool:
    """True when the source named in an import record changed (or the output is gone)."""
    source = Path(str(record.get("source", "")))
    output = Path(str(record.get("output", "")))
    if not source.is_file() or not output.is_file():
        return source.is_file()
    return file_sha256(source) != record.get("source_sha256")


def reimport(record: dict[str, Any], ctx: JobContext | None = None) -> dict[str, Any]:
    """Run the import again with the settings it was made with."""
    settings = record.get("settings", {})
    return import_model(
        record["source"],
        record["output"],
        python=settings.get("python"),
        input_shapes=settings.get("input_shapes") or None,
        seed=int(settings.get("seed", 0)),
        ctx=ctx,
    )


def read_record(output: str | Path) -> dict[str, Any]:
    return read_json_strict(sidecar_path(output), error_type=BadInputError)


def _from_tflite(
    source: Path, input_shapes: dict[str, list[int]] | None, seed: int, ctx: JobContext
) -> tuple[onnx.ModelProto, dict[str, np.ndarray], list[np.ndarray], dict[str, Any]]:
    """Read the flatbuffer, run LiteRT on random inputs, return what to compare against.

    An int8/int16 model gets random integer inputs on its own grid; the ONNX model (float)
    gets the same values dequantised, LiteRT's integer outputs are dequantised, and a streaming
    model's state inputs start at the values its CALL_ONCE subgraph assigns, its state outputs
    being compared with the tensors LiteRT assigns back.
    """
    from studio.core.importers.tflite_reader import OPSET, read_tflite

    ctx.progress(0.1, "reading the TFLite flatbuffer")
    graph = read_tflite(source)
    known = {n: s for n, s, _ in graph.inputs}
    for name, shape in (input_shapes or {}).items():
        if name not in known:
            raise BadInputError(f"no input named '{name}' (inputs: {', '.join(known)})")
        if list(shape) != list(known[name]):
            raise BadInputError(
                f"input '{name}' is fixed at {known[name]} in the TFLite model; it cannot be "
                f"re-shaped to {shape}"
            )
    ctx.log("TFLite operators: " + ", ".join(f"{k} x{v}" for k, v in sorted(graph.ops.items())))
    ctx.progress(0.6, "running the LiteRT interpreter on random inputs")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise BadInputError(
            "the TFLite check needs the LiteRT interpreter: pip install ai-edge-litert"
        ) from exc
    interp = Interpreter(model_path=str(source), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for detail in interp.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            q = rng.integers(info.min, info.max, detail["shape"], endpoint=True).astype(dtype)
            scale, zero = detail["quantization"]
            interp.set_tensor(detail["index"], q)
            inputs[detail["name"]] = ((q.astype(np.float64) - zero) * scale).astype(np.float32)
        else:
            x = rng.standard_normal(detail["shape"]).astype(np.float32)
            interp.set_tensor(detail["index"], x)
            inputs[detail["name"]] = x
    for state in graph.states:
        initial = state.initial if state.initial is not None else np.zeros(state.shape)
        inputs[state.input] = np.asarray(initial, np.float32).reshape(state.shape)
    interp.invoke()
    details = {d["index"]: d for d in interp.get_tensor_details()}
    steps: dict[str, float] = {}

    def value(index: int, onnx_name: str) -> np.ndarray:
        raw = np.array(interp.get_tensor(index))
        scale, zero = details[index]["quantization"]
        if np.issubdtype(raw.dtype, np.integer) and scale:
            steps[onnx_name] = float(scale)
            return ((raw.astype(np.float64) - zero) * scale).astype(np.float32)
        return raw

    reference = [
        value(d["index"], name)
        for d, name in zip(interp.get_output_details(), graph.outputs, strict=True)
    ]
    reference += [value(state.written, state.output) for state in graph.states]
    quantised = bool(graph.quant)
    settings: dict[str, Any] = {
        "exporter": "npu-studio TFLite reader",
        "opset": OPSET,
        "layout": "NHWC inputs and outputs kept",
        "quantised_source": quantised,
        "states": [
            {"variable": s.variable, "input": s.input, "output": s.output} for s in graph.states
        ],
        "output_steps": steps,
        "quantization": [q.to_json() for q in graph.quant],
    }
    return graph.model, inputs, reference, settings


def _qdq_check(
    model: Path,
    encodings: Path,
    inputs: dict[str, np.ndarray],
    reference: list[np.ndarray],
    ref_name: str,
    tmp: Path,
    ctx: JobContext,
) -> checks.ImportCheck:
    """Build the studio's QDQ model on the source's own scales and compare it with LiteRT."""
    from studio.core.calibration.collect import calibrate
    from studio.core.encodings import load_encodings
    from studio.core.quantize import QuantPlan, build_qdq

    np.savez(tmp / "calib.npz", **inputs)  # tensors TFLite left unquantised use this range
    stats = calibrate(model, tmp / "calib.npz", cache_dir=tmp / "calibration", ctx=ctx)
    plan = QuantPlan()
    plan.imported, warnings = load_encodings(encodings, str(stats.prepared_model))
    plan.imported_source = str(encodings)
    for warning in warnings:
        ctx.log(f"encodings: {warning}")
    built = build_qdq(stats, plan, tmp / "qdq.onnx", ctx=ctx)
    return checks.compare(built.qdq_path, inputs, reference, ref_name + " vs the QDQ model")


def tflite_encodings(record: dict[str, Any]) -> dict[str, Any] | None:
    """The TFLite scales and zero points as an AIMET 2.0.0 file (QuantizeLinear-shaped).

    ``npu-studio quantize OUT.onnx --encodings OUT.onnx.encodings.json`` then builds the QDQ
    model on TFLite's own grid instead of re-calibrating it.
    """
    entries = []
    for q in record.get("settings", {}).get("quantization", []):
        per_channel = q["axis"] is not None and len(q["scale"]) > 1
        entry: dict[str, Any] = {
            "name": q["tensor"],
            "output_dtype": q["dtype"],
            "y_scale": q["scale"] if per_channel else q["scale"][0],
            "y_zero_point": q["zero_point"] if per_channel else q["zero_point"][0],
        }
        if per_channel:
            entry["axis"] = q["axis"]
        entries.append(entry)
    if not entries:
        return None
    return {"version": "2.0.0", "encodings": entries}


def _from_torch(
    source: Path,
    kind: str,
    tmp: Path,
    python: str | None,
    input_shapes: dict[str, list[int]] | None,
    seed: int,
    ctx: JobContext,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray], list[np.ndarray], dict[str, Any]]:
    from studio.core.importers.pytorch import resolve_python, run_torch_script

    interpreter = resolve_python(python)
    ctx.log(f"converting with {interpreter}")
    request = {
        "mode": "convert",
        "source": str(source),
        "kind": kind,
        "output": str(tmp / "exported.onnx"),
        "reference": str(tmp / "reference.npz"),
        "input_shapes": input_shapes or {},
        "seed": seed,
    }
    event = run_torch_script(interpreter, request, ctx)
    try:
        model = onnx.load(request["output"])
        with np.load(request["reference"], allow_pickle=False) as ref:
            inputs = {k.split(":", 1)[1]: ref[k] for k in ref.files if k.startswith("input:")}
            count = sum(1 for k in ref.files if k.startswith("output:"))
            reference = [ref[f"output:{i}"] for i in range(count)]
    except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
        raise BadInputError(
            f"the exporter wrote no usable files ({exc})", path=str(source)
        ) from exc
    settings = {
        "exporter": event.get("exporter"),
        "opset": event.get("opset"),
        "torch_version": event.get("torch_version"),
        "constant_folding": True,
        "static_shapes": True,
    }
    return model, inputs, reference, settings
