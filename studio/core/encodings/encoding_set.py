"""EncodingSet: the encodings of a model, tensor name -> :class:`Encoding`, and our own JSON.

Kept in insertion order (files and tables list tensors the way the source did); ``meta`` keeps
what a source file said about itself (format, quantizer args) so a re-export can repeat it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from studio.core.encodings.encoding import SCHEMA_VERSION, STUDIO_FORMAT, Encoding
from studio.core.errors import EncodingsError


class EncodingSet:
    """Tensor name -> Encoding, in insertion order, plus free-form ``meta`` (quantizer args...)."""

    def __init__(self, encodings: Iterable[Encoding] = (), meta: dict[str, Any] | None = None):
        self._items: dict[str, Encoding] = {}
        self.meta: dict[str, Any] = dict(meta or {})
        for enc in encodings:
            self.set(enc)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __contains__(self, tensor: object) -> bool:
        return tensor in self._items

    def __getitem__(self, tensor: str) -> Encoding:
        return self._items[tensor]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EncodingSet):
            return NotImplemented
        return [e.to_json() for e in self.values()] == [e.to_json() for e in other.values()]

    def __setitem__(self, tensor: str, enc: Encoding) -> None:
        if not isinstance(enc, Encoding) or enc.tensor != tensor:
            raise EncodingsError(
                f"tensor '{tensor}': the encoding is for {getattr(enc, 'tensor', enc)!r}"
            )
        self._items[tensor] = enc

    def __delitem__(self, tensor: str) -> None:
        del self._items[tensor]

    def keys(self) -> list[str]:
        return list(self._items)

    def get(self, tensor: str, default: Encoding | None = None) -> Encoding | None:
        return self._items.get(tensor, default)

    def set(self, enc: Encoding) -> None:
        if not isinstance(enc, Encoding):
            raise EncodingsError(f"not an Encoding: {enc!r}")
        self._items[enc.tensor] = enc

    def remove(self, tensor: str) -> None:
        self._items.pop(tensor, None)

    def values(self) -> list[Encoding]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, Encoding]]:
        return list(self._items.items())

    def copy(self) -> EncodingSet:
        return EncodingSet((Encoding.from_json(e.to_json()) for e in self.values()), self.meta)

    def by_kind(self, kind: str) -> list[Encoding]:
        return [e for e in self.values() if e.kind == kind]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "format": STUDIO_FORMAT,
            "meta": dict(self.meta),
            "encodings": [e.to_json() for e in self.values()],
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>") -> EncodingSet:
        if not isinstance(data, dict):
            raise EncodingsError("expected a JSON object at the top level", path=source)
        data = _migrate(data, source)
        entries = data.get("encodings")
        if not isinstance(entries, list):
            raise EncodingsError("'encodings' must be a list", path=source)
        meta = data.get("meta", {})
        if not isinstance(meta, dict):
            raise EncodingsError("'meta' must be an object", path=source)
        out = cls(meta=meta)
        for entry in entries:
            enc = Encoding.from_json(entry, source)
            if enc.tensor in out:
                raise EncodingsError(f"tensor '{enc.tensor}' appears twice", path=source)
            out.set(enc)
        return out


# schema_version -> function upgrading a document of that version to the next one. Version 1 is
# the first; when the schema changes, add the old version's upgrade here (never edit old files).
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def _migrate(data: dict[str, Any], source: str) -> dict[str, Any]:
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise EncodingsError(f"schema_version must be an integer, got {version!r}", path=source)
    if version > SCHEMA_VERSION:
        raise EncodingsError(
            f"unsupported schema_version {version} (written by a newer npu-studio; this one "
            f"reads up to {SCHEMA_VERSION})",
            path=source,
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise EncodingsError(f"unsupported schema_version {version}", path=source)
        data = step(data)
        version = data["schema_version"]
    return data
