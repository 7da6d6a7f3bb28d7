"""The stakeholder report on the demo, from a real pipeline run (HTP compile and profile on the
x86 emulator, device estimate, SQNR on the held-out images): headline first with every figure's
kind, one ranked warnings box, the accuracy section, the appendix last; and it prints to PDF."""

from __future__ import annotations

import json
import re

import pytest

from studio.core.calibration.samples import find_sample_data
from studio.core.workflows import pipeline
from studio.core.workflows.summary import rank_warnings
from studio.resources import demo_model_path

DEMO = demo_model_path()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    result = pipeline.run_pipeline(DEMO, out, runs=5, warmup=1)
    return out, result


def test_headline_answers_the_stakeholder_first(demo_run):
    out, result = demo_run
    assert result["stages"]["quantize"]["summary"]["calibration data"] == str(
        find_sample_data(DEMO).calibration
    )
    assert not any("random data" in n for n in result["notes"])  # real samples, no warning
    html = (out / "report.html").read_text()
    order = [
        html.index(marker)
        for marker in (
            "id='headline'",
            "id='warnings'",
            "id='accuracy'",
            "<h2>Latency</h2>",
            "Appendix</summary>",
        )
    ]
    assert order == sorted(order)
    headline = html[html.index("id='headline'") : html.index("id='warnings'")]
    for tile in (
        "Model",
        "Target device",
        "Precision",
        "On-device latency",
        "Speed-up vs float",
        "Output SQNR vs float",
        "Placement",
        "Size",
    ):
        assert f"<div class='k'>{tile}</div>" in headline
    assert "demo_cnn.onnx" in headline and "W8A8" in headline
    assert re.search(r"≈[0-9.]+ ms on [^<]+ \(estimated", headline)  # a device estimate, labelled
    assert "kind-estimated" in headline and "kind-measured" in headline
    sqnr = json.loads((out / "sqnr.json").read_text())
    assert sqnr["samples"] == len(list(find_sample_data(DEMO).heldout.iterdir()))
    assert f"{float(sqnr['output_sqnr_db']):.1f} dB" in headline
    assert "fully on the NPU" in headline or "node(s) on CPU" in headline
    assert "→" in headline  # size before -> after
    # the warnings are in one box, nowhere else
    assert html.count("class='warnbox'") == 1 and "class='note'" not in html
    # the accuracy section: chart, worst layers
    accuracy = html[html.index("id='accuracy'") : html.index("<h2>Latency</h2>")]
    assert "Per-layer SQNR" in accuracy and "<svg" in accuracy and "Worst layers" in accuracy
    # raw options and host facts only in the appendix
    appendix = html[html.index("Appendix</summary>") :]
    assert "How it was measured" in appendix and "onnxruntime-qnn" in appendix
    assert "How it was measured" not in html[: html.index("Appendix</summary>")]


def test_warnings_are_ranked_by_what_they_change():
    ranked = rank_warnings(
        [
            "latencies measured with profiling off",
            "HTP simulated on x86-64: wall times are this host's",
            "calibrated on random data: accuracy is not meaningful",
            "3 node(s) ran on the CPU EP, not on HTP",
            "calibrated on random data: accuracy is not meaningful",
        ]
    )
    assert [c for c, _, _ in ranked] == ["accuracy", "placement", "device numbers", "other"]


def test_report_prints_to_pdf_and_png(demo_run, qapp):
    from studio.ui.widgets.html_export import export_html

    out, _ = demo_run
    written = export_html(
        out / "report.html", pdf=out / "report.pdf", png=out / "report.png", max_height=1600
    )
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.count(b"/Type /Page") >= 2
    from PySide6.QtGui import QImage

    image = QImage(written["png"])
    assert image.width() >= 1000 and image.height() >= 1000
