"""Encodings coverage and the QDQ build agree on which tensors are quantisable."""

from __future__ import annotations

from pathlib import Path

import onnx

from studio.core.encodings import EncodingSet
from studio.core.encodings.model_info import ModelView, coverage
from studio.core.quantize.scope import quantisable_tensors

DEMO = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo_cnn.onnx"


def test_coverage_does_not_ask_for_encodings_no_build_would_use():
    view = ModelView.of(DEMO)
    names = set(view.quantizable_tensors())
    # A Clip's min/max are float initializers, but the QDQ quantiser never quantises them.
    assert "/dsconv/clip_min" not in names and "/dsconv/clip_max" not in names
    assert {"stem.conv.weight", "head.fc.weight", "/dsconv/relu6/Clip_output_0"} <= names
    report = coverage(EncodingSet(), DEMO)
    assert "/dsconv/clip_min" not in report.missing_tensors
    # Same rule as the build's own list on the same (unprepared) model.
    assert names == set(quantisable_tensors(onnx.load(str(DEMO))))
