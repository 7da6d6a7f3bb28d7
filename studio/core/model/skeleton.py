"""Parse an ONNX file without its weights: the protobuf minus the initializers' raw bytes.

Why: a real export keeps its weights inside the protobuf (``raw_data``). Parsing the file whole
copies every weight into the message, and onnx's checker and shape inference serialise and
re-parse it (four copies of a 150 MB model, 1-3 s of work that holds the GIL). Nothing the studio
shows at open needs a weight's values, only its dims and type.

So the file is memory-mapped and its wire format walked (ModelProto -> graph -> initializer), and
every initializer whose ``raw_data`` is larger than :data:`INLINE_MAX` bytes is rewritten as an
external-data tensor pointing into the model file itself (``location`` = the file's own name,
``offset``/``length`` = where its raw bytes sit). That is plain ONNX external data, so every
existing reader works: ``loading.read_tensor`` reads one tensor's bytes when asked,
``onnx.external_data_helper.load_external_data_for_model`` restores the full model. Pages of the
weights are never touched, so they cost neither time nor resident memory.

Only the wire format's field numbers of onnx.proto are used (documented in REFERENCE.md §formats
and stable since IR 3); anything unexpected falls back to a plain parse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import TensorProto

INLINE_MAX = 1024  # raw_data up to this many bytes stays in the protobuf (shapes, scalars)
# Integer tensors hold shapes, axes and indices that shape inference's data propagation reads.
_KEEP_TYPES = frozenset({TensorProto.INT64, TensorProto.INT32, TensorProto.STRING})

_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_NAME, _TENSOR_RAW = 1, 2, 8, 9
_TENSOR_EXTERNAL, _TENSOR_LOCATION = 13, 14


class NotSkeletonable(Exception):
    """The file's layout is not what the walker expects; the caller parses it plainly."""


@dataclass
class Skeleton:
    """The parsed protobuf and which of its initializers now point into the file itself."""

    proto: onnx.ModelProto
    lazy: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (offset, length)
    weight_bytes: int = 0  # bytes left on disk


class _File:
    """Positional reads through a small window: skipping a weight never reads (or maps) it.

    A memory map would do, but touching a tag next to each weight maps the pages around it
    (fault-around), and the resident size would grow by most of the file.
    """

    WINDOW = 1 << 14  # mostly the few header bytes after a skipped weight are needed

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.base, self.data = 0, b""

    def move(self, pos: int) -> None:
        if pos >= self.size:
            raise NotSkeletonable("truncated message")
        self.base, self.data = pos, os.pread(self.fd, self.WINDOW, pos)

    def read(self, start: int, stop: int) -> bytes:
        i, j = start - self.base, stop - self.base
        if 0 <= i and j <= len(self.data):
            return self.data[i:j]
        data = os.pread(self.fd, stop - start, start)
        if len(data) != stop - start:
            raise NotSkeletonable("truncated message")
        return data


def _varint(buf: _File, pos: int) -> tuple[int, int]:
    """The varint at file offset ``pos``: its value and the offset after it.

    Reads the at most 10 bytes a varint can take and decodes them with :func:`_varint_in`.
    """
    stop = min(pos + 10, buf.size)
    if pos >= stop:
        raise NotSkeletonable("truncated message")
    try:
        value, i = _varint_in(buf.read(pos, stop), 0)
    except IndexError:  # the file ends inside the varint
        raise NotSkeletonable("truncated message") from None
    return value, pos + i


def _encode_varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: _File, start: int, end: int):
    """(field number, wire type, start of field, start of payload, end of field) of a message.

    Decodes from the window's bytes directly (a 20k-node graph has ~30,000 fields: one method
    call per byte cost ~0.1 s); moves the window (:meth:`_File.move`) at its edge.
    """
    pos = start
    base, data = buf.base, buf.data
    while pos < end:
        i = pos - base
        if i < 0 or i + 20 > len(data):
            buf.move(pos)  # the window starts here now (shorter at the end of the file)
            base, data = buf.base, buf.data
            i = 0
        head = pos
        try:
            key = data[i]
            i += 1
            if key >= 0x80:
                key, i = _varint_in(data, i - 1)
            number, wire = key >> 3, key & 7
            if wire == 2:
                length = data[i]
                i += 1
                if length >= 0x80:
                    length, i = _varint_in(data, i - 1)
                payload = base + i
                pos = payload + length
                yield number, wire, head, payload, pos
                continue
            if wire == 0:
                value_start = base + i
                while data[i] >= 0x80:
                    i += 1
                    if i - (value_start - base) > 10:
                        raise NotSkeletonable("varint too long")
                pos = base + i + 1
                yield number, wire, head, value_start, pos
                continue
        except IndexError:
            raise NotSkeletonable("truncated message") from None
        if wire == 1:
            pos = base + i + 8
            yield number, wire, head, pos - 8, pos
        elif wire == 5:
            pos = base + i + 4
            yield number, wire, head, pos - 4, pos
        else:
            raise NotSkeletonable(f"unexpected wire type {wire}")
        # the consumer may have moved the window (nested reads): pick it up again
        base, data = buf.base, buf.data
    if pos != end:
        raise NotSkeletonable("message overruns its length")


