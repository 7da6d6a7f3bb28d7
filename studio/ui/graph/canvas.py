"""The drawing area: the graph view with its floating minimap, legend and status chips.

Floating widgets are children of the view, placed by hand on every resize, so they stay in their
corners and never take space from the graph.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.ui.graph.minimap import Minimap
from studio.ui.graph.overlay import LegendWidget
from studio.ui.graph.scene import GraphScene
from studio.ui.graph.view import GraphView

MARGIN = 12


class GraphCanvas(QWidget):
    """View + minimap (top right) + legend (bottom left) + empty/busy message (centre)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.scene = GraphScene(self)
        self.view = GraphView(self.scene, self)
        self.minimap = Minimap(self.view, self.view)
        self.legend = LegendWidget(self.view)
        self.message = QLabel(self.view)
        self.message.setObjectName("graphMessage")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.info = QLabel(self.view)
        self.info.setObjectName("graphInfo")
        self.info.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.view.installEventFilter(self)
        self.view.view_changed.connect(self._update_info)
        self.set_message(
            "Open an ONNX model to see its graph\n\n"
            "File ▸ Open (Ctrl+O), or drop a .onnx file on the window"
        )
        self.minimap.hide()

    def set_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self._place()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if watched is self.view and event.type() == QEvent.Type.Resize:
            self._place()
        return False

    def _update_info(self) -> None:
        layout = self.scene.layout
        if layout is None:
            self.info.hide()
            return
        nodes = len(self.scene.graph.nodes) if self.scene.graph is not None else 0
        text = f"{nodes:,} nodes"
        if layout.members:
            text += f" · {len(layout.members):,} scopes collapsed"
        if getattr(self.scene.graph, "shapes_pending", False):
            text += " · inferring shapes…"
        text += f" · {self.view.scale_factor * 100:.0f}%"
        self.info.setText(text)
        self.info.adjustSize()
        self.info.show()
        self._place()

    def _place(self) -> None:
        vp = self.view.viewport().geometry()
        w, h = vp.width(), vp.height()
        self.minimap.move(vp.left() + w - self.minimap.width() - MARGIN, vp.top() + MARGIN)
        self.legend.move(vp.left() + MARGIN, vp.top() + h - self.legend.height() - MARGIN)
        self.info.move(
            vp.left() + w - self.info.width() - MARGIN, vp.top() + h - self.info.height() - MARGIN
        )
        self.message.setGeometry(vp.left() + 40, vp.top() + 40, max(10, w - 80), max(10, h - 80))
