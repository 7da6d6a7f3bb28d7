"""The graph view as a picture: the whole laid-out graph, its overlay colours and the legend, as PNG.

Used by "Export graph as PNG…" here and, through ``ctx.render_graph_png``, by the Profiling
workspace's HTML report, so the report shows the studio's real graph with the real heat overlay
(not a second, simplified drawing). Rendering goes through the same scene painter as the screen,
offscreen into a QImage, so it needs no visible window and does not move the user's view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

from studio.core.atomic import atomic_write_bytes
from studio.core.errors import StudioError
from studio.ui.graph import styles
from studio.ui.widgets.theme import COLORS

MARGIN = 16
MAX_SCALE = 1.5  # a small graph is enlarged at most this much (boxes stay crisp, not blown up)
MAX_COLUMNS = 40  # a very tall graph is cut into at most this many columns
COLUMN_GAP = 28
FOOTER = 110  # strip under the graph for the legend and the caption line (legend is 86 px tall)


def _area(width: int, height: int) -> QRectF:
    return QRectF(MARGIN, MARGIN, width - 2 * MARGIN, height - 2 * MARGIN - FOOTER)


def graph_target(bounds: QRectF, width: int, height: int) -> tuple[QRectF, float]:
    """Where the scene rectangle ``bounds`` lands in the picture fitted whole, and the scale."""
    area = _area(width, height)
    scale = min(area.width() / bounds.width(), area.height() / bounds.height(), MAX_SCALE)
    w, h = bounds.width() * scale, bounds.height() * scale
    return QRectF(area.center().x() - w / 2, area.center().y() - h / 2, w, h), scale


def _row_gaps(boxes: np.ndarray) -> np.ndarray:
    """Heights (scene y) between rows of boxes, where a cut crosses edges only, never a box."""
    if len(boxes) < 2:
        return np.zeros(0)
    order = np.argsort(boxes[:, 1], kind="stable")
    tops = boxes[order, 1]
    reach = np.maximum.accumulate(boxes[order, 1] + boxes[order, 3])
    gap = reach[:-1] < tops[1:]
    return (reach[:-1][gap] + tops[1:][gap]) / 2


def plan_picture(
    bounds: QRectF, boxes: np.ndarray, width: int, height: int
) -> tuple[list[tuple[QRectF, QRectF]], float]:
    """[(scene slice, picture rectangle)] and the scale: the whole graph, fitted.

    A graph that, fitted in one piece, would be too small to read (below the zoom where boxes
    carry their op type; a 2,000-node transformer is a one-pixel line) is cut between rows of
    boxes into columns side by side, read top to bottom, left to right, at the largest scale.
    """
    target, scale = graph_target(bounds, width, height)
    if scale >= styles.LOD_DETAIL or len(boxes) < 2:
        return [(QRectF(bounds), target)], scale
    area = _area(width, height)
    gaps = _row_gaps(boxes)
    top, bottom, bw = bounds.top(), bounds.bottom(), bounds.width()
    best: tuple[float, list[float]] = (scale, [top, bottom])
    for k in range(2, MAX_COLUMNS + 1):
        if len(gaps) == 0:
            break
        ideal = top + (bottom - top) * np.arange(1, k) / k
        pick = np.abs(gaps[None, :] - ideal[:, None]).argmin(axis=1)  # nearest free row gap
        cuts = [top, *sorted({float(gaps[i]) for i in pick}), bottom]
        n = len(cuts) - 1
        tallest = max(b - a for a, b in zip(cuts, cuts[1:], strict=False))
        k_scale = min(
            (area.width() - (n - 1) * COLUMN_GAP) / (n * bw), area.height() / tallest, MAX_SCALE
        )
        if k_scale > best[0] * 1.05:
            best = (k_scale, cuts)
    scale, cuts = best
    if len(cuts) == 2:
        return [(QRectF(bounds), target)], scale
    n = len(cuts) - 1
    used = n * bw * scale + (n - 1) * COLUMN_GAP
    left = area.center().x() - used / 2
    plan = []
    for j, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        source = QRectF(bounds.left(), a, bw, b - a)
        x = left + j * (bw * scale + COLUMN_GAP)
        plan.append((source, QRectF(x, area.top(), bw * scale, (b - a) * scale)))
    return plan, scale


def render_graph_image(workspace: Any, width: int = 1600, height: int = 1000) -> QImage:
    """The whole graph of ``workspace`` (a GraphWorkspace), fitted into ``width`` x ``height``.

    The current layout (collapsed scopes as shown), overlay colours and badges are drawn; the
    selection and search marks are not (they are the user's cursor, not part of the picture).
    Raises StudioError when no graph is laid out yet.
    """
    scene = workspace.scene
    if scene.layout is None or workspace.layout_data is None:
        raise StudioError("no graph to export: open a model and wait for its layout")
    if width < 200 or height < 200:
        raise StudioError(f"graph picture too small ({width}x{height}); at least 200x200")
    image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(styles.BACKGROUND)
    legend = workspace.canvas.legend
    with_legend = bool(workspace.active_overlay) and not legend.isHidden()
    plan, scale = plan_picture(scene.bounds, workspace.layout_data.boxes, width, height)

    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    marks_visible = scene.marks.isVisible()
    scene.marks.setVisible(False)
    try:
        for source, target in plan:
            scene.render(painter, target, source, Qt.AspectRatioMode.KeepAspectRatio)
    finally:
        scene.marks.setVisible(marks_visible)
    painter.setPen(QColor(COLORS["border"]))
    for (_, before), (_, after) in zip(plan, plan[1:], strict=False):
        x = (before.right() + after.left()) / 2  # a rule between columns
        painter.drawLine(
            QPointF(x, before.top()), QPointF(x, before.top() + _area(width, height).height())
        )
    top = height - MARGIN - FOOTER + 12
    if with_legend:
        legend.render(painter, QPointF(MARGIN, top).toPoint())
    painter.setPen(QColor(COLORS["muted"]))
    font = painter.font()
    font.setPixelSize(13)
    painter.setFont(font)
    left = MARGIN + (legend.width() + 16 if with_legend else 0)
    painter.drawText(
        QRectF(left, top, width - MARGIN - left, legend.height()),
        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
        _caption(workspace, scale, len(plan)),
    )
    painter.end()
    return image


def _caption(workspace: Any, scale: float, columns: int) -> str:
    graph = workspace.graph
    name = Path(str(getattr(graph, "path", "") or "")).name or "model"
    layout = workspace.layout_data
    text = f"{name} · {len(graph.nodes):,} nodes"
    if layout.members:
        text += f" · {len(layout.members):,} scopes collapsed"
    if workspace.active_overlay:
        text += f" · colour: {workspace.active_overlay}"
        overlay = workspace.overlays.get(workspace.active_overlay)
        if overlay is not None:  # what the colours' numbers are (measured, emulated, estimated)
            text += f" ({', '.join(x for x in (overlay.kind, overlay.source) if x)})"
    if columns > 1:
        text += f" · in {columns} columns, top to bottom, left to right"
    return text + f" · {scale * 100:.0f}%"


def png_bytes(image: QImage) -> bytes:
    """``image`` encoded as PNG, in memory."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    ok = image.save(buffer, "PNG")
    buffer.close()
    if not ok:
        raise StudioError("the graph picture could not be encoded as PNG")
    return bytes(data.data())


def render_graph_png(workspace: Any, width: int = 1600, height: int = 1000) -> bytes:
    """PNG bytes of ``render_graph_image`` (what the report embeds and the export writes)."""
    return png_bytes(render_graph_image(workspace, width, height))


def save_graph_png(workspace: Any, path: str | Path, width: int = 1600, height: int = 1000) -> Path:
    """Write the picture to ``path`` atomically; returns the path."""
    atomic_write_bytes(path, render_graph_png(workspace, width, height))
    return Path(path)


def ask_and_save_png(workspace: Any) -> Path | None:
    """The "Export graph as PNG…" action: ask for a file, write the picture, say where or why not."""
    from PySide6.QtWidgets import QFileDialog

    ctx = workspace.ctx
    if workspace.layout_data is None:
        ctx.show_error("Export graph as PNG", "Open a model first: there is no graph to export.")
        return None
    stem = Path(str(getattr(workspace.graph, "path", "") or "graph")).stem
    path, _ = QFileDialog.getSaveFileName(
        workspace, "Export graph as PNG", f"{stem}_graph.png", "PNG image (*.png)"
    )
    if not path:
        return None
    try:
        written = save_graph_png(workspace, path)
    except (StudioError, OSError) as exc:
        ctx.show_error("Export graph as PNG", f"{path}: {exc}")
        return None
    ctx.status_message.emit(f"Graph exported to {written}")
    return written
