"""Typed fields out of JSON, with errors that say which file and which field.

Why: every file the studio reads (project, backend config, plan, bundle manifest, encodings,
profiles) is JSON, and each reader used to check its fields by hand with ``isinstance`` and its own
wording ("must be str", "expected an object", a bare ``KeyError``). Here a value read from JSON is
a :class:`Field` that knows its file and its path inside the file, so one wording serves all::

    plan.json: nodes[3].backend: expected a string, got 12

The error is the project's :class:`~studio.core.errors.BadInputError` (or a subclass the reader
names, e.g. ``ConfigError``), so the CLI exits 2 and the GUI shows the message as it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from studio.core.atomic import loads_json_strict, read_json_strict
from studio.core.errors import BadInputError

_MISSING: Any = object()


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, bool)) or value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Field:
    """A JSON value with where it was read: ``source`` (the file) and ``where`` (the field path)."""

    def __init__(
        self,
        value: Any,
        source: str = "<memory>",
        where: str = "",
        error: type[BadInputError] = BadInputError,
    ) -> None:
        self.value = value
        self.source = source
        self.where = where
        self.error = error

    # ----- errors ---------------------------------------------------------------------------
    def fail(self, problem: str) -> BadInputError:
        """The error to raise for this field: ``<file>: <path>: <problem>``."""
        return self.error(f"{self.where}: {problem}" if self.where else problem, path=self.source)

    def _expected(self, what: str) -> BadInputError:
        return self.fail(f"expected {what}, got {_shown(self.value)}")

    # ----- navigation -----------------------------------------------------------------------
    def _child(self, value: Any, name: str | int) -> Field:
        if isinstance(name, int):
            where = f"{self.where}[{name}]"
        else:
            where = f"{self.where}.{name}" if self.where else name
        return Field(value, self.source, where, self.error)

    def key(self, name: str, default: Any = _MISSING) -> Field:
        """The member ``name`` of this object; missing is an error unless ``default`` is given."""
        data = self.object()
        if name not in data:
            if default is _MISSING:
                raise self._child(None, name).fail("missing")
            return self._child(default, name)
        return self._child(data[name], name)

    def has(self, name: str) -> bool:
        return name in self.object()

    def items(self) -> Iterator[tuple[str, Field]]:
        """(name, field) of each member of this object."""
        for name, value in self.object().items():
            yield name, self._child(value, name)

    def elements(self) -> Iterator[Field]:
        """Each element of this array, as a field."""
        for i, value in enumerate(self.array()):
            yield self._child(value, i)

    # ----- types ----------------------------------------------------------------------------
    def object(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self._expected("an object")
        return self.value

    def array(self) -> list[Any]:
        if not isinstance(self.value, list):
            raise self._expected("an array")
        return self.value

    def string(self, *, choices: Iterable[str] | None = None) -> str:
        if not isinstance(self.value, str):
            raise self._expected("a string")
        if choices is not None:
            allowed = list(choices)
            if self.value not in allowed:
                raise self.fail(f"{_shown(self.value)} is not one of {', '.join(allowed)}")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self._expected("true or false")
        return self.value

    def integer(self, *, low: int | None = None, high: int | None = None) -> int:
        """A whole number (``true`` and ``8.0`` are not), optionally within [low, high]."""
        if type(self.value) is not int:
            raise self._expected("an integer")
        v = self.value
        if low is not None and high is not None and not low <= v <= high:
            raise self.fail(f"{v} is outside [{low}, {high}]")
        if low is not None and v < low:
            raise self.fail(f"must be >= {low}, got {v}")
        if high is not None and v > high:
            raise self.fail(f"must be <= {high}, got {v}")
        return self.value

    def number(self) -> float:
        """A finite number (an integer is one too; ``true`` is not)."""
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self._expected("a finite number")
        return float(v)

    def optional(self) -> Field | None:
        """None when the value is JSON null, else this field."""
        return None if self.value is None else self

    def strings(self) -> list[str]:
        """An array of strings."""
        return [f.string() for f in self.elements()]


def parse(text: str, source: str = "<memory>", error: type[BadInputError] = BadInputError) -> Field:
    """JSON text as a :class:`Field` (NaN/Infinity refused); bad JSON names ``source``."""
    return Field(loads_json_strict(text, source, error_type=error), source, "", error)


def read(path: str | Path, error: type[BadInputError] = BadInputError) -> Field:
    """A JSON file as a :class:`Field` whose errors name the file (``atomic.read_json_strict``)."""
    return Field(read_json_strict(path, error_type=error), str(path), "", error)


def wrap(data: Any, source: str = "<memory>", error: type[BadInputError] = BadInputError) -> Field:
    """Already-parsed JSON (a dict from a request or another file) as a :class:`Field`."""
    return data if isinstance(data, Field) else Field(data, source, "", error)
