"""The README's pictures: ``make screenshots`` (offscreen), or ``python scripts/screenshots.py OUT``.

One picture per workspace, taken after a real flow on the demo model with default settings
(Calibrate -> Analyse, Probe op support -> Assign, Start profiling; the same presses as the
click-through test), plus the welcome page and the top of the stakeholder report from
``npu-studio pipeline``. Nothing is staged: if a press fails, the script says so and exits 1.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(out: Path) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["NPU_STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="npu-studio-shots-")
    os.environ.setdefault("NPU_STUDIO_NO_WEBENGINE", "1")  # the Graph tab, not Netron's page
    from studio.app import prepare_environment

    prepare_environment()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from studio.resources import demo_model_path
    from studio.ui.shell.main_window import MainWindow
    from studio.ui.shell.walkthrough import Walkthrough
    from studio.ui.widgets.theme import apply_theme

    apply_theme(app)
    out.mkdir(parents=True, exist_ok=True)
    settings = QSettings(
        os.path.join(os.environ["NPU_STUDIO_DATA_DIR"], "s.ini"), QSettings.Format.IniFormat
    )
    win = MainWindow(settings)
    win.resize(1600, 1000)
    win.show()
    walk = Walkthrough(win)
    walk.pump(1.0)
    win.grab().save(str(out / "welcome.png"))
    walk.open(str(demo_model_path()))
    presses = walk.run()
    failed = [p for p in presses if not p.green]
    for p in presses:
        print(f"[{p.workspace}] {p.button}: {', '.join(s for _, s, _ in p.jobs) or 'no job'}")
    for key in win.workspaces:
        win.show_workspace_key(key)
        walk.pump(1.5)
        win.grab().save(str(out / f"{key}.png"))
    walk.stop()
    win.ctx.project.dirty = False
    win.close()

    from studio.core.workflows.pipeline import run_pipeline
    from studio.ui.widgets.html_export import export_html

    pipe = Path(tempfile.mkdtemp(prefix="npu-studio-report-"))
    run_pipeline(demo_model_path(), pipe, runs=20, warmup=3)
    export_html(pipe / "report.html", png=out / "report.png", max_height=1500)
    print(f"screenshots in {out}/")
    if failed:
        print(
            f"FAILED presses: {[(p.workspace, p.button, p.jobs) for p in failed]}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
