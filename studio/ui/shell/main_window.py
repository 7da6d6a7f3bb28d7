"""The main window: one tab per workspace, Jobs and History docks, menus, status bar.

What lives where: menus and actions in ``main_menus``, project rules in ``project_controller``,
workspace pages from the ``workspaces`` list (imported directly). This class
wires them: models load off the UI thread (a ``Background``), their errors become dialogs, and the
window never shows a traceback unless the user asks for details.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QStackedWidget,
    QTabWidget,
    QWidget,
)

from studio.core.project import PROJECT_SUFFIX
from studio.ui.jobs.background import Background
from studio.ui.jobs.dock import JobsDock
from studio.ui.jobs.manager import JobManager
from studio.ui.shell import dialogs
from studio.ui.shell.context import StudioContext
from studio.ui.shell.history import HistoryView
from studio.ui.shell.menus import MainMenus
from studio.ui.shell.model_loader import (
    complete_model_graph,
    load_model_structure,
    start_for_file,
)
from studio.ui.shell.project_controller import MODEL_FILTER, ProjectController
from studio.ui.shell.recent import RecentFiles
from studio.ui.shell.view_state import ProjectViewState
from studio.ui.shell.workspaces import WORKSPACES, create_workspace
from studio.ui.widgets.backend_panel import BackendPanel

log = logging.getLogger(__name__)
UI_SWITCH_INTERVAL_S = 0.001  # see MainWindow.__init__

OPENABLE = (".onnx", PROJECT_SUFFIX, ".pt", ".pt2", ".tflite")  # the last three: imported
# first-run height of the bottom dock area (Jobs | History | Backends): a few job rows beside
# the selected job's log; a user's own height is kept by saveState/restoreState
DOCK_HEIGHT = 150
DOCK_MIN_HEIGHT = 60  # a dock's contents may be squeezed this low; they scroll or clip below
# a previewed model's shapes are inferred once the Graph workspace drew it, or after this long
COMPLETE_AFTER_MS = 3000


# Native modules that jobs import lazily on a background thread: importing one there holds the
# GIL (its C initialisation) for a few hundred ms and freezes the window, so import them at
# start-up instead.
WARM_IMPORTS = (
    "onnx.shape_inference",
    "onnxruntime",
    "igraph",
    "studio.core.model.graph",
    "studio.core.model.layout",
    "studio.core.calibration",
    "studio.core.assignment.support",
    "studio.core.importers.convert",  # open_path asks it whether a file is importable
    "studio.core.devices.estimate",  # the Profiling workspace's estimate card on a new model
)


def _warm_imports() -> None:
    for module in WARM_IMPORTS:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a missing extra only costs a later import
            log.info("warm import of %s failed: %s", module, exc)


class MainWindow(QMainWindow):
    """The studio window. ``settings`` lets tests use a temporary QSettings."""

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        _warm_imports()
        # Background threads of this process (model loading, assignment, result decoding) run
        # Python; each time the UI thread hands the GIL over (every Qt call) it waits up to one
        # switch interval to get it back. 1 ms instead of Python's 5 ms keeps a busy thread from
        # stretching a frame's many short waits into a visible stall.
        sys.setswitchinterval(UI_SWITCH_INTERVAL_S)
        self.setObjectName("mainWindow")
        self.setWindowTitle("npu-studio")
        self.resize(1440, 900)
        self.setAcceptDrops(True)
        self._closed = False
        self.settings = settings if settings is not None else QSettings()
        from studio.ui.shell.importing import Importer

        self.importer = Importer(self)
        self.ctx = StudioContext(self)
        self.recent = RecentFiles(self.settings, self)
        self.loader = Background(self)
        self.loader.started.connect(lambda _path: self._on_busy(True))
        self.loader.finished.connect(lambda _state: self._on_busy(self.loader.busy))
        self.projects = ProjectController(self.ctx, self, self.load_model)
        self.projects.title_changed.connect(self.setWindowTitle)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("workspaceTabs")
        self.tabs.setDocumentMode(True)
        self.workspaces: dict[str, QWidget] = {}
        for spec in WORKSPACES:
            page = create_workspace(spec, self.ctx, self.tabs)
            self.workspaces[spec.key] = page
            self.tabs.addTab(page, spec.title)
        self._completing: tuple[str, Any] | None = None  # a previewed model, shapes not started
        if hasattr(self.workspaces.get("graph"), "drawn"):
            self.workspaces["graph"].drawn.connect(self._on_graph_drawn)
        # The welcome page until a model is opened (View > Welcome page brings it back).
        from studio.ui.shell.welcome import WelcomePage

        self.central = QStackedWidget(self)
        self.welcome = WelcomePage(self, self.central)
        self.central.addWidget(self.welcome)
        self.central.addWidget(self.tabs)
        self.setCentralWidget(self.central)
        # After the workspaces, so it restores overlays once they have reacted to a new model.
        self.view_state = ProjectViewState(self)
        self.projects.before_save.append(self.view_state.capture_ui)

        self._build_docks()
        self._build_status_bar()
        self.menus = MainMenus(self)
        self.ctx.status_message.connect(lambda text: self.statusBar().showMessage(text, 6000))
        self.ctx.error_raised.connect(lambda t, m: dialogs.show_error(self, t, m))
        self._restore_state()

    # ----- construction -----------------------------------------------------------------------
    def _build_docks(self) -> None:
        self.ctx.jobs = JobManager(self)
        self.jobs_dock = self._dock(
            "Jobs", "jobsDock", JobsDock(self.ctx.jobs), Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.history_dock = self._dock(
            "History",
            "historyDock",
            HistoryView(self.ctx, self),
            Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.tabifyDockWidget(self.jobs_dock, self.history_dock)
        self.jobs_dock.raise_()
        self.backend_dock = self._dock(
            "Backends available",
            "backendDock",
            BackendPanel(),
            Qt.DockWidgetArea.BottomDockWidgetArea,
        )
        self.tabifyDockWidget(self.history_dock, self.backend_dock)
        self.jobs_dock.raise_()

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        # An explicit minimum replaces the contents' size hint: without it the bottom dock area
        # grew whenever a panel gained a row or a note (a probe's result, a new job), which
        # shrank the workspace above and re-laid out and repainted every plot in it at once.
        widget.setMinimumHeight(DOCK_MIN_HEIGHT)
        dock.setWidget(widget)
        dock.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
        self.addDockWidget(area, dock)
        return dock

    def docks(self) -> list[QDockWidget]:
        return [d for d in (self.jobs_dock, self.history_dock, self.backend_dock) if d is not None]

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy = QProgressBar(self)
        self.busy.setObjectName("busyIndicator")
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(140)
        self.busy.setMaximumHeight(14)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.model_label = QLabel("No model", self)
        self.model_label.setObjectName("modelLabel")
        bar.addPermanentWidget(self.busy)
        from studio.ui.shell.target import TargetSelector

        self.target = TargetSelector(self.ctx, self.projects, self)
        bar.addPermanentWidget(self.target)
        bar.addPermanentWidget(self.model_label)
        bar.showMessage("Open an ONNX model with File ▸ Open (Ctrl+O) or drop it here")

    def workspace_titles(self) -> list[str]:
        return [spec.title for spec in WORKSPACES]

    def show_workspace(self, index: int) -> None:
        if 0 <= index < self.tabs.count():
            self.central.setCurrentWidget(self.tabs)
            self.tabs.setCurrentIndex(index)

    def show_workspace_key(self, key: str) -> None:
        """Show the workspace registered as ``key`` (e.g. ``"quant"``)."""
        page = self.workspaces.get(key)
        if page is not None:
            self.show_workspace(self.tabs.indexOf(page))

    def show_welcome(self) -> None:
        self.central.setCurrentWidget(self.welcome)

    # ----- opening ----------------------------------------------------------------------------
    def open_dialog(self) -> None:
        start = os.path.dirname(self.recent.files()[0]) if self.recent.files() else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open model or project", start, MODEL_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        """Open a model (.onnx, or anything else we try as ONNX) or a project file."""
        if not os.path.exists(path):
            self.recent.remove(path)
            dialogs.show_error(self, "Cannot open", f"{path}: the file does not exist")
            return
        if path.endswith(PROJECT_SUFFIX):
            if self.projects.confirm_close() and self.projects.open_project_file(path):
                self.recent.add(path)
                self.importer.maybe_reimport(self.projects.project)
            return
        from studio.core.importers.convert import is_importable

        if is_importable(path) and self.ctx.jobs is not None:
            if self.projects.confirm_close():
                self.importer.start(path)
            return
        if self.projects.confirm_close():
            self.projects.open_model_file(path)

    def load_model(self, path: str, input_shapes: dict[str, list[int]] | None = None) -> None:
        """Parse and analyse the model on the loader's thread; the window stays responsive."""
        self.statusBar().showMessage(f"Loading {Path(path).name}…")
        self.central.setCurrentWidget(self.tabs)
        self._completing = None
        start_for_file(
            self.loader,
            path,
            lambda: load_model_structure(path, input_shapes or None),
            self._on_structure_loaded,
            self._on_model_failed,
        )

    def _on_structure_loaded(self, path: str, graph: Any) -> None:
        """Draw the graph now; infer its shapes once it is on screen (they compete for the CPU)."""
        if self._closed:
            return  # a load that finished while the window closed
        if not getattr(graph, "shapes_pending", False):
            self._on_model_loaded(path, graph)
            return
        self._completing = (path, graph)
        self.ctx.preview_model(graph)
        # normally started by the Graph workspace's drawn signal; this if the layout fails
        QTimer.singleShot(COMPLETE_AFTER_MS, self, lambda: self._complete_model(graph))

    def _on_graph_drawn(self) -> None:
        if self._completing is not None:
            self._complete_model(self._completing[1])

    def _complete_model(self, graph: Any) -> None:
        pending, self._completing = self._completing, None
        if pending is None or pending[1] is not graph or self._closed:
            return  # started already, or another model was opened since
        path = pending[0]
        self.statusBar().showMessage(f"Inferring shapes of {Path(path).name}…")
        start_for_file(
            self.loader,
            path,
            lambda: complete_model_graph(graph),
            self._on_model_loaded,
            self._on_preview_failed,
        )

    def _on_preview_failed(self, path: str, message: str, details: str) -> None:
        if self._closed:
            return
        graph_ws = self.workspaces.get("graph")
        if graph_ws is not None and hasattr(graph_ws, "drop_preview"):
            graph_ws.drop_preview()  # back to the model the window has
        self._on_model_failed(path, message, details)

    def _on_model_loaded(self, path: str, graph: Any) -> None:
        if self._closed:
            return  # the second stage ended after the window closed: nobody to show it to
        project = self.ctx.project
        if project is not None and not project.model_sha256 and hasattr(graph, "sha256"):
            if Path(project.model_path) == Path(path).resolve():
                project.model_sha256 = graph.sha256()  # hashed on the loader's thread
        self.recent.add(path)
        self.ctx.set_model(graph, path)
        nodes = len(graph.nodes)
        self.model_label.setText(f"{graph.name} · {nodes:,} nodes · opset {graph.opset}")
        self.statusBar().showMessage(f"Opened {path}", 6000)

    def _on_model_failed(self, path: str, message: str, details: str) -> None:
        self.statusBar().showMessage(f"Could not open {Path(path).name}", 6000)
        dialogs.show_error(self, "Cannot open model", message, details)

    def _on_busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)

    # ----- drag and drop ----------------------------------------------------------------------
    @staticmethod
    def _dropped_path(event: Any) -> str:
        mime = event.mimeData()
        if not mime.hasUrls():
            return ""
        for url in mime.urls():
            path = url.toLocalFile()
            if path and path.lower().endswith(OPENABLE):
                return path
        return ""

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if self._dropped_path(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        path = self._dropped_path(event)
        if path:
            event.acceptProposedAction()
            self.open_path(path)

    # ----- state and closing ------------------------------------------------------------------
    def _restore_state(self) -> None:
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._state_restored = state is not None and bool(self.restoreState(state))

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._state_restored:  # first run: keep the docks low, the graph gets the room
            self._state_restored = True
            self.resizeDocks(
                self.docks(), [DOCK_HEIGHT] * len(self.docks()), Qt.Orientation.Vertical
            )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self._closed:  # Qt may send a second close event to a closed window
            event.accept()
            return
        if not self.projects.confirm_close():
            event.ignore()
            return
        jobs = self.ctx.jobs
        running = jobs.running() if jobs is not None and hasattr(jobs, "running") else []
        if running and not dialogs.ask_stop_jobs(self, len(running)):
            event.ignore()
            return
        if jobs is not None and hasattr(jobs, "shutdown"):
            jobs.shutdown()
        for page in self.workspaces.values():
            shutdown = getattr(page, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:  # noqa: BLE001 - closing must always succeed
                    log.exception("workspace shutdown failed")
        self._completing = None  # no second stage starts for a closing window
        self.loader.wait(5000)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self._closed = True
        event.accept()
