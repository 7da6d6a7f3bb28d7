"""The workspace registry: which page each main-window tab shows, imported by module path.

Workspaces are written by different people and land at different times. The main window must open
whatever state the tree is in, so each workspace is imported lazily: a module that is not there yet
becomes a placeholder page saying what is coming, and a module that fails to import (or whose
constructor raises) becomes a page showing the real error text. A broken workspace never hides
its error and never takes the window down with it.
"""

from __future__ import annotations

import importlib
import logging
import traceback
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkspaceSpec:
    """Where a workspace class lives and what to say while it is not available."""

    key: str
    title: str
    module: str
    class_name: str
    coming: str


WORKSPACES: tuple[WorkspaceSpec, ...] = (
    WorkspaceSpec(
        "graph",
        "Graph",
        "studio.ui.graph.workspace",
        "GraphWorkspace",
        "The model drawn natively: layered layout, search, node properties, scope collapse, "
        "overlays and a Netron tab.",
    ),
    WorkspaceSpec(
        "quant",
        "Quantization",
        "studio.ui.quant.workspace",
        "QuantizationWorkspace",
        "Calibration, per-tensor encodings and bit widths, histograms, per-layer SQNR and "
        "encodings import/export.",
    ),
    WorkspaceSpec(
        "backends",
        "Backends",
        "studio.ui.backends.workspace",
        "BackendsWorkspace",
        "Which backend (HTP, GPU, CPU) can run each node, per-node scores, pins and constraints.",
    ),
    WorkspaceSpec(
        "profiling",
        "Profiling",
        "studio.ui.profiling.workspace",
        "ProfilingWorkspace",
        "Measured latency on QNN HTP, per-layer cycles mapped back to the graph, run comparison "
        "and report export.",
    ),
    WorkspaceSpec(
        "deploy",
        "Deploy",
        "studio.ui.deploy.workspace",
        "DeployWorkspace",
        "Target device, backend_config.json, compile to a bundle, browse, run and profile it, "
        "here or on a phone over adb.",
    ),
)


class PlaceholderPage(QWidget):
    """Stands in for a workspace that is missing or broken; says which, and why."""

    def __init__(
        self, spec: WorkspaceSpec, *, error: str = "", broken: bool = False, parent=None
    ) -> None:
        super().__init__(parent)
        self.spec = spec
        self.error_text = error
        self.broken = broken
        self.setObjectName("placeholderPage")

        card = QFrame(self)
        card.setObjectName("placeholderCard")
        card.setMaximumWidth(640)
        title = QLabel(
            f"{spec.title} could not be loaded" if broken else f"{spec.title} is coming", card
        )
        title.setObjectName("placeholderTitle")
        body = QLabel(spec.coming, card)
        body.setObjectName("placeholderBody")
        body.setWordWrap(True)
        card_layout = QVBoxLayout(card)
        card_layout.setContentsMargins(28, 24, 28, 24)
        card_layout.setSpacing(10)
        card_layout.addWidget(title)
        card_layout.addWidget(body)
        if error:
            hint = QLabel(
                "This workspace failed while loading. The error:"
                if broken
                else f"Module {spec.module} is not installed yet:",
                card,
            )
            hint.setObjectName("placeholderHint")
            details = QPlainTextEdit(error, card)
            details.setObjectName("placeholderError")
            details.setReadOnly(True)
            details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            details.setMaximumHeight(220 if broken else 70)
            card_layout.addWidget(hint)
            card_layout.addWidget(details)

        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(card, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)


def _is_missing(exc: ImportError, module: str) -> bool:
    """True when the workspace module itself (or a parent package) is absent, not a dependency."""
    name = getattr(exc, "name", None) or ""
    return isinstance(exc, ModuleNotFoundError) and bool(name) and module.startswith(name)


def create_workspace(spec: WorkspaceSpec, ctx, parent: QWidget | None = None) -> QWidget:
    """Build the workspace for ``spec``, or a placeholder page carrying the import error."""
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        text = traceback.format_exc()
        if _is_missing(exc, spec.module):
            log.info("workspace %s not available: %s", spec.key, exc)
            return PlaceholderPage(spec, error=f"{type(exc).__name__}: {exc}", parent=parent)
        log.error("workspace %s failed to import:\n%s", spec.key, text)
        return PlaceholderPage(spec, error=text, broken=True, parent=parent)
    except Exception:  # noqa: BLE001 - a broken module must not take the window down
        text = traceback.format_exc()
        log.error("workspace %s failed to import:\n%s", spec.key, text)
        return PlaceholderPage(spec, error=text, broken=True, parent=parent)
    cls = getattr(module, spec.class_name, None)
    if cls is None:
        text = f"{spec.module} has no class {spec.class_name}"
        log.error("workspace %s: %s", spec.key, text)
        return PlaceholderPage(spec, error=text, broken=True, parent=parent)
    try:
        return cls(ctx, parent)
    except Exception:  # noqa: BLE001 - show the constructor's error instead of crashing
        text = traceback.format_exc()
        log.error("workspace %s failed to start:\n%s", spec.key, text)
        return PlaceholderPage(spec, error=text, broken=True, parent=parent)
