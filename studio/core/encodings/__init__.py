"""Quantization encodings: the one model of truth (:class:`Encoding`) and its file formats.

Import from here: ``from studio.core.encodings import Encoding, EncodingSet, load_encodings``.
"""

from __future__ import annotations

from studio.core.encodings.encoding import (
    FLOAT_BITWIDTHS,
    INT_BITWIDTHS,
    SCHEMA_VERSION,
    Encoding,
    parse_qtype,
)
from studio.core.encodings.encoding_set import EncodingSet
from studio.core.encodings.formats.ort import OrtOverrides
from studio.core.encodings.formats.ort import to_overrides as to_ort_overrides
from studio.core.encodings.io import (
    FORMATS,
    detect_format,
    dump_encodings,
    load_encodings,
    parse_encodings,
    save_encodings,
)
from studio.core.encodings.model_info import CoverageReport, ModelView, coverage
from studio.core.encodings.qdq import bias_encoding, from_qdq_model

__all__ = [
    "FORMATS",
    "CoverageReport",
    "ModelView",
    "OrtOverrides",
    "bias_encoding",
    "coverage",
    "from_qdq_model",
    "detect_format",
    "dump_encodings",
    "load_encodings",
    "parse_encodings",
    "save_encodings",
    "to_ort_overrides",
    "FLOAT_BITWIDTHS",
    "INT_BITWIDTHS",
    "SCHEMA_VERSION",
    "Encoding",
    "EncodingSet",
    "parse_qtype",
]
