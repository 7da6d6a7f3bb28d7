"""Quantization encodings: the one model of truth (:class:`Encoding`) and its file formats.

Import from here: ``from studio.core.encodings import Encoding, EncodingSet, load_encodings``.
"""

from __future__ import annotations

from studio.core.encodings.encoding import (
    FLOAT_BITWIDTHS,
    INT_BITWIDTHS,
    SCHEMA_VERSION,
    Encoding,
    EncodingSet,
    parse_qtype,
)

__all__ = [
    "FLOAT_BITWIDTHS",
    "INT_BITWIDTHS",
    "SCHEMA_VERSION",
    "Encoding",
    "EncodingSet",
    "parse_qtype",
]
