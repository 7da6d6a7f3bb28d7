"""Where the files the studio ships with are: ``resources/`` (demo model, its sample images, theme).

One place that knows, so the welcome page, the CLI, the screenshots and the packaged app (where
``resources/`` sits beside the frozen modules, PyInstaller's ``_MEIPASS``) all agree.
"""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder: the repository's, or the one-folder app's."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def demo_model_path() -> Path:
    """The bundled demo CNN (``resources/models/demo_cnn.onnx``)."""
    return resources_dir() / "models" / "demo_cnn.onnx"
