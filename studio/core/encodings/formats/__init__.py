"""Encodings file formats: one module per tool (QNN, AIMET, ONNX Runtime, ours) and the registry.

:data:`REGISTRY` is the one list of formats: the loader's detection, the writers, the CLI's
``--format`` choices and the GUI's export labels are all derived from it. A new format is a
module here plus one :class:`Format` record below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.formats import aimet, ort, qnn, studio
from studio.core.encodings.model_info import ModelView

Reader = Callable[[Any, str, "ModelView | None", bool], "tuple[EncodingSet, list[str]]"]


@dataclass(frozen=True)
class Format:
    """One encodings file format: how to recognise, read and write it, and what to call it."""

    name: str  # the CLI's --format value and the "source_format" recorded in what was read
    label: str  # what the GUI shows
    looks_like: Callable[[Any], bool]  # does a parsed JSON document have this format's shape?
    read: Reader  # (data, source, view, skip_unsupported) -> (EncodingSet, warnings)
    write: Callable[[EncodingSet], dict[str, Any]]
    detect_rank: int  # detection tries lower ranks first (the stricter shapes before the looser)


def _ignoring_skip(read: Callable[..., Any]) -> Reader:
    """A reader that has no unsupported entries to skip."""
    return lambda data, source, view, _skip: read(data, source, view)


REGISTRY: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "qnn",
            "QNN overrides 0.6.1 (qnn-onnx-converter --quantization_overrides)",
            qnn.looks_like,
            _ignoring_skip(qnn.read),
            qnn.write,
            detect_rank=4,
        ),
        Format("aimet1", "AIMET 1.0.0", aimet.looks_like_v1, aimet.read_v1, aimet.write_v1, 3),
        Format("aimet2", "AIMET 2.0.0", aimet.looks_like_v2, aimet.read_v2, aimet.write_v2, 2),
        Format(
            "ort",
            "ONNX Runtime TensorQuantOverrides",
            ort.looks_like,
            _ignoring_skip(ort.read),
            ort.write,
            detect_rank=1,
        ),
        Format(
            "studio",
            "npu-studio encodings",
            studio.looks_like,
            _ignoring_skip(studio.read),
            studio.write,
            detect_rank=0,
        ),
    )
}
FORMATS: tuple[str, ...] = tuple(REGISTRY)
