"""Reading ONNX files without trusting them.

Why a module of its own: a model file comes from anywhere. Before anything reads weights we parse
only the protobuf (external weights stay on disk), recognise files that are not models at all (a
PNG or a text file renamed ``.onnx``), and validate every external-data reference: its location
must stay inside the model's folder (no ``../``, no absolute path, no symlink out), the file must
exist and be large enough. Every failure is a ModelLoadError naming the file and the tensor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto

from studio.core import hashing
from studio.core.errors import ModelLoadError
from studio.core.model import skeleton
from studio.core.model.costs import dtype_bits

_MAGICS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt checkpoint or a .zip?)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x93NUMPY", "a numpy .npy array"),
    (b"\x7fELF", "an executable (ELF) file"),
    (b"tflite", "a TensorFlow Lite model"),
)


def _describe_non_model(head: bytes) -> str | None:
    """Name what a file looks like when it plainly is not an ONNX protobuf."""
    for magic, what in _MAGICS:
        if head.startswith(magic) or (magic == b"tflite" and head[4:8] == b"TFL3"):
            return what
    if head[4:8] == b"TFL3":
        return "a TensorFlow Lite model"
    sample = head[:512]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if text and printable / len(text) > 0.95:
        return "a text file"
    return None


def copy_model(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy of ``proto`` (rewrites and searches change copies, never a caller's model)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    return out


def read_model_proto(path: Path) -> onnx.ModelProto:
    """Parse ``path`` as an ONNX ModelProto without loading weights.

    External data stays on disk, and so do large initializers stored inside the file: they are
    rewritten as external references into the file itself (``skeleton``), so a 150 MB export
    parses in a few MB. A file the walker does not understand is parsed whole, as before.
    """
    if not path.exists():
        raise ModelLoadError("model file not found", path=str(path))
    if path.is_dir():
        raise ModelLoadError("is a folder, not an ONNX model file", path=str(path))
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot read the file: {exc.strerror or exc}", path=str(path)
        ) from exc
    if not head:
        raise ModelLoadError("the file is empty (0 bytes), not an ONNX model", path=str(path))
    looks_like = _describe_non_model(head)
    if looks_like:
        raise ModelLoadError(f"this is {looks_like}, not an ONNX model", path=str(path))
    try:
        model = skeleton.read_skeleton(path).proto
    except (skeleton.NotSkeletonable, DecodeError, ValueError, RuntimeError, OSError):
        model = _parse_whole(path)
    _check_header(model, path)
    return model


def _parse_whole(path: Path) -> onnx.ModelProto:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(
            f"cannot read the file: {exc.strerror or exc}", path=str(path)
        ) from exc
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"cannot parse the ONNX protobuf ({exc}): the file is truncated, corrupt or not an "
            f"ONNX model ({len(data)} bytes)",
            path=str(path),
        ) from exc
    return model


def _check_header(model: onnx.ModelProto, path: Path) -> None:
    if model.ir_version <= 0 or not model.HasField("graph"):
        raise ModelLoadError(
            "not an ONNX model: it has no IR version or no graph (corrupt or another format)",
            path=str(path),
        )
    if not model.opset_import:
        raise ModelLoadError(
            "the model declares no opset_import (truncated or corrupt file)", path=str(path)
        )


def iter_graph_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Every TensorProto a graph holds: initializers, sparse ones, attribute tensors, subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        attributes = node.attribute
        if not attributes:  # most nodes: skip the per-attribute reads
            continue
        for attr in attributes:
            kind = attr.type
            if kind == _TENSOR:
                yield attr.t
            elif kind in _PLAIN:  # numbers and strings hold no tensor
                continue
            elif kind == AttributeProto.TENSORS:
                yield from attr.tensors
            elif kind == AttributeProto.SPARSE_TENSOR:
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            elif kind == AttributeProto.GRAPH:
                yield from iter_graph_tensors(attr.g)
            elif kind == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graph_tensors(sub)


_TENSOR = AttributeProto.TENSOR
_PLAIN = frozenset(
    {
        AttributeProto.FLOAT,
        AttributeProto.INT,
        AttributeProto.STRING,
        AttributeProto.FLOATS,
        AttributeProto.INTS,
        AttributeProto.STRINGS,
    }
)


def iter_model_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every TensorProto in the main graph and in the model's local functions."""
    yield from iter_graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR:
                    yield attr.t


def is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL


@dataclass(frozen=True)
class ExternalRef:
    """One validated external-data reference: where a tensor's bytes live on disk."""

    tensor: str
    file: Path
    offset: int
    length: int


def _tensor_bytes(tensor: TensorProto) -> int | None:
    bits = dtype_bits(tensor.data_type)
    if bits is None:
        return None
    count = 1
    for dim in tensor.dims:
        count *= int(dim)
    return (count * bits + 7) // 8


def _inside_folder(location: str, name: str, model_path: Path) -> Path:
    """Where a relative external-data location points; refused when it leaves the folder."""
    where = str(model_path)
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        raise ModelLoadError(
            f"external data location '{location}' of tensor '{name}' escapes the model's folder "
            "('..' is not allowed)",
            path=where,
        )
    folder = model_path.parent.resolve()
    target = (folder / location).resolve()
    if not target.is_relative_to(folder):
        raise ModelLoadError(
            f"external data location '{location}' of tensor '{name}' resolves outside the "
            f"model's folder (to {target})",
            path=where,
        )
    return target


