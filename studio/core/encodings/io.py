"""Load any supported encodings file (format auto-detected) and save to any of them atomically.

Formats (the registry in :mod:`studio.core.encodings.formats`): ``qnn`` (0.6.1 overrides;
legacy shape read too), ``aimet1``, ``aimet2``, ``ort`` (TensorQuantOverrides as JSON) and
``studio`` (our own schema). Every failure is an
EncodingsError naming the file and, where there is one, the tensor and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.formats import FORMATS, REGISTRY
from studio.core.encodings.model_info import ModelView
from studio.core.errors import EncodingsError, StudioError


def detect_format(data: Any, source: str = "<memory>") -> str:
    """Which format a parsed JSON document is in; EncodingsError when none fits."""
    if not isinstance(data, dict):
        raise EncodingsError(
            f"expected a JSON object at the top level, got {type(data).__name__}", path=source
        )
    for fmt in sorted(REGISTRY.values(), key=lambda f: f.detect_rank):
        if fmt.looks_like(data):
            return fmt.name
    raise EncodingsError(
        "not an encodings file: expected QNN (activation_encodings/param_encodings objects), "
        "AIMET 1.0.0/2.0.0, ONNX Runtime overrides or npu-studio encodings",
        path=source,
    )


def parse_encodings(
    data: Any,
    source: str = "<memory>",
    model: Any = None,
    *,
    fmt: str | None = None,
    skip_unsupported: bool = False,
) -> tuple[EncodingSet, list[str]]:
    """Parse an already-loaded JSON document. ``model`` (ModelGraph, ModelProto or path)
    supplies per-channel axes, bias/weight roles and channel counts to check against."""
    fmt = fmt or detect_format(data, source)
    view = ModelView.of(model)
    try:
        if fmt not in REGISTRY:
            raise EncodingsError(f"unknown encodings format {fmt!r} (one of {FORMATS})")
        encset, warnings = REGISTRY[fmt].read(data, source, view, skip_unsupported)
    except StudioError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        # A shape no parser check anticipated: still a user's bad file, not a crash.
        raise EncodingsError(f"malformed {fmt} encodings: {exc}", path=source) from exc
    encset.meta.setdefault("source_format", fmt)
    return encset, warnings


def load_encodings(
    path: str | Path, model: Any = None, *, skip_unsupported: bool = False
) -> tuple[EncodingSet, list[str]]:
    """Read an encodings file in any supported format; returns the set and warnings to show."""
    source = str(path)
    data = read_json_strict(path, error_type=EncodingsError)
    return parse_encodings(data, source, model, skip_unsupported=skip_unsupported)


def dump_encodings(encset: EncodingSet, fmt: str) -> dict[str, Any]:
    """The JSON document for ``fmt``; every encoding is validated first."""
    if fmt not in REGISTRY:
        raise EncodingsError(f"unknown encodings format {fmt!r} (one of {list(FORMATS)})")
    for enc in encset.values():
        enc.validate()
        if enc.block_size and fmt not in BLOCK_FORMATS:
            raise EncodingsError(
                f"tensor '{enc.tensor}' is block-wise (block {enc.block_size}): format {fmt!r} "
                f"cannot say so; write {' or '.join(BLOCK_FORMATS)}"
            )
    return REGISTRY[fmt].write(encset)


# formats that carry a block-wise weight's block size and scale tensor
BLOCK_FORMATS = ("studio", "aimet2")


def save_encodings(encset: EncodingSet, path: str | Path, fmt: str = "studio") -> None:
    """Write atomically: on any error nothing (not even a partial file) replaces ``path``."""
    try:
        data = dump_encodings(encset, fmt)
    except EncodingsError as exc:
        raise EncodingsError(f"not saved: {exc}", path=str(path)) from exc
    atomic_write_json(path, data)
