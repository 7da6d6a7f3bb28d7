"""Typed reads of JSON fields whose errors name the file, the tensor and the field.

Every format parser reads through :class:`Fields`, so a string where a number belongs, a NaN
scale or a missing key always becomes an EncodingsError like
``enc.json: tensor 'conv1.weight': field 'scale': expected a number, got 'abc'``
instead of a KeyError/TypeError traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from studio.core.errors import EncodingsError

T = TypeVar("T")
_MISSING = object()


class Fields:
    def __init__(self, data: Any, source: str, tensor: str):
        if not isinstance(data, dict):
            raise EncodingsError(
                f"tensor '{tensor}': expected a JSON object, got {type(data).__name__}", path=source
            )
        self.data = data
        self.source = source
        self.tensor = tensor

    def error(self, key: str | None, message: str) -> EncodingsError:
        where = f"tensor '{self.tensor}'" + (f": field '{key}'" if key else "")
        return EncodingsError(f"{where}: {message}", path=self.source)

    def wrap(self, fn: Callable[[], T]) -> T:
        """Run a constructor; re-raise its EncodingsError with the file name attached."""
        try:
            return fn()
        except EncodingsError as exc:
            if exc.path:
                raise
            raise EncodingsError(str(exc), path=self.source) from exc

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self.data:
            if default is _MISSING:
                raise self.error(key, "missing")
            return default
        return self.data[key]

    def str(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not value:
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value

    def number(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        return self._number(key, value)

    def _number(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value!r}")
        return float(value)

    def _whole(self, key: str, value: Any) -> int:
        num = self._number(key, value)
        if num != int(num):
            raise self.error(key, f"expected a whole number, got {value!r}")
        return int(num)

    def int(self, key: str, default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        return self._whole(key, value)

    def opt_int(self, key: str) -> int | None:
        value = self.raw(key, None)
        return None if value is None else self._whole(key, value)

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        """Accept JSON booleans and the QNN strings "True"/"False" (any case)."""
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise self.error(key, f'expected true/false or "True"/"False", got {value!r}')

    def choice(self, key: str, allowed: Sequence[str], default: Any = _MISSING) -> Any:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or value not in allowed:
            raise self.error(key, f"expected one of {list(allowed)}, got {value!r}")
        return value

    def _list(self, key: str, value: Any) -> list[Any]:
        if isinstance(value, list):
            flat: list[Any] = []
            stack = list(reversed(value))
            while stack:  # nested lists (AIMET 2.0.0 block scales) are flattened
                item = stack.pop()
                if isinstance(item, list):
                    stack.extend(reversed(item))
                else:
                    flat.append(item)
            return flat
        return [value]

    def float_list(self, key: str, default: Any = _MISSING) -> Any:
        return self._items(key, default, self._number)

    def int_list(self, key: str, default: Any = _MISSING) -> Any:
        return self._items(key, default, self._whole)

    def _items(self, key: str, default: Any, convert: Callable[[str, Any], Any]) -> Any:
        """A non-empty list (a scalar counts as one item), each item checked by ``convert``."""
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        items = self._list(key, value)
        if not items:
            raise self.error(key, "empty list")
        return [convert(f"{key}[{i}]", v) for i, v in enumerate(items)]
