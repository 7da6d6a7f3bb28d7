"""The one per-node overlay type: its saved shape, its checks, and the core producers of it."""

from __future__ import annotations

import json
import math

import pytest

from studio.core.errors import BadInputError
from studio.core.overlay import NodeOverlay
from studio.core.profiling.records import LayerRow, ProfileRun
from studio.core.profiling.stats import latency_stats


def test_round_trip_and_what_the_numbers_are():
    o = NodeOverlay("sqnr", {"a": 12.5, "b": 3}, "dB", "measured", "ORT CPU", "RdYlGn")
    back = NodeOverlay.from_json(json.loads(json.dumps(o.to_json())))
    assert back == o and back.values == {"a": 12.5, "b": 3.0}
    assert o.label == "sqnr (dB): measured, ORT CPU"
    # saved before kind/source existed: read with the defaults, not refused
    old = NodeOverlay.from_json({"name": "cycles", "values": {"x": 1}, "unit": "cycles"})
    assert (old.kind, old.source, old.aggregate) == ("measured", "", "max")


def test_non_finite_values_are_no_data_not_zero():
    o = NodeOverlay("t", {"a": math.nan, "b": math.inf, "c": 1.0, "d": True})
    assert o.values == {"c": 1.0}


def test_bad_overlays_name_the_file_and_field():
    with pytest.raises(BadInputError, match=r"p\.npustudio: values\.n: expected a finite number"):
        NodeOverlay.from_json({"name": "x", "values": {"n": "fast"}}, "p.npustudio")
    with pytest.raises(BadInputError, match=r"kind: \"guessed\" is not one of measured"):
        NodeOverlay.from_json({"name": "x", "kind": "guessed"}, "p.npustudio")
    with pytest.raises(BadInputError, match="kind"):
        NodeOverlay("x", {}, kind="guessed")


def _run(backend: str, machine: str) -> ProfileRun:
    rows = [
        LayerRow("conv", "Conv", backend, cycles=300.0, share=0.75),
        LayerRow("relu", "Relu", backend, cycles=100.0, share=0.25),
    ]
    stats = latency_stats([1.0, 2.0, 3.0])
    return ProfileRun("m.onnx", "", backend, stats, [1.0], layers=rows, host={"machine": machine})


def test_a_profile_run_gives_its_heat_overlay_with_its_origin():
    emulated = _run("htp", "x86_64").overlay()
    assert emulated.values == {"conv": 0.75, "relu": 0.25}
    assert emulated.kind == "derived" and "emulated" in emulated.source
    assert "measured" in _run("htp", "aarch64").overlay().source
