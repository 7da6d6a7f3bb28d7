"""The Quantization workspace's calibration: the dialog, one pass in the worker, and restoring a
project's plan and cached statistics.

Why apart from the workspace: calibration is a long core call (the worker process, since ORT and
onnx hold the GIL for seconds) whose result replaces the session's statistics; the workspace
module keeps to layout and edits. Like the other action modules (``evaluation``, ``building``),
every function takes the workspace as its first argument. ``model_path`` and ``need_stats`` are
the checks they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QDialog

from studio.core.calibration import CalibrationStats
from studio.core.calibration.samples import default_calibration_source
from studio.core.errors import StudioError
from studio.core.quantize import QuantPlan
from studio.ui.quant.dialogs import CalibrateDialog
from studio.ui.quant.session import stats_view

CALIBRATION_SCHEMA = 1


def model_path(ws) -> str | None:
    path = getattr(ws.ctx, "model_path", None)
    graph = ws.session.graph
    if not path and graph is not None:
        path = str(getattr(graph, "path", "") or "")
    return path or None


def need_stats(ws, what: str) -> bool:
    if ws.session.stats is None:
        ws.show_message(f"{what} needs calibration statistics: Calibrate first.", error=True)
        return False
    return True


def calibrate_dialog(ws) -> None:
    if model_path(ws) is None:
        ws.show_message("Open a model first.", error=True)
        return
    plan = ws.session.plan
    # first calibration: the model's own sample images, else random:N (warned); never the cwd
    data = ws.data_spec or default_calibration_source(model_path(ws))[0]
    dialog = CalibrateDialog(ws, data, plan.method, plan.percentile)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        choice = dialog.choice()
        calibrate(ws, choice.data, choice.method, choice.percentile)


def calibrate(ws, data: str, method: str | None = None, percentile: float | None = None) -> None:
    """One calibration pass (cached by model + data) on the runner; stats replace the old ones."""
    model = model_path(ws)
    if model is None:
        ws.show_message("Open a model first.", error=True)
        return
    shapes = dict(getattr(ws.ctx, "input_shapes", {}) or {})
    plan_json, graph = ws.session.plan.to_json(), ws.session.graph

    def job(jctx) -> Any:
        # in the worker process: ORT and onnx hold the GIL for seconds in native calls, which
        # would freeze the window even from a background thread
        from studio.core.calibration.collect import calibrate_job
        from studio.core.jobs.client import run_in_worker
        from studio.core.jobs.protocol import job_kind

        request = {"model": model, "data": data, "input_shapes": shapes or None}
        result = run_in_worker(job_kind(calibrate_job), request, jctx)
        stats = CalibrationStats.load(result["stats_dir"])
        # what the table shows for them, here rather than on the UI thread
        return stats, stats_view(stats, plan_json, graph)

    def done(result: Any) -> None:
        stats, view = result
        ws.data_spec = data
        ws.session.set_stats(stats, view)
        defaults = {}
        if method:
            defaults["method"] = method
        if percentile is not None:
            defaults["percentile"] = float(percentile)
        if defaults:
            ws.set_defaults(**defaults)
        project = getattr(ws.ctx, "project", None)
        if project is not None:
            project.update(
                "calibration",
                {
                    "schema_version": CALIBRATION_SCHEMA,
                    "data": data,
                    "stats_dir": str(stats.folder) if stats.folder else None,
                    "num_samples": stats.num_samples,
                    "model_sha256": stats.model_sha256,
                },
            )
        ws._update_banner()
        ws.show_message(
            f"Calibrated on {stats.num_samples} samples ({data}): "
            f"{len(stats.histograms)} activations, {len(ws.session.encodings)} encodings."
        )

    ws.runner.start("Calibrate", job, on_result=done)


def restore_from_project(ws, project: Any) -> bool:
    """Rebuild the plan (and cached stats, when still on disk) from an open project."""
    if project is None:
        return False
    restored = False
    if project.quant_plan:
        try:
            ws.session.set_plan(QuantPlan.from_json(project.quant_plan))
            restored = True
        except StudioError as exc:
            ws.show_message(f"the project's quant_plan could not be read: {exc}", error=True)
    calib = project.calibration or {}
    folder = calib.get("stats_dir")
    if folder and Path(folder).is_dir():
        try:
            stats = CalibrationStats.load(folder)
        except StudioError as exc:
            ws.show_message(f"cached calibration unreadable ({exc}); calibrate again", error=True)
        else:
            graph = ws.session.graph
            if graph is not None and stats.model_sha256 != graph.sha256():
                ws.data_spec = str(calib.get("data") or "")
                ws.show_message(
                    "The model changed since it was calibrated: the plan is restored, "
                    f"Calibrate again ({calib.get('data')}).",
                    error=True,
                )
                return restored
            ws.data_spec = str(calib.get("data") or "")
            ws.session.set_stats(stats)
            ws.show_message(
                f"Restored the project's plan and calibration ({stats.num_samples} samples, "
                f"{calib.get('data')})."
            )
            return True
    elif calib.get("data"):
        ws.data_spec = str(calib["data"])
        ws.show_message(
            f"The project's plan is restored; its calibration cache is gone: Calibrate again "
            f"({calib['data']})."
        )
    return restored
