"""The workspaces: which page each main-window tab shows, in tab order.

Each workspace is imported directly, so a missing or broken one fails at start-up (and in the
tests) with its own traceback, and tools see the dependency. A new workspace is its package under
``studio/ui`` plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import QWidget

from studio.ui.backends.workspace import BackendsWorkspace
from studio.ui.deploy.workspace import DeployWorkspace
from studio.ui.graph.workspace import GraphWorkspace
from studio.ui.profiling.workspace import ProfilingWorkspace
from studio.ui.quant.workspace import QuantizationWorkspace


@dataclass(frozen=True)
class WorkspaceSpec:
    """A tab of the main window: its key (project view state, menus), title and page class."""

    key: str
    title: str
    page: Callable[[Any, QWidget | None], QWidget]  # page(ctx, parent)


WORKSPACES: tuple[WorkspaceSpec, ...] = (
    WorkspaceSpec("graph", "Graph", GraphWorkspace),
    WorkspaceSpec("quant", "Quantization", QuantizationWorkspace),
    WorkspaceSpec("backends", "Backends", BackendsWorkspace),
    WorkspaceSpec("profiling", "Profiling", ProfilingWorkspace),
    WorkspaceSpec("deploy", "Deploy", DeployWorkspace),
)


def create_workspace(spec: WorkspaceSpec, ctx: Any, parent: QWidget | None = None) -> QWidget:
    """The page for ``spec``."""
    return spec.page(ctx, parent)
