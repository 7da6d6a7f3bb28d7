"""Decode a large JSON document piece by piece, so that other threads keep running meanwhile.

Why: ``json.loads`` is one C call that holds the GIL from the first byte to the last. A job's
result (a 20,000-layer SQNR report, a profile, a backend plan) is tens of megabytes of JSON;
decoding it on the thread that reads the worker's pipe froze the window's UI thread for the whole
decode (hundreds of milliseconds with the UI thread's own CPU near zero: it was waiting for the
GIL). :func:`loads_in_pieces` walks the outer containers itself and hands each element to the C
decoder, so the GIL is released between elements (every ``sys.getswitchinterval()``) and the UI
thread waits at most one element's decode. The result is exactly what ``json.loads`` returns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# below this a document decodes in a few milliseconds: one C call is fine
PIECES_FROM_CHARS = 256 * 1024
# objects this deep are walked key by key, and arrays among their values element by element; an
# array's elements are decoded whole (rows: many and small)
_WALK_DEPTH = 3
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SPACE = " \t\n\r"
_DEFAULT = json.JSONDecoder()


def loads_in_pieces(
    text: str,
    *,
    parse_constant: Callable[[str], Any] | None = None,
    min_chars: int = PIECES_FROM_CHARS,
) -> Any:
    """``json.loads(text, parse_constant=parse_constant)``, decoded in pieces when ``text`` is
    at least ``min_chars`` long; raises ``json.JSONDecodeError`` (or what ``parse_constant``
    raises) as ``json.loads`` would."""
    if len(text) < min_chars:
        return json.loads(text, parse_constant=parse_constant)
    decoder = (
        _DEFAULT if parse_constant is None else json.JSONDecoder(parse_constant=parse_constant)
    )
    value, end = _value(text, _skip(text, 0), decoder, _WALK_DEPTH)
    end = _skip(text, end)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def _skip(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()


def _value(text: str, index: int, decoder: json.JSONDecoder, depth: int) -> tuple[Any, int]:
    if depth > 0 and index < len(text):
        if text[index] == "{":
            return _object(text, index + 1, decoder, depth - 1)
        if text[index] == "[":
            return _array(text, index + 1, decoder)
    return decoder.raw_decode(text, index)


def _object(text: str, index: int, decoder: json.JSONDecoder, depth: int) -> tuple[dict, int]:
    result: dict[str, Any] = {}
    index = _skip(text, index)
    if text[index : index + 1] == "}":
        return result, index + 1
    while True:
        if text[index : index + 1] != '"':
            raise json.JSONDecodeError(
                "Expecting property name enclosed in double quotes", text, index
            )
        key, index = json.decoder.scanstring(text, index + 1)
        index = _skip(text, index)
        if text[index : index + 1] != ":":
            raise json.JSONDecodeError("Expecting ':' delimiter", text, index)
        result[key], index = _value(text, _skip(text, index + 1), decoder, depth)
        closed, index = _after_item(text, index, "}")
        if closed:
            return result, index


def _array(text: str, index: int, decoder: json.JSONDecoder) -> tuple[list, int]:
    result: list[Any] = []
    index = _skip(text, index)
    if text[index : index + 1] == "]":
        return result, index + 1
    append, scan = result.append, decoder.scan_once
    while True:
        try:  # each element whole, in one C call (rows are many and small)
            item, index = scan(text, index)
        except StopIteration as exc:
            raise json.JSONDecodeError("Expecting value", text, exc.value) from None
        append(item)
        closed, index = _after_item(text, index, "]")
        if closed:
            return result, index


def _after_item(text: str, index: int, close: str) -> tuple[bool, int]:
    """After a member: (True, past ``close``) at the container's end, (False, at the next
    member) after a comma; anything else is an error."""
    if text[index : index + 2] == ", ":  # json.dumps's separator, mostly without the regex
        index += 2
        if text[index : index + 1] in _SPACE:  # more space (or the end: the next scan says so)
            index = _skip(text, index)
        return False, index
    index = _skip(text, index)
    delimiter = text[index : index + 1]
    if delimiter == close:
        return True, index + 1
    if delimiter != ",":
        raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
    return False, _skip(text, index + 1)
