"""One profiler column spec: a column added to ``core/profiling/columns.py`` reaches every table.

The run is a real CPU profile of a small CNN. The test adds a column to the registry (as a new
figure would be added) and finds it in the CSV export, the JSON export, the HTML report's layer
table and the Profiling workspace's Qt table model, with the same values in each.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from PySide6.QtCore import Qt

from studio.core.jobs.protocol import run_inline
from studio.core.profiling import columns as spec
from studio.core.profiling.export import export_run, layers_csv
from studio.core.profiling.job import profile_model
from studio.core.profiling.records import ProfileRun
from studio.core.workflows.report import build_report
from studio.ui.profiling.layer_table import LayerTableModel
from tests import builders


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> ProfileRun:
    model = builders.save(builders.small_cnn(), tmp_path_factory.mktemp("cols") / "cnn.onnx")
    req = {"model": str(model), "backend": "cpu", "runs": 5, "warmup": 1, "layer_runs": 2}
    return ProfileRun.from_json(run_inline(profile_model, req))


def _time_ms(row):
    return None if row.time_us is None else row.time_us / 1000.0


NEW = spec.Column(
    "time_ms",
    "Time (ms)",
    _time_ms,
    unit="ms",
    kind="measured",
    fmt=lambda v: "" if v is None else f"{v:.4f}",
    tip="kernel time in milliseconds",
)


@pytest.fixture
def added(monkeypatch):
    monkeypatch.setattr(spec, "LAYER_COLUMNS", [*spec.LAYER_COLUMNS, NEW])
    return NEW


def _timed(run):
    rows = [r for r in run.all_rows if r.time_us is not None]
    assert rows, "the CPU profile has per-layer kernel times"
    return rows


def test_the_views_read_one_spec_without_the_new_column(run, qapp):
    header = next(csv.reader(io.StringIO(layers_csv(run))))
    assert header == [c.key for c in spec.columns(spec.CSV)]
    assert "time_ms" not in header
    model = LayerTableModel()
    model.set_run(run)
    labels = [model.headerData(i, Qt.Orientation.Horizontal) for i in range(model.columnCount())]
    assert labels == [c.label for c in spec.columns(spec.TABLE)]
    assert "Time (ms)" not in labels


def test_a_new_column_reaches_export_report_and_table(run, added, tmp_path, qapp):
    rows = _timed(run)
    expected = {r.node_id: _time_ms(r) for r in rows}

    # CSV export: the header and one number per row
    table = list(csv.DictReader(io.StringIO(layers_csv(run))))
    assert "time_ms" in table[0]
    for line in table:
        if line["node_id"] in expected:
            assert float(line["time_ms"]) == pytest.approx(expected[line["node_id"]], rel=1e-5)

    # JSON export: what the column is, and the file still loads as a record
    paths = export_run(run, tmp_path / "exp")
    data = json.loads(paths["json"].read_text())
    described = {c["key"]: c for c in data["layer_columns"]}
    assert described["time_ms"] == {
        "key": "time_ms",
        "label": "Time (ms)",
        "unit": "ms",
        "kind": "measured",
    }
    assert ProfileRun.load(paths["json"]).stats == run.stats

    # the report's table of slowest layers
    html = build_report([run])
    section = html[html.index("<h2>Slowest layers</h2>") :]
    assert "<th title='kernel time in milliseconds'>Time (ms)</th>" in section
    slowest = run.ranked()[0]
    assert f"{_time_ms(slowest):.4f}" in section

    # the Profiling workspace's table model
    model = LayerTableModel()
    model.set_run(run)
    col = model.columnCount() - 1
    assert model.headerData(col, Qt.Orientation.Horizontal) == "Time (ms)"
    tip = model.headerData(col, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert tip == "kernel time in milliseconds"
    for i, row in enumerate(model.rows):
        if row.node_id in expected and not row.inserted:
            cell = model.data(model.index(i, col))
            assert cell == f"{expected[row.node_id]:.4f}"
            assert model.data(model.index(i, col), Qt.ItemDataRole.UserRole) == pytest.approx(
                expected[row.node_id]
            )
            align = model.data(model.index(i, col), Qt.ItemDataRole.TextAlignmentRole)
            assert align is not None  # a figure is right-aligned
            break
    else:
        pytest.fail("no timed row in the table")


def test_kinds_say_what_each_figure_is(run):
    cycles = spec.column("cycles")
    assert cycles.kind_for(run) == "measured"  # a CPU run: the host measured it
    emulated = ProfileRun.from_json(
        {**run.to_json(), "backend": "htp", "host": {"machine": "x86_64"}}
    )
    assert cycles.kind_for(emulated) == "emulated"
    assert spec.column("macs").kind_for(emulated) == "counted"
    assert all(re.fullmatch(r"[a-z_]+", c.key) for c in spec.LAYER_COLUMNS)
    with pytest.raises(ValueError, match="kind"):
        spec.Column("x", "X", lambda r: None, kind="guessed")
