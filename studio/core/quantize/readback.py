"""Read the encodings a QDQ model really uses back from its Q/DQ nodes.

Why: the built model is the source of truth. ORT may widen tensors at mixed-precision
boundaries, derives bias encodings (int32, input_scale * weight_scale) and folds lone Relus into
their producers; exporting what the plan asked for would describe a different model. The reading
itself is :func:`studio.core.encodings.from_qdq_model`, shared with bundles and imports.
"""

from __future__ import annotations

import onnx

from studio.core.encodings import EncodingSet, from_qdq_model


def encodings_of_qdq(proto: onnx.ModelProto) -> EncodingSet:
    """The encodings a QDQ model really uses, read from its Q/DQ nodes (the source of truth)."""
    out = from_qdq_model(proto)
    out.meta["source"] = "qdq-model"
    return out
