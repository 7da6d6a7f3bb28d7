"""Key figures of the current run as a row of cards, plus the notes that qualify them.

The notes matter as much as the numbers: on an x86-64 host the HTP backend is a simulator, so the
panel always says that its cycle counts are the simulator's and its wall times are this host's.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from studio.core.profiling.records import ProfileRun
from studio.ui.profiling import view_data as vd
from studio.ui.widgets.theme import COLORS

SIM_NOTE = "cycle counts are the simulator's, wall times are this host's"

CARD_QSS = f"""
QFrame#profCard {{ background: {COLORS["panel"]}; border: 1px solid {COLORS["border"]};
                   border-radius: 6px; }}
QLabel#profCardTitle {{ color: {COLORS["muted"]}; }}
QLabel#profCardValue {{ color: {COLORS["text"]}; font-weight: 600; }}
QLabel#profCardSub {{ color: {COLORS["muted"]}; }}
"""


class FigureCard(QFrame):
    """One figure: a caption, a large value and a small qualifier."""

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("profCard")
        self.title = QLabel(title.upper(), self)
        self.title.setObjectName("profCardTitle")
        self.value = QLabel("—", self)
        self.value.setObjectName("profCardValue")
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sub = QLabel("", self)
        self.sub.setObjectName("profCardSub")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.setSpacing(1)
        layout.addWidget(self.title)
        layout.addWidget(self.value)
        layout.addWidget(self.sub)
        self.set_scale(1.0)

    def set(self, value: str, sub: str = "", tip: str = "") -> None:
        self.value.setText(value)
        self.sub.setText(sub)
        self.setToolTip(tip)

    def set_scale(self, scale: float) -> None:
        self.title.setStyleSheet(f"font-size: {7.5 * scale:.1f}pt; letter-spacing: 1px;")
        self.value.setStyleSheet(f"font-size: {14 * scale:.1f}pt;")
        self.sub.setStyleSheet(f"font-size: {8 * scale:.1f}pt;")


class KeyFiguresPanel(QWidget):
    """p50/p95/p99, mean±std, throughput, CPU, memory, set-up times and the run's notes."""

    KEYS = (
        ("device", "On device (estimated)"),
        ("p50", "p50"),
        ("p95", "p95"),
        ("p99", "p99"),
        ("mean", "Mean ± std"),
        ("throughput", "Throughput"),
        ("cpu", "CPU"),
        ("rss", "Peak RSS"),
        ("setup", "Set-up"),
    )

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setStyleSheet(CARD_QSS)
        self.cards: dict[str, FigureCard] = {}
        self.grid = QGridLayout()
        self.grid.setSpacing(8)
        for i, (key, title) in enumerate(self.KEYS):
            card = FigureCard(title, self)
            self.cards[key] = card
            self.grid.addWidget(card, 0, i)
        self.note = QLabel("", self)
        self.note.setObjectName("profilingNote")
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note.setStyleSheet(f"color: {COLORS['warning']};")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addLayout(self.grid)
        layout.addWidget(self.note)
        self.clear()

    def clear(self) -> None:
        for card in self.cards.values():
            card.set("—")
        self.note.setText(
            "No run yet: open a model (or pick an ONNX file), choose a backend, press Start."
        )

    def set_presentation(self, on: bool) -> None:
        """Large type for demos: the cards wrap onto rows of three and grow."""
        scale = 2.0 if on else 1.0
        for card in self.cards.values():
            card.set_scale(scale)
        self.note.setStyleSheet(f"color: {COLORS['warning']}; font-size: {13 if on else 9}pt;")
        cols = 4 if on else len(self.KEYS)
        for i, (key, _) in enumerate(self.KEYS):
            self.grid.addWidget(self.cards[key], i // cols, i % cols)

    def show_run(self, run: ProfileRun) -> None:
        s = run.stats
        c = self.cards
        lead = run.device_lead()
        if lead:  # a simulated or host-CPU run leads with the target device's figure
            c["device"].set(vd.fmt_ms(lead[0]), lead[1], lead[2])
        else:
            c["device"].set("—", "no estimate", "only simulated HTP and host CPU runs carry one")
        where = "emulated, median" if run.is_emulated() else "median"
        c["p50"].set(vd.fmt_ms(s.p50_ms), where, run.latency_measure())
        c["p95"].set(vd.fmt_ms(s.p95_ms), f"min {vd.fmt_ms(s.min_ms)}")
        c["p99"].set(vd.fmt_ms(s.p99_ms), f"max {vd.fmt_ms(s.max_ms)}")
        c["mean"].set(vd.fmt_ms(s.mean_ms), f"± {vd.fmt_ms(s.std_ms)}")
        c["throughput"].set(
            f"{s.throughput_ips:,.1f} /s",
            f"{s.count} runs in {vd.fmt_ms(s.wall_s * 1000.0)}",
            "runs divided by the wall time of the whole measured loop",
        )
        res = run.resources or {}
        cpu = res.get("cpu_percent")
        ncpu = res.get("logical_cpus")
        c["cpu"].set(
            f"{cpu:.0f} %" if cpu is not None else "—",
            "100 % = one core",
            f"process CPU time / wall time over the loop; {ncpu} logical CPUs" if ncpu else "",
        )
        peak = res.get("peak_rss_mb") or res.get("rss_max_mb")
        delta = (run.setup or {}).get("rss_session_delta_mb")
        c["rss"].set(
            f"{peak:.0f} MB" if peak is not None else "—",
            f"session +{delta:.0f} MB" if delta is not None else "",
            "peak resident memory of the worker process that ran the profile",
        )
        setup = vd.setup_figures(run)
        named = dict(setup)
        load = named.get("Model load")
        c["setup"].set(
            named.get("Session creation", "—"),
            f"model load {load}" if load else "",
            "\n".join(f"{k}: {v}" for k, v in setup),
        )
        self.note.setText(self.notes_text(run))
        self.show_notes_tooltip(run)

    @staticmethod
    def notes_text(run: ProfileRun) -> str:
        """The qualifiers a reader must see next to the numbers (all notes are in the tooltip)."""
        lines = []
        simulated = any("simulat" in n.lower() for n in run.notes)
        if run.backend == "htp" and (simulated or run.host.get("machine") in ("x86_64", "AMD64")):
            lines.append(f"⚠ HTP simulated on x86-64: {SIM_NOTE}.")
        lines += [n for n in run.notes if "ran on the CPU EP" in n or n.startswith("warning")]
        providers = ", ".join(run.providers)
        if providers:
            lines.append(f"{run.backend.upper()} · providers: {providers}")
        return "   ".join(lines)

    def show_notes_tooltip(self, run: ProfileRun) -> None:
        parts = list(run.notes)
        if run.layer_source:
            parts.append(f"Per-layer figures: {run.layer_source}")
        self.note.setToolTip("\n".join(f"• {p}" for p in parts))
