"""The pipeline's fallback: when HTP cannot be used, the profile runs on CPU and says so."""

from __future__ import annotations

import json

from studio.core.errors import BackendUnavailableError
from studio.core.workflows import pipeline
from tests import builders


def test_without_htp_the_profile_runs_on_cpu_and_says_so(tmp_path, monkeypatch):
    # A machine without HTP: every request for it is refused the way the real backend refuses.
    def no_htp(kind, request, ctx):
        if request.get("backend", "htp") == "htp":
            raise BackendUnavailableError("QNN HTP is not available on this machine")
        return pipeline._inline_runner(kind, request, ctx)

    monkeypatch.setattr(pipeline, "_worker_runner", no_htp)
    model = builders.save(builders.small_cnn(), tmp_path / "cnn.onnx")
    result = pipeline.run_pipeline(model, tmp_path / "out", runs=5, warmup=1)
    assert result["stages"]["compile"]["status"] == "skipped"
    assert result["stages"]["profile"]["backend"] == "cpu"
    assert any("profiled on the CPU instead" in n for n in result["notes"])
    text = (tmp_path / "out" / "report.html").read_text()
    assert "HTP was not available" in text and "to CPU" in text
    saved = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert saved["stages"]["report"]["status"] == "ok"
