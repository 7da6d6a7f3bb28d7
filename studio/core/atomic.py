"""Atomic file writes: a crash or a full disk mid-save never leaves a half-written file.

Write to a temporary file in the same folder, flush and fsync it, then ``os.replace`` it over the
target (atomic on POSIX), then fsync the folder so the rename itself survives a power cut. If any
step fails the temporary file is removed and the previous file is untouched.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; raise StudioError naming the file on failure."""
    target = Path(path)
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
        _fsync_dir(target.parent)
    except OSError as exc:
        raise StudioError(f"could not save: {exc.strerror or exc}", path=str(target)) from exc
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Write strict JSON (NaN/Inf refused: other tools cannot read them back)."""
    _reject_non_finite(data, str(path))
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def _reject_non_finite(value: Any, path: str, where: str = "") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise StudioError(f"refusing to write non-finite number at '{where or '/'}'", path=path)
    if isinstance(value, dict):
        for key, item in value.items():
            _reject_non_finite(item, path, f"{where}/{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _reject_non_finite(item, path, f"{where}/{index}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json_strict(path: str | Path, *, error_type: type[StudioError] = StudioError) -> Any:
    """Read JSON, refusing NaN/Infinity literals; errors name the file and the position."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error_type("file not found", path=str(target)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error_type(f"cannot read: {exc}", path=str(target)) from exc

    return loads_json_strict(text, str(target), error_type=error_type)


def loads_json_strict(
    text: str, source: str, *, error_type: type[StudioError] = StudioError
) -> Any:
    """JSON text, refusing NaN/Infinity literals; errors name ``source`` and the position."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    from studio.core.json_pieces import loads_in_pieces

    try:  # in pieces: a large file read on a background thread must not hold the GIL throughout
        return loads_in_pieces(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise error_type(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=source
        ) from exc
    except ValueError as exc:
        raise error_type(f"invalid JSON: {exc}", path=source) from exc