def _varint_in(data: bytes, i: int) -> tuple[int, int]:
    """A varint starting at ``data[i]``: its value and the index after it."""
    result = shift = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise NotSkeletonable("varint too long")


_SMALL = [bytes((v,)) for v in range(0x80)]


def _len_field(number: int, payload: bytes) -> bytes:
    return _encode_varint((number << 3) | 2) + _encode_varint(len(payload)) + payload


def _entry(key: str, value: str) -> bytes:
    body = _len_field(1, key.encode()) + _len_field(2, value.encode())
    return _len_field(_TENSOR_EXTERNAL, body)


def _tensor_without_raw(buf, start: int, end: int, location: str) -> tuple[bytes, str, int, int]:
    """The initializer's bytes with raw_data replaced by an external reference into the file."""
    name = ""
    raw = None
    elem = 0
    kept: list[bytes] = []
    for number, wire, head, payload, stop in _fields(buf, start, end):
        if number == _TENSOR_EXTERNAL or number == _TENSOR_LOCATION:
            return b"", "", -1, -1  # already external: leave it alone
        if number == _TENSOR_RAW and wire == 2:
            raw = (payload, stop - payload)
            continue
        if number == _TENSOR_NAME and wire == 2:
            name = buf.read(payload, stop).decode("utf-8", "replace")
        if number == _TENSOR_TYPE and wire == 0:
            elem, _ = _varint(buf, payload)
        kept.append(buf.read(head, stop))
    if raw is None or elem in _KEEP_TYPES or raw[1] <= INLINE_MAX:
        return b"", "", -1, -1
    offset, length = raw
    tail = (
        _entry("location", location)
        + _entry("offset", str(offset))
        + _entry("length", str(length))
        + _encode_varint((_TENSOR_LOCATION << 3) | 0)
        + _encode_varint(TensorProto.EXTERNAL)
    )
    return b"".join(kept) + tail, name, offset, length


def read_skeleton(path: Path) -> Skeleton:
    """Parse ``path`` with large initializers left in the file (see the module docstring)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise NotSkeletonable("empty file")
        return _walk(_File(handle.fileno(), size), size, path.name)


def _walk(buf, size: int, location: str) -> Skeleton:
    lazy: dict[str, tuple[int, int]] = {}
    out: list[bytes] = []
    total = 0
    for number, wire, head, payload, stop in _fields(buf, 0, size):
        if number != _MODEL_GRAPH or wire != 2:
            out.append(buf.read(head, stop))
            continue
        graph_parts: list[bytes] = []
        run_start = payload
        for g_number, g_wire, g_head, g_payload, g_stop in _fields(buf, payload, stop):
            if g_number != _GRAPH_INITIALIZER or g_wire != 2 or g_stop - g_payload <= INLINE_MAX:
                continue
            body, name, offset, length = _tensor_without_raw(buf, g_payload, g_stop, location)
            if offset < 0:
                continue
            graph_parts.append(buf.read(run_start, g_head))
            graph_parts.append(_len_field(_GRAPH_INITIALIZER, body))
            run_start = g_stop
            lazy[name] = (offset, length)
            total += length
        graph_parts.append(buf.read(run_start, stop))
        out.append(_len_field(_MODEL_GRAPH, b"".join(graph_parts)))
    model = onnx.ModelProto()
    model.ParseFromString(b"".join(out))
    return Skeleton(model, lazy, total)


def without_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[str]]:
    """A copy for onnx's checker and shape inference, whose external tensors are graph inputs.

    Both only need a weight's type and dims. Given the external tensors themselves, the checker
    would look for their files relative to the working directory, and both would serialise every
    byte they hold. Returns the copy and the names turned into inputs.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    external = [t for t in graph.initializer if t.data_location == TensorProto.EXTERNAL]
    if not external:
        return copy, set()
    names = {t.name for t in external}
    inputs = {i.name for i in graph.input}
    kept = [t for t in graph.initializer if t.name not in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for t in external:
        if t.name not in inputs:
            graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims))
    return copy, names


def restore_weights(
    analysed: onnx.ModelProto, original: onnx.ModelProto, names: set[str]
) -> onnx.ModelProto:
    """``analysed`` (from :func:`without_weights`) with ``original``'s initializers put back."""
    if not names:
        return analysed
    graph = analysed.graph
    declared = {i.name for i in original.graph.input}
    inputs = [i for i in graph.input if i.name not in names or i.name in declared]
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.initializer[:]
    graph.initializer.extend(original.graph.initializer)
    return analysed
