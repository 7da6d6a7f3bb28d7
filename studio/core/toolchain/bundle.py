"""The deployment bundle (REFERENCE.md §5): layout, input specs, encodings, manifest, loading.

```
BUNDLE/
  manifest.json              schema_version, sha256 of every file, tool versions, options, times
  context_binaries/
    htp_context.bin          the QNN context binary
    htp_context.onnx         (embedded path) EPContext model that references htp_context.bin
  model_optimized.so         (SDK path) the compiled model library
  quantization_config.json   QNN 0.6.1 encodings, when the model is quantised
  input_specs.json           input/output names, shapes, dtypes, quantisation
```
The manifest checksums every file, so a bundle copied to a device (or edited by hand) is checked
before it runs: a changed or missing file is a clear BadInputError, not a strange native failure.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core import jsonread
from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import BadInputError
from studio.core.hashing import file_sha256

BUNDLE_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
INPUT_SPECS = "input_specs.json"
QUANT_CONFIG = "quantization_config.json"
CONTEXT_DIR = "context_binaries"
MODEL_LIB = "model_optimized.so"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _const(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:  # Constant nodes hold scales in some exporters
        if node.op_type == "Constant" and node.output and node.output[0] == name:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
    return None


def _qdq_params(model: onnx.ModelProto, node: onnx.NodeProto) -> dict[str, Any] | None:
    """scale / zero point / quantised type of a QuantizeLinear or DequantizeLinear node."""
    scale = _const(model, node.input[1]) if len(node.input) > 1 else None
    if scale is None:
        return None
    zp = _const(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    axis = next((a.i for a in node.attribute if a.name == "axis"), None)
    qtype = "uint8" if zp is None else str(zp.dtype)
    return {
        "scale": scale.astype(np.float64).reshape(-1).tolist(),
        "zero_point": (
            [0] * scale.size if zp is None else zp.astype(np.int64).reshape(-1).tolist()
        ),
        "qtype": qtype,
        "axis": axis if scale.size > 1 else None,
    }


def _tensor_type(model: onnx.ModelProto, name: str) -> tuple[list[Any] | None, str | None]:
    for vi in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        if vi.name == name and vi.type.HasField("tensor_type"):
            tt = vi.type.tensor_type
            shape = None
            if tt.HasField("shape"):
                shape = [
                    d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in tt.shape.dim
                ]
            dtype = None
            if tt.elem_type:
                dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
            return shape, dtype
    return None, None


def input_specs(model_path: str | Path) -> dict[str, Any]:
    """Names, shapes, dtypes and quantisation of the model's graph inputs and outputs."""
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    q_of_input: dict[str, dict[str, Any] | None] = {}
    dq_of_output: dict[str, dict[str, Any] | None] = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input:
            q_of_input.setdefault(node.input[0], _qdq_params(model, node))
        if node.op_type == "DequantizeLinear" and node.output:
            dq_of_output.setdefault(node.output[0], _qdq_params(model, node))

    def entry(name: str, quant: dict[str, Any] | None) -> dict[str, Any]:
        shape, dtype = _tensor_type(model, name)
        return {"name": name, "shape": shape, "dtype": dtype, "quantization": quant}

    return {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "inputs": [
            entry(i.name, q_of_input.get(i.name)) for i in model.graph.input if i.name not in inits
        ],
        "outputs": [entry(o.name, dq_of_output.get(o.name)) for o in model.graph.output],
    }


def qdq_encodings(model_path: str | Path) -> dict[str, Any] | None:
    """The QDQ model's scales/zero points as a QNN 0.6.1 encodings dict (None for a float model).

    Read by :func:`studio.core.encodings.from_qdq_model` (original tensor names, ORT's
    ``_quantized``/``_QuantizeLinear_Input`` suffixes removed) and written in QNN format.
    """
    from studio.core.encodings import dump_encodings, from_qdq_model

    encset = from_qdq_model(str(model_path))
    if len(encset) == 0:
        return None
    return dump_encodings(encset, "qnn")


def normalised_encodings(
    path: str | Path, model_path: str | Path
) -> tuple[dict[str, Any], list[str]]:
    """Any supported encodings file (QNN, AIMET 1.0.0/2.0.0, ...) as QNN 0.6.1, plus warnings.

    The SDK converter's ``--quantization_overrides`` reads the QNN format; the model supplies the
    per-channel axes that AIMET files leave out.
    """
    from studio.core.encodings import ModelView, dump_encodings, load_encodings

    encset, warnings = load_encodings(path, model=ModelView.of(str(model_path)))
    return dump_encodings(encset, "qnn"), warnings


@dataclass
class Bundle:
    """A verified bundle on disk."""

    root: Path
    manifest: dict[str, Any]
    backend: str = "htp"
    context_model: Path | None = None
    context_binary: Path | None = None
    model_library: Path | None = None
    specs: dict[str, Any] = field(default_factory=dict)

    def session_options(self) -> dict[str, Any]:
        return dict(self.manifest.get("session", {}))


def write_manifest(root: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Checksum every file under ``root`` (except the manifest) and write manifest.json."""
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(root).as_posix()
        files[rel] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    manifest = {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "created": _now(),
        **info,
        "files": files,
    }
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def is_bundle(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def load_bundle(path: str | Path) -> Bundle:
    """Read and VERIFY a bundle: every file in the manifest exists and has its checksum."""
    root = Path(path)
    if not is_bundle(root):
        raise BadInputError(f"not a bundle: no {MANIFEST} in this folder", path=str(root))
    doc = jsonread.read(root / MANIFEST)
    files = doc.key("files")
    files.object()
    version = doc.key("schema_version", None)
    if version.integer() > BUNDLE_SCHEMA_VERSION:
        raise version.fail(
            f"{version.value} is not supported (this studio reads <= {BUNDLE_SCHEMA_VERSION})"
        )
    for rel, meta in files.items():
        target = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise BadInputError(f"manifest names a file outside the bundle: {rel}", path=str(root))
        if not target.is_file():
            raise BadInputError(f"bundle file '{rel}' is missing", path=str(root))
        if file_sha256(target) != meta.key("sha256", None).string():
            raise BadInputError(
                f"bundle file '{rel}' was modified after compilation (sha256 mismatch); "
                "recompile or restore it",
                path=str(root),
            )
    manifest = doc.value
    bundle = Bundle(root=root, manifest=manifest, backend=str(manifest.get("backend", "htp")))
    ctx_model = root / CONTEXT_DIR / f"{bundle.backend}_context.onnx"
    ctx_bin = root / CONTEXT_DIR / f"{bundle.backend}_context.bin"
    bundle.context_model = ctx_model if ctx_model.is_file() else None
    bundle.context_binary = ctx_bin if ctx_bin.is_file() else None
    bundle.model_library = (root / MODEL_LIB) if (root / MODEL_LIB).is_file() else None
    if (root / INPUT_SPECS).is_file():
        bundle.specs = read_json_strict(root / INPUT_SPECS, error_type=BadInputError)
    return bundle
