"""Render packaging/icons/npu-studio.svg to PNGs at the usual sizes (hicolor theme layout).

``python packaging/build_icons.py`` writes ``icons/hicolor/<N>x<N>/apps/npu-studio.png``; the
PNGs are committed, so building the package needs no SVG renderer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
HERE = Path(__file__).resolve().parent / "icons"


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - needed
    renderer = QSvgRenderer(str(HERE / "npu-studio.svg"))
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        target = HERE / "hicolor" / f"{size}x{size}" / "apps" / "npu-studio.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(target))
    print(f"wrote {len(SIZES)} icons under {HERE / 'hicolor'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
