"""Comparison, suggestions, exports and the HTML report, on runs measured here."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from onnxruntime.quantization import QuantType

from studio.core.jobs.protocol import run_inline
from studio.core.model.graph import ModelGraph
from studio.core.model.synthetic import transformer_like
from studio.core.profiling.compare import compare_runs
from studio.core.profiling.export import export_run, layers_csv, runs_csv
from studio.core.profiling.graph_svg import heat_graph_svg
from studio.core.profiling.job import profile_model
from studio.core.profiling.records import ProfileRun
from studio.core.profiling.suggestions import activation_bits, suggest
from studio.core.workflows.report import build_report, write_report
from tests import builders
from tests.core.profiling.qdq import quantize_for_qnn


def _profile(model, backend="cpu", **kw) -> ProfileRun:
    req = {"model": str(model), "backend": backend, "runs": 10, "warmup": 1, "layer_runs": 2}
    req.update(kw)
    return ProfileRun.from_json(run_inline(profile_model, req))


@pytest.fixture(scope="module")
def cpu_run(prof_models):
    return _profile(prof_models["float"], label="fp32 CPU")


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def _check_html(text: str) -> list[str]:
    parser = _Collect()
    parser.feed(text)
    assert "script" not in parser.tags  # self-contained, nothing to execute
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    svgs = re.findall(r"<svg.*?</svg>", text, re.S)
    for svg in svgs:
        ET.fromstring(svg)  # every chart is well-formed XML
    return svgs


def test_report_of_a_cpu_run(cpu_run, prof_models, tmp_path):
    graph = ModelGraph.load(prof_models["float"])
    path = write_report(
        tmp_path / "r.html",
        [cpu_run],
        graph,
        quantization={"activation": "none (float32)"},
        assignment={"/stem/Conv": "cpu"},
    )
    text = path.read_text()
    svgs = _check_html(text)
    assert len(svgs) == 5  # histogram, over time, top layers, op types, graph heat
    for needle in ("/block/conv/Conv", "p95", "depthwise", "small_cnn", "float32", "data:text/csv"):
        assert needle in text
    assert f"{cpu_run.stats.p50_ms:.3g} ms" in text


def test_suggestions_cite_nodes_and_numbers(cpu_run, prof_models):
    graph = ModelGraph.load(prof_models["float"])
    items = suggest(cpu_run, graph)
    kinds = {s.kind for s in items}
    assert {"hotspot", "depthwise", "layout"} <= kinds
    dw = next(s for s in items if s.kind == "depthwise")
    assert dw.nodes == ["/block/conv/Conv"]
    # 8->8 channels, 3x3, 32x32 output: standard vs depthwise + pointwise MACs.
    assert dw.evidence["macs"] == 32 * 32 * 8 * 8 * 9
    assert dw.evidence["depthwise_separable_macs"] == 32 * 32 * 8 * 9 + 32 * 32 * 8 * 8
    assert "fallback" not in kinds  # a CPU run has no CPU fallback
    _assert_plain_english(items)
    hot = next(s for s in items if s.kind == "hotspot")
    assert re.search(r"of the measured time \([\d.,]+ (µs|ms)\)", hot.text), hot.text


def _assert_plain_english(items) -> None:
    """Suggestion texts read as English: no ``time_us``-style keys, node names aside."""
    for s in items:
        for words in (s.title, s.text):
            for node in s.nodes:
                words = words.replace(node, "")
            assert not re.search(r"[A-Za-z]+_[A-Za-z]+", words), words


def test_compare_and_exports(cpu_run, prof_models, tmp_path):
    other = _profile(prof_models["unnamed"], label="unnamed")
    same = _profile(prof_models["float"], label="again")
    comp = compare_runs([cpu_run, same, other])
    row = next(r for r in comp.rows if r.node_id == "/block/conv/Conv")
    assert row.share_delta_pp[0] == 0.0 and row.value_ratio[0] == 1.0
    assert row.cells[2] is None  # the unnamed model's ids differ: no cell, not a made-up one
    assert comp.runs[1]["mean_ratio_vs_baseline"] == pytest.approx(
        same.stats.mean_ms / cpu_run.stats.mean_ms
    )
    table = list(csv.reader(io.StringIO(comp.to_csv())))
    assert table[0][:3] == ["node_id", "op_type", "inserted_by_backend"]
    assert len(table) == len(comp.rows) + 1
    layers = list(csv.DictReader(io.StringIO(layers_csv(cpu_run))))
    assert {r["node_id"] for r in layers} == {r.node_id for r in cpu_run.all_rows}
    assert len(list(csv.reader(io.StringIO(runs_csv([cpu_run, other]))))) == 3
    paths = export_run(cpu_run, tmp_path / "exp")
    assert ProfileRun.load(paths["json"]).stats == cpu_run.stats
    with pytest.raises(Exception, match="baseline"):
        compare_runs([cpu_run], baseline=3)


def test_big_graph_draws_only_the_hot_path():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.onnx"
        builders.save(transformer_like(400), path)
        graph = ModelGraph.load(path)
    heat = {n.id: (i % 7) / 7 for i, n in enumerate(graph.nodes)}
    svg, caption = heat_graph_svg(graph, heat, max_nodes=25)
    ET.fromstring(svg)
    assert "hot path" in caption
    assert svg.count("<rect x=") <= 25


@pytest.mark.htp
def test_int8_vs_16bit_vs_cpu_report(prof_models, cpu_run, tmp_path):
    a16 = quantize_for_qnn(
        prof_models["float"], tmp_path / "a16.onnx", activation_type=QuantType.QUInt16
    )
    # Simulator cycles wobble when the host is busy: medians over 5 profiled runs.
    int8 = _profile(prof_models["qdq"], "htp", label="INT8 HTP", layer_runs=5)
    mixed = _profile(a16, "htp", label="A16W8 HTP", layer_runs=5)
    g16 = ModelGraph.load(a16)
    assert set(activation_bits(g16).values()) == {16}
    items = suggest(mixed, g16)
    bits = [s for s in items if s.kind == "bits16"]
    assert bits and all(s.evidence["cycles"] > 0 for s in bits)
    conv8 = next(r for r in int8.layers if r.node_id == "/block/conv/Conv")
    conv16 = next(r for r in mixed.layers if r.node_id == "/block/conv/Conv")
    assert conv16.cycles > conv8.cycles  # 16-bit activations cost the simulator more cycles
    int8_items = suggest(int8, ModelGraph.load(prof_models["qdq"]))
    assert any(s.kind == "layout" for s in int8_items)
    _assert_plain_english(items + int8_items)
    assert any("of all cycles (" in s.text for s in int8_items)
    text = build_report([int8, mixed, cpu_run], ModelGraph.load(prof_models["qdq"]))
    _check_html(text)
    assert "Comparison of runs" in text and "A16W8 HTP" in text and "simulated" in text


def test_tail_and_drift_rules_read_the_distribution():
    import numpy as np

    from studio.core.profiling.stats import latency_stats, timeline_bins

    # A run whose latency doubles halfway, with a few 10x outliers: both rules must cite it.
    lat = np.r_[np.full(100, 1.0), np.full(100, 2.0)]
    lat[::40] = 10.0
    offsets = np.arange(lat.size) * 0.01
    run = ProfileRun(
        model_path="m.onnx",
        model_sha256="",
        backend="cpu",
        stats=latency_stats(lat, 2.0),
        latencies_ms=lat.tolist(),
        timeline=timeline_bins(offsets, lat, 0.4),
    )
    by_kind = {s.kind: s for s in suggest(run)}
    assert by_kind["tail_latency"].evidence["p99_ms"] == pytest.approx(10.0)
    drift = by_kind["drift"]
    assert drift.evidence["last_bin_mean_ms"] > 1.2 * drift.evidence["first_bin_mean_ms"]
    steady = ProfileRun(
        model_path="m.onnx",
        model_sha256="",
        backend="cpu",
        stats=latency_stats(np.full(200, 1.0), 2.0),
        latencies_ms=[1.0] * 200,
        timeline=timeline_bins(offsets, np.full(200, 1.0), 0.4),
    )
    assert not {"tail_latency", "drift"} & {s.kind for s in suggest(steady)}
