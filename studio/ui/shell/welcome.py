"""The welcome page: what a first start shows instead of empty workspaces.

Open a model, open the demo, reopen a recent file, get back work a crash left behind, and the
five-step path (open -> quantise -> assign -> profile -> deploy), each one click away. It only
calls the window's own actions (``open_dialog``, ``open_path``, ``show_workspace_key``) so there
is one way to do each thing.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.core import project as proj
from studio.resources import demo_model_path

# (workspace key, button text, what the step does); "open" is the File > Open step
STEPS: tuple[tuple[str, str, str], ...] = (
    ("graph", "1 · Open", "Load an ONNX model and see its graph (or the demo)."),
    ("quant", "2 · Quantise", "Calibrate, choose bit widths, check per-layer SQNR."),
    ("backends", "3 · Assign", "Which of HTP, GPU and CPU runs each node, and why."),
    ("profiling", "4 · Profile", "Latency and per-layer cost, mapped back to the graph."),
    ("deploy", "5 · Deploy", "Compile a bundle for a device and run it there."),
)
PATH_ROLE = Qt.ItemDataRole.UserRole
KIND_ROLE = Qt.ItemDataRole.UserRole + 1


def recoverable_work(recent: list[str]) -> list[dict[str, Any]]:
    """Autosaves a crash left: untitled projects, and saved projects with newer autosaves."""
    found = []
    for path in proj.orphan_autosaves():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            model = Path(str((data.get("model") or {}).get("path", ""))).name
        except (OSError, ValueError, AttributeError):
            continue
        if data.get("autosave_of"):
            continue
        found.append(
            {
                "kind": "orphan",
                "path": str(path),
                "title": f"{model} (untitled project)",
                "when": path.stat().st_mtime,
            }
        )
    for item in recent:
        if item.endswith(proj.PROJECT_SUFFIX) and os.path.exists(item):
            recovery = proj.find_recovery(item)
            if recovery is not None:
                found.append(
                    {
                        "kind": "project",
                        "path": item,
                        "title": Path(item).name,
                        "when": recovery.stat().st_mtime,
                    }
                )
    return sorted(found, key=lambda r: r["when"], reverse=True)


class WelcomePage(QWidget):
    """Start here: open, demo, recent, recoverable work and the five steps."""

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePage")
        self.window = window
        title = QLabel("<h1>npu-studio</h1>", self)
        tagline = QLabel(
            "Take an ONNX model to a Qualcomm NPU (QNN HTP) and see why it is fast or slow, "
            "accurate or not.",
            self,
        )
        tagline.setWordWrap(True)
        self.open_button = QPushButton("Open a model…", self)
        self.open_button.setObjectName("welcomeOpen")
        self.open_button.clicked.connect(window.open_dialog)
        self.demo_button = QPushButton("Open the demo model", self)
        self.demo_button.setObjectName("welcomeDemo")
        self.demo_button.setToolTip(str(demo_model_path()))
        self.demo_button.clicked.connect(self.open_demo)
        self.demo_button.setEnabled(demo_model_path().is_file())
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.demo_button)
        top.addStretch(1)

        steps = QFrame(self)
        steps.setObjectName("welcomeSteps")
        grid = QGridLayout(steps)
        self.step_buttons: dict[str, QPushButton] = {}
        for column, (key, text, what) in enumerate(STEPS):
            button = QPushButton(text, steps)
            button.setObjectName(f"welcomeStep_{key}")
            button.setMinimumHeight(36)
            button.clicked.connect(lambda _c=False, k=key: self.go(k))
            label = QLabel(what, steps)
            label.setWordWrap(True)
            label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(button, 0, column)
            grid.addWidget(label, 1, column)
            self.step_buttons[key] = button

        self.recent_list = QListWidget(self)
        self.recent_list.setObjectName("welcomeRecent")
        self.recent_list.itemActivated.connect(self._open_item)
        self.recent_list.itemClicked.connect(self._open_item)
        self.recovery_list = QListWidget(self)
        self.recovery_list.setObjectName("welcomeRecovery")
        self.recovery_list.itemActivated.connect(self._open_item)
        self.recovery_list.itemClicked.connect(self._open_item)
        lists = QHBoxLayout()
        for heading, widget in (
            ("Recent", self.recent_list),
            ("Recoverable work", self.recovery_list),
        ):
            col = QVBoxLayout()
            col.addWidget(QLabel(f"<b>{heading}</b>", self))
            col.addWidget(widget)
            lists.addLayout(col)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(48, 32, 48, 32)
        layout.addWidget(title)
        layout.addWidget(tagline)
        layout.addSpacing(8)
        layout.addLayout(top)
        layout.addSpacing(16)
        layout.addWidget(QLabel("<b>The path, one click each</b>", self))
        layout.addWidget(steps)
        layout.addSpacing(16)
        layout.addLayout(lists, 1)
        window.recent.changed.connect(self.refresh)
        self.refresh()

    # ----- actions ------------------------------------------------------------------------
    def open_demo(self) -> None:
        self.window.open_path(str(demo_model_path()))

    def go(self, key: str) -> None:
        """Step ``key``: Open asks for a model; later steps open the demo first if none is open."""
        if key == "graph" and self.window.ctx.graph is None:
            self.window.open_dialog()
            return
        if self.window.ctx.project is None and demo_model_path().is_file():
            self.open_demo()
        self.window.show_workspace_key(key)

    def _open_item(self, item: QListWidgetItem) -> None:
        path, kind = item.data(PATH_ROLE), item.data(KIND_ROLE)
        if not path:
            return
        if kind == "orphan":
            self.window.projects.restore_autosave(path)
        else:
            self.window.open_path(path)

    # ----- content ------------------------------------------------------------------------
    def refresh(self) -> None:
        for key, button in self.step_buttons.items():
            available = key in self.window.workspaces
            button.setEnabled(available)
            button.setToolTip("" if available else "This workspace is not in this build yet.")
        recent = self.window.recent.files()
        self.recent_list.clear()
        for path in recent:
            item = QListWidgetItem(f"{Path(path).name}   —   {path}", self.recent_list)
            item.setData(PATH_ROLE, path)
            item.setData(KIND_ROLE, "recent")
            if not os.path.exists(path):
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
        if not recent:
            QListWidgetItem("Nothing opened yet.", self.recent_list).setFlags(
                Qt.ItemFlag.NoItemFlags
            )
        self.recovery_list.clear()
        work = recoverable_work(recent)
        for entry in work:
            when = datetime.datetime.fromtimestamp(entry["when"]).strftime("%Y-%m-%d %H:%M")
            item = QListWidgetItem(f"{entry['title']}   —   autosaved {when}", self.recovery_list)
            item.setData(PATH_ROLE, entry["path"])
            item.setData(KIND_ROLE, entry["kind"])
        if not work:
            QListWidgetItem("No unsaved work to recover.", self.recovery_list).setFlags(
                Qt.ItemFlag.NoItemFlags
            )

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        self.refresh()
