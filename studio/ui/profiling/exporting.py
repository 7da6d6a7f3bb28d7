"""The Profiling workspace's exports: run record, per-layer and latency CSV, comparison, HTML report.

Why apart from the workspace: an export reads the workspace's state (the run shown, the
comparison, the suggestions, the Graph workspace's picture) and writes files atomically through
the core (``profiling.export``, ``workflows.report``); none of it is layout or live runs. The
functions take the workspace first, as the Quantization workspace's action modules do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from studio.core.atomic import atomic_write_text
from studio.core.errors import StudioError
from studio.core.profiling import export as core_export
from studio.core.profiling.records import ProfileRun
from studio.ui.profiling.view_data import overlay_for

log = logging.getLogger(__name__)

# The report's column is 1100 px wide: a picture of that width shows 1:1 (legend text readable).
REPORT_PNG_SIZE = (1080, 1000)


def export_menu(ws, parent: QWidget) -> QMenu:
    """The Export button's menu: each entry asks for a file and writes one kind."""
    menu = QMenu(parent)
    menu.addAction("Run record (JSON)…", lambda: ask_export(ws, "json"))
    menu.addAction("Per-layer table (CSV)…", lambda: ask_export(ws, "layers"))
    menu.addAction("Latencies (CSV)…", lambda: ask_export(ws, "latencies"))
    menu.addAction("Comparison (CSV)…", lambda: ask_export(ws, "compare"))
    menu.addSeparator()
    menu.addAction("HTML report…", lambda: ask_export(ws, "html"))
    menu.addAction("PDF report…", lambda: ask_export(ws, "pdf"))
    return menu


def export(ws, kind: str, path: str | Path) -> Path:
    """Write the current run (or comparison) as ``kind``; raises StudioError if none."""
    ws.finish_showing()  # the report reads the suggestions of the run on the dashboard
    if kind == "compare":
        if ws.compare.comparison is None:
            raise StudioError("nothing to export: compare two or more runs first")
        atomic_write_text(path, ws.compare.comparison.to_csv())
        return Path(path)
    if ws.run is None:
        raise StudioError("nothing to export: run a profile or pick one from the history")
    if kind == "json":
        return ws.run.save(path)
    if kind == "layers":
        atomic_write_text(path, core_export.layers_csv(ws.run))
        return Path(path)
    if kind == "latencies":
        atomic_write_text(path, core_export.latencies_csv(ws.run))
        return Path(path)
    if kind == "html":
        return _write_html(ws, Path(path))
    if kind == "pdf":
        return _write_pdf(ws, Path(path))
    raise StudioError(f"unknown export kind '{kind}'")


def _write_html(ws, path: Path) -> Path:
    """The core's self-contained report: this run first, then the compared runs, if any."""
    from studio.core.workflows.report import write_report

    others = [r for r in ws.compare.runs if r.id != ws.run.id]
    suggestions = [c.suggestion for c in ws.suggestions.cards]
    png, caption = _graph_picture(ws, ws.run)
    sweep = getattr(ws.ctx, "sweep_report_section", None)
    sweep_html = sweep() if sweep is not None else None
    return write_report(
        path,
        [ws.run, *others],
        _graph_now(ws, ws.run.model_path),
        suggestions=suggestions or None,
        graph_png=png,
        graph_png_caption=caption,
        extra_sections=[sweep_html] if sweep_html else None,
    )


def _write_pdf(ws, path: Path) -> Path:
    """The same report printed to A4 by QtWebEngine, written beside ``path`` and then moved
    into place, so an interrupted print never leaves half a PDF under the user's name."""
    import os
    import tempfile

    from studio.ui.widgets.html_export import export_html

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".report-", dir=path.parent) as scratch:
        html = _write_html(ws, Path(scratch) / "report.html")
        printed = Path(scratch) / "report.pdf"
        export_html(html, pdf=printed)
        os.replace(printed, path)
    return path


def _graph_picture(ws, run: ProfileRun) -> tuple[bytes | None, str | None]:
    """The Graph workspace's picture of ``run``'s model with its heat overlay, or no picture.

    The overlay is put on the graph as "Show on graph" does (the user sees what the report
    shows). No picture, and the report draws its own SVG, when there is no graph view, the
    open model is not the profiled one, the run has no per-node figures, or nothing is laid
    out yet.
    """
    render = getattr(ws.ctx, "render_graph_png", None)
    overlay = overlay_for(run)
    opened = getattr(ws.ctx, "model_path", None)
    if render is None or overlay is None or not opened:
        return None, None
    if Path(opened).resolve() != Path(run.model_path).resolve():
        log.info(
            "report graph drawn as SVG: the graph view shows %s, not %s", opened, run.model_path
        )
        return None, None
    if ws.overlay_btn.isChecked():
        ws._send_overlay()
    else:
        ws.overlay_btn.setChecked(True)  # sends the overlay
    try:
        png = render(*REPORT_PNG_SIZE)
    except StudioError as exc:
        log.info("report graph drawn as SVG: %s", exc)
        return None, None
    what = "simulator cycles" if overlay.unit == "cycles" else "kernel time (ms)"
    caption = (
        f"The studio's own graph view of {Path(run.model_path).name}, the whole graph fitted "
        "to the picture (a graph too tall to read that way is cut into columns, read top to "
        f"bottom, left to right). Node colour: {what} per node in run “{run.label}”, on the "
        "inferno colour map from near-black (least) through red to bright yellow (most); "
        "the legend in the picture gives the range and unit (marked when on a log scale). "
        "Grey: no figure of its own (fused into another node, folded, or not reported)."
    )
    return png, caption


def _graph_now(ws, path: str) -> Any:
    """The profiled model's graph for the report, loaded here if not yet (user action)."""
    graph = ws.graphs.graphs.get(ws.graphs.key(path))
    if graph is None and not ws.graphs.known(path):
        from studio.core.model.graph import ModelGraph

        try:
            graph = ModelGraph.load(path)
        except (StudioError, OSError) as exc:
            log.info("report without model structure: %s", exc)
            return None
        ws.graphs.put(path, graph)
    return graph


def ask_export(ws, kind: str) -> None:
    filters = {
        "json": "JSON (*.json)",
        "layers": "CSV (*.csv)",
        "latencies": "CSV (*.csv)",
        "compare": "CSV (*.csv)",
        "html": "HTML (*.html)",
        "pdf": "PDF (*.pdf)",
    }
    stem = (ws.run.label if ws.run else "profile").replace(" · ", "_").replace(" ", "_")
    suffix = filters[kind].split("*")[1].rstrip(")")
    default = f"{stem}_{kind}{suffix}" if kind != "json" else f"{stem}{suffix}"
    path, _ = QFileDialog.getSaveFileName(ws, "Export", default, filters[kind])
    if not path:
        return
    try:
        written = export(ws, kind, path)
    except StudioError as exc:
        ws.ctx.show_error("Export failed", str(exc))
        return
    ws.ctx.status_message.emit(f"Exported {written}")
