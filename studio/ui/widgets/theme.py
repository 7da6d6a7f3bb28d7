"""Apply the studio's dark-neutral look: Fusion style, a matching palette, then theme.qss.

The palette covers what the style sheet does not reach (native-drawn parts, pyqtgraph and
QGraphicsView backgrounds read it); the QSS refines tabs, docks, tables and buttons. The QSS lives
in ``resources/theme.qss`` beside the package; if it cannot be found the palette alone still gives
a consistent dark window.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

QSS_PATH = Path(__file__).resolve().parents[3] / "resources" / "theme.qss"

# Colours shared with widgets that paint themselves (graph scene, plots).
COLORS = {
    "window": "#1e2024",
    "base": "#17191c",
    "alt_base": "#202328",
    "panel": "#25282d",
    "border": "#33373e",
    "text": "#d8dbe0",
    "muted": "#8b919a",
    "accent": "#4c9bff",
    "accent_text": "#ffffff",
    "error": "#f07178",
    "warning": "#e5b567",
    "ok": "#7ec699",
}


def palette() -> QPalette:
    c = {k: QColor(v) for k, v in COLORS.items()}
    pal = QPalette()
    role = QPalette.ColorRole
    pal.setColor(role.Window, c["window"])
    pal.setColor(role.WindowText, c["text"])
    pal.setColor(role.Base, c["base"])
    pal.setColor(role.AlternateBase, c["alt_base"])
    pal.setColor(role.ToolTipBase, c["panel"])
    pal.setColor(role.ToolTipText, c["text"])
    pal.setColor(role.PlaceholderText, c["muted"])
    pal.setColor(role.Text, c["text"])
    pal.setColor(role.Button, c["panel"])
    pal.setColor(role.ButtonText, c["text"])
    pal.setColor(role.BrightText, c["error"])
    pal.setColor(role.Link, c["accent"])
    pal.setColor(role.Highlight, c["accent"])
    pal.setColor(role.HighlightedText, c["accent_text"])
    pal.setColor(role.Light, QColor("#3a3f47"))
    pal.setColor(role.Midlight, QColor("#2d3137"))
    pal.setColor(role.Mid, QColor("#2a2d33"))
    pal.setColor(role.Dark, QColor("#131518"))
    pal.setColor(role.Shadow, QColor("#0b0c0e"))
    disabled = QPalette.ColorGroup.Disabled
    for r in (role.WindowText, role.Text, role.ButtonText):
        pal.setColor(disabled, r, QColor("#5d636c"))
    pal.setColor(disabled, role.Highlight, QColor("#3a3f47"))
    return pal


def load_qss(path: Path = QSS_PATH) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        log.warning("theme style sheet not found (%s); using the palette only", exc)
        return ""


def apply_theme(app: QApplication) -> None:
    """Style the whole application; call once, before the main window is created."""
    app.setStyle("Fusion")
    app.setPalette(palette())
    font = QFont(app.font())
    font.setFamilies(["Inter", "Segoe UI", "Noto Sans", "Cantarell", "DejaVu Sans"])
    font.setPointSizeF(9.5)
    app.setFont(font)
    app.setStyleSheet(load_qss())
