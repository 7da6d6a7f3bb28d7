"""Bottlenecks found in the current run (core ``suggest``), each naming its node(s).

The panel only lays the core's suggestions out as cards: a kind badge, the title, the grounded
text, and the evidence numbers as a tooltip. Clicking a card that names a node selects that node
everywhere (graph, chart, table).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QScrollArea, QVBoxLayout, QWidget

from studio.ui.widgets.theme import COLORS

CARDS_PER_STEP = 3  # suggestion cards built per event-loop turn

_KIND = {
    "hotspot": ("HOTSPOT", COLORS["accent"]),
    "depthwise": ("STRUCTURE", "#c792ea"),
    "bits16": ("16-BIT", "#89ddff"),
    "cpu_fallback": ("CPU FALLBACK", COLORS["error"]),
    "layout": ("LAYOUT", COLORS["warning"]),
    "io_quant": ("I/O QUANT", COLORS["warning"]),
    "cycles_per_mac": ("EFFICIENCY", COLORS["ok"]),
}

CARD_QSS = f"""
QFrame#suggestionCard {{ background: {COLORS["panel"]}; border: 1px solid {COLORS["border"]};
                         border-radius: 5px; }}
QFrame#suggestionCard:hover {{ border-color: {COLORS["accent"]}; }}
"""


class SuggestionCard(QFrame):
    clicked = Signal(str)

    def __init__(self, suggestion: Any, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("suggestionCard")
        self.suggestion = suggestion
        self.node = suggestion.nodes[0] if suggestion.nodes else ""
        label, colour = _KIND.get(suggestion.kind, (suggestion.kind.upper(), COLORS["muted"]))
        share = f" · {suggestion.impact * 100:.1f}%" if suggestion.impact else ""
        text = (
            f"<span style='color:{colour}; font-size:7.5pt; font-weight:700'>{label}</span>"
            f"<span style='color:{COLORS['muted']}; font-size:7.5pt'>{share}</span><br>"
            f"<b>{html.escape(suggestion.title)}</b><br>"
            f"<span style='color:{COLORS['muted']}'>{html.escape(suggestion.text)}</span>"
        )
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.label)
        evidence = json.dumps(suggestion.evidence, indent=1, default=str)
        self.setToolTip(f"nodes: {', '.join(suggestion.nodes[:10])}\nevidence:\n{evidence}")
        if self.node:
            self.setCursor(Qt.CursorShape.PointingHandCursor)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        # A wrapped QLabel in a scroll area does not ask for the height its text needs.
        super().resizeEvent(event)
        if event.size().width() == event.oldSize().width():
            return  # the wrapped height depends on the width only (laying out rich text is slow)
        needed = self.label.heightForWidth(self.label.width())
        if needed > 0 and needed != self.label.minimumHeight():
            self.label.setMinimumHeight(needed)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton and self.node:
            self.clicked.emit(self.node)
        super().mouseReleaseEvent(event)


class SuggestionsPanel(QWidget):
    node_activated = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setStyleSheet(CARD_QSS)
        self.cards: list[SuggestionCard] = []
        self.body = QWidget(self)
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.setContentsMargins(0, 0, 4, 0)
        self.body_layout.setSpacing(6)
        self.body_layout.addStretch(1)
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setWidget(self.body)
        self.info = QLabel("", self)
        self.info.setObjectName("profilingMuted")
        self.info.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("<b>Suggestions</b>", self))
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.info)
        self.info.setText("Bottlenecks of the shown run appear here, each naming its nodes.")

    def set_suggestions(self, suggestions: list[Any], error: str = "") -> None:
        """Replace the cards at once (see ``card_steps`` for the same over several turns)."""
        for step in self.card_steps(suggestions, error):
            step()

    def card_steps(self, suggestions: list[Any], error: str = "") -> list[Callable[[], None]]:
        """Replacing the cards as steps of a few cards each (``widgets.turns.TurnSteps``).

        Each card lays out rich text; ten of them took ~90 ms of one UI-thread turn on a busy
        host, so the dashboard builds them a few per turn.
        """
        ordered = sorted(suggestions, key=lambda s: s.impact, reverse=True)
        steps: list[Callable[[], None]] = [self._clear_cards]
        for start in range(0, len(ordered), CARDS_PER_STEP):
            chunk = ordered[start : start + CARDS_PER_STEP]
            steps.append(lambda chunk=chunk: self._add_cards(chunk))
        steps.append(lambda: self._set_info(error))
        # A newer set of cards (the model's structure arriving while a run is still being shown)
        # makes the older steps still queued do nothing, or they would put the old cards back.
        self._generation = getattr(self, "_generation", 0) + 1
        generation = self._generation

        def current(step: Callable[[], None]) -> Callable[[], None]:
            return lambda: step() if generation == self._generation else None

        return [current(step) for step in steps]

    def _clear_cards(self) -> None:
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards = []

    def _add_cards(self, suggestions: list[Any]) -> None:
        for s in suggestions:
            card = SuggestionCard(s, self.body)
            card.clicked.connect(self.node_activated)
            self.body_layout.insertWidget(self.body_layout.count() - 1, card)
            card.show()
            self.cards.append(card)

    def _set_info(self, error: str) -> None:
        if error:
            self.info.setText(error)
        elif not self.cards:
            self.info.setText("Nothing stands out in this run.")
        else:
            self.info.setText("Click a suggestion to select its node; hover for the evidence.")
