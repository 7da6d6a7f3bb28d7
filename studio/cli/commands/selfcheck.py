"""``npu-studio selfcheck``: does this install work? The demo model on the CPU and on HTP.

    npu-studio selfcheck [--gui] [--model MODEL] [--json]

Runs one inference of the bundled demo (or MODEL) on the CPU and one on QNN HTP, each in a worker
process as every job is, and prints what ran where. With ``--gui`` it first opens the studio's
main window (offscreen when there is no display), loads the model into it as File > Open does,
and runs the two inferences from there, then closes the window: the packaged app's smoke test.
Exit 0 when both ran, 3 when a backend could not.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from studio.cli.common import add_command, print_json
from studio.core.errors import StudioError


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "selfcheck",
        "check the install: the demo model run on CPU and HTP (optionally in the GUI)",
        __doc__,
    )
    parser.add_argument("--model", help="ONNX model to use instead of the bundled demo")
    parser.add_argument("--gui", action="store_true", help="open the main window on it first")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=selfcheck)


def _infer(model: str) -> dict[str, Any]:
    from studio.core.jobs.client import run_in_worker
    from studio.core.jobs.protocol import job_kind
    from studio.core.toolchain import jobs

    found: dict[str, Any] = {}
    for backend in ("cpu", "htp"):
        started = time.perf_counter()
        try:
            result = run_in_worker(
                job_kind(jobs.run), {"model": model, "backend": backend, "seed": 0}
            )
        except StudioError as exc:
            found[backend] = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
            continue
        found[backend] = {
            "ok": True,
            "providers": result.get("providers", []),
            "offload": (result.get("offload") or {}).get("summary"),
            "outputs": {k: v.get("shape") for k, v in result.get("outputs", {}).items()},
            "seconds": round(time.perf_counter() - started, 3),
            "simulated": bool(result.get("simulated")),
        }
    return found


def _open_in_window(model: str) -> dict[str, Any]:
    """Open the main window on ``model`` and wait until the graph is loaded (or fails).

    Its own settings and data folder: a check must not offer the user's crashed work back (a
    modal question nobody can answer headless) nor add to their recent files."""
    import tempfile

    os.environ["NPU_STUDIO_DATA_DIR"] = tempfile.mkdtemp(prefix="npu-studio-selfcheck-")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from studio.app import prepare_environment

    prepare_environment()
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName("npu-studio")
    QCoreApplication.setApplicationName("npu-studio-selfcheck")
    app = QApplication.instance() or QApplication(["npu-studio"])
    from studio.ui.shell.main_window import MainWindow

    ini = os.path.join(os.environ["NPU_STUDIO_DATA_DIR"], "settings.ini")
    settings = QSettings(ini, QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.show()
    failures: list[str] = []
    from studio.ui.shell import dialogs

    def record_error(_parent: Any, _title: str, message: str, details: str = "") -> Any:
        failures.append(message)  # a modal dialog here would wait for a click that never comes
        return dialogs.ErrorDialog(_title, message, details, None)

    dialogs.show_error = record_error
    started = time.perf_counter()
    window.open_path(model)
    while window.ctx.graph is None and not failures and time.perf_counter() - started < 120:
        app.processEvents()
        time.sleep(0.01)
    graph = window.ctx.graph
    opened = {
        "ok": graph is not None,
        "title": window.windowTitle(),
        "nodes": len(graph.nodes) if graph is not None else 0,
        "seconds": round(time.perf_counter() - started, 3),
        "workspaces": window.workspace_titles(),
        "error": failures[0] if failures else None,
    }
    if graph is not None and window.projects.project is not None:
        window.projects.project.dirty = False  # nothing to ask about on close
    window.close()
    app.processEvents()
    return opened


def selfcheck(args: argparse.Namespace) -> int:
    from studio.resources import demo_model_path

    model = os.path.abspath(args.model or str(demo_model_path()))
    report: dict[str, Any] = {"model": model}
    if args.gui:
        report["window"] = _open_in_window(model)
    report.update(_infer(model))
    ok = all(report[b]["ok"] for b in ("cpu", "htp")) and report.get("window", {"ok": True})["ok"]
    if args.json:
        print_json(report)
    else:
        if "window" in report:
            w = report["window"]
            print(f"window: {'opened' if w['ok'] else 'FAILED'} {w['title']} ({w['nodes']} nodes)")
        for backend in ("cpu", "htp"):
            r = report[backend]
            if r["ok"]:
                where = ", ".join(r["providers"])
                sim = " (x86 HTP emulator)" if r["simulated"] else ""
                print(f"{backend}: ok on {where}{sim}; outputs {r['outputs']}")
            else:
                print(f"{backend}: FAILED: {r['error']}")
    return 0 if ok else 3
