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
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.errors import BadInputError

BUNDLE_SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
INPUT_SPECS = "input_specs.json"
QUANT_CONFIG = "quantization_config.json"
CONTEXT_DIR = "context_binaries"
MODEL_LIB = "model_optimized.so"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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

    Activation encodings come from QuantizeLinear nodes (keyed by the float tensor they quantise);
    parameter encodings from DequantizeLinear nodes whose input is a quantised initializer (keyed by
    the dequantised tensor name). Uses studio.core.encodings for the arithmetic and the writer.
    """
    from studio.core.encodings import Encoding, EncodingSet

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    encodings: list[Encoding] = []
    seen: set[str] = set()
    for node in model.graph.node:
        # ORT's quantiser renames tensors around the nodes it inserts; the encodings are keyed by
        # the ORIGINAL names, which the SDK converter and the float model use.
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            tensor, kind = _strip(node.input[0], "_QuantizeLinear_Input"), "activation"
        elif node.op_type == "DequantizeLinear" and node.input[0] in inits:
            tensor, kind = _strip(node.input[0], "_quantized"), "param"
        else:
            continue
        params = _qdq_params(model, node)
        if params is None or tensor in seen:
            continue
        if params["qtype"] == "int32":
            kind = "bias" if kind == "param" else kind
        try:
            enc = Encoding.from_onnx(
                tensor,
                params["scale"],
                params["zero_point"],
                params["qtype"],
                axis=params["axis"],
                kind=kind,
            )
        except Exception as exc:  # noqa: BLE001 - name the tensor, keep going
            raise BadInputError(f"cannot read the quantisation of '{tensor}': {exc}") from exc
        seen.add(tensor)
        encodings.append(enc)
    if not encodings:
        return None
    try:  # helper A1's writer, when present; the same 0.6.1 shape is written below otherwise
        from studio.core.encodings.formats import qnn
    except ImportError:
        return _write_qnn_061(encodings)
    return qnn.write(EncodingSet(encodings))


def _strip(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) and len(name) > len(suffix) else name


def _write_qnn_061(encodings: list[Any]) -> dict[str, Any]:
    """QNN 0.6.1 encodings (REFERENCE.md §2): tensor -> list of per-channel dicts."""
    sections: dict[str, dict[str, Any]] = {"activation_encodings": {}, "param_encodings": {}}
    for enc in encodings:
        key = "activation_encodings" if enc.kind == "activation" else "param_encodings"
        sections[key][enc.tensor] = [
            {
                "bitwidth": enc.bitwidth,
                "dtype": "int",
                "is_symmetric": "True" if enc.symmetric else "False",
                "min": enc.min[i],
                "max": enc.max[i],
                "scale": enc.scale[i],
                "offset": enc.offset[i],
            }
            for i in range(len(enc.scale))
        ]
    return {"version": "0.6.1", **sections, "quantizer_args": {}}


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
        files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
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
    manifest = read_json_strict(root / MANIFEST, error_type=BadInputError)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BadInputError("manifest.json has no 'files' table", path=str(root / MANIFEST))
    version = manifest.get("schema_version")
    if type(version) is not int or version > BUNDLE_SCHEMA_VERSION:
        raise BadInputError(
            f"manifest schema_version {version!r} is not supported (this studio reads "
            f"<= {BUNDLE_SCHEMA_VERSION})",
            path=str(root / MANIFEST),
        )
    for rel, meta in manifest["files"].items():
        target = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise BadInputError(f"manifest names a file outside the bundle: {rel}", path=str(root))
        if not target.is_file():
            raise BadInputError(f"bundle file '{rel}' is missing", path=str(root))
        if sha256_file(target) != meta.get("sha256"):
            raise BadInputError(
                f"bundle file '{rel}' was modified after compilation (sha256 mismatch); "
                "recompile or restore it",
                path=str(root),
            )
    bundle = Bundle(root=root, manifest=manifest, backend=str(manifest.get("backend", "htp")))
    ctx_model = root / CONTEXT_DIR / f"{bundle.backend}_context.onnx"
    ctx_bin = root / CONTEXT_DIR / f"{bundle.backend}_context.bin"
    bundle.context_model = ctx_model if ctx_model.is_file() else None
    bundle.context_binary = ctx_bin if ctx_bin.is_file() else None
    bundle.model_library = (root / MODEL_LIB) if (root / MODEL_LIB).is_file() else None
    if (root / INPUT_SPECS).is_file():
        bundle.specs = read_json_strict(root / INPUT_SPECS, error_type=BadInputError)
    return bundle