def resolve_external(
    tensor: TensorProto, model_path: Path, files: dict[str, tuple[Path, int]] | None = None
) -> ExternalRef:
    """Validate one tensor's external-data reference without reading it.

    Refuses locations that escape the model's folder (``..``, absolute paths, symlinks out),
    missing files and byte ranges past the end of the file. ``files`` caches each location's
    resolved path and size: an export's thousand weights in one file cost one ``stat``.
    """
    where = str(model_path)
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    name = tensor.name or "<unnamed tensor>"
    if not location:
        raise ModelLoadError(f"tensor '{name}' is marked external but has no location", path=where)
    known = files.get(location) if files is not None else None
    if known is None:
        known = _external_file(location, name, model_path)
        if files is not None:
            files[location] = known
    target, size = known
    try:
        offset = int(info.get("offset", "0") or 0)
        length_text = info.get("length", "")
        length = int(length_text) if length_text else None
    except ValueError as exc:
        raise ModelLoadError(
            f"tensor '{name}' has a malformed external-data offset/length ({exc})", path=where
        ) from exc
    if offset < 0 or (length is not None and length < 0):
        raise ModelLoadError(f"tensor '{name}' has a negative external-data range", path=where)
    needed = _tensor_bytes(tensor)
    if length is None:
        length = needed if needed is not None else size - offset
    elif needed is not None and length < needed:
        raise ModelLoadError(
            f"external data of tensor '{name}' is {length} bytes but its shape "
            f"{list(tensor.dims)} needs {needed}",
            path=where,
        )
    if offset + length > size:
        raise ModelLoadError(
            f"external data of tensor '{name}' spans bytes {offset}..{offset + length} but "
            f"'{location}' has only {size} bytes (truncated data file?)",
            path=where,
        )
    return ExternalRef(tensor=name, file=target, offset=offset, length=length)


def _external_file(location: str, name: str, model_path: Path) -> tuple[Path, int]:
    """The file an external-data ``location`` names, checked, and its size in bytes."""
    where = str(model_path)
    if location == model_path.name:  # a large initializer inside the file itself (skeleton)
        target = model_path.resolve()
    elif (
        os.path.isabs(location)
        or location.startswith(("/", "\\"))
        or (len(location) > 1 and location[1] == ":")
    ):
        raise ModelLoadError(
            f"external data of tensor '{name}' uses the absolute path '{location}'; only paths "
            "inside the model's folder are allowed",
            path=where,
        )
    else:
        target = _inside_folder(location, name, model_path)
    if not target.exists():
        raise ModelLoadError(
            f"external data file '{location}' of tensor '{name}' is missing (expected at {target})",
            path=where,
        )
    if not target.is_file():
        raise ModelLoadError(
            f"external data location '{location}' of tensor '{name}' is not a regular file",
            path=where,
        )
    return target, target.stat().st_size


def validate_external_data(model: onnx.ModelProto, model_path: Path) -> dict[str, ExternalRef]:
    """Check every external reference; return them by tensor name. Reads no weight bytes."""
    refs: dict[str, ExternalRef] = {}
    files: dict[str, tuple[Path, int]] = {}
    for tensor in iter_model_tensors(model):
        if is_external(tensor):
            refs[tensor.name] = resolve_external(tensor, model_path, files)
    return refs


def run_checker(model_path: Path, model: onnx.ModelProto | None = None) -> None:
    """onnx's checker on the protobuf with its weights left out (``skeleton.without_weights``).

    Weights are checked by us, not by the checker: every external byte range (those of large
    initializers inside the file included) was validated by :func:`validate_external_data`.
    ``model`` None reads the file (for callers holding no protobuf).
    """
    if model is None:
        model = read_model_proto(model_path)
    check, _names = skeleton.without_weights(model)
    try:
        onnx.checker.check_model(check)
    except onnx.checker.ValidationError as exc:
        message = " ".join(str(exc).split())
        raise ModelLoadError(
            f"the ONNX checker rejected the model: {message}", path=str(model_path)
        ) from exc
    except Exception as exc:  # the C++ checker raises plain RuntimeError/ValueError too
        message = " ".join(str(exc).split())
        raise ModelLoadError(f"the ONNX checker failed: {message}", path=str(model_path)) from exc


def file_sha256(path: Path) -> str:
    """SHA-256 of a model file; an unreadable file is a ModelLoadError naming it."""
    return hashing.file_sha256(path, error_type=ModelLoadError)


def read_tensor(tensor: TensorProto, ref: ExternalRef | None) -> np.ndarray:
    """Values of one constant tensor, reading only its own byte range when it is external."""
    if ref is None:
        return onnx.numpy_helper.to_array(tensor)
    copy = TensorProto()
    copy.CopyFrom(tensor)
    del copy.external_data[:]
    copy.data_location = TensorProto.DEFAULT
    with open(ref.file, "rb") as handle:
        handle.seek(ref.offset)
        copy.raw_data = handle.read(ref.length)
    return onnx.numpy_helper.to_array(copy)
