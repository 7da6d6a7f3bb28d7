"""npu-studio's own encodings schema: :meth:`EncodingSet.to_json`, read back with channel checks."""

from __future__ import annotations

from typing import Any

from studio.core.encodings._fields import Fields
from studio.core.encodings.encoding import STUDIO_FORMAT
from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.formats._common import check_channels
from studio.core.encodings.model_info import ModelView


def looks_like(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == STUDIO_FORMAT


def read(data: Any, source: str, view: ModelView | None) -> tuple[EncodingSet, list[str]]:
    encset = EncodingSet.from_json(data, source)
    for enc in encset.values():
        check_channels(Fields(enc.to_json(), source, enc.tensor), enc, view)
    return encset, []


def write(encset: EncodingSet) -> dict[str, Any]:
    return encset.to_json()
