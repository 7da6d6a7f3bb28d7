"""The workspace's long and file-touching actions: calibrate, analyse, auto-mix, import, export,
build, and restoring a project's plan.

Each is a core call; the heavy ones run on the workspace's ``runner`` (a ``Background``: progress, cancel,
UI never blocked) and come back in a ``done`` callback that updates the session. Functions take
the workspace as their first argument so the workspace module stays about layout and edits.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QFileDialog

from studio.core.accuracy.jobs import DEFAULT_EVAL_SAMPLES, analyse_job
from studio.core.accuracy.split import calibration_label
from studio.core.calibration import CalibrationStats
from studio.core.calibration.samples import default_calibration_source, heldout_source
from studio.core.encodings import coverage, load_encodings, save_encodings
from studio.core.engine.registry import is_x86_host
from studio.core.errors import StudioError
from studio.core.jobs.protocol import job_kind
from studio.core.profiling.cycles import DEFAULT_RUNS
from studio.core.quantize import QuantPlan
from studio.core.quantize import build_qdq as core_build_qdq
from studio.core.workflows.automix import auto_mp_job
from studio.ui.quant.commands import ImportEncodingsCommand
from studio.ui.quant.dialogs import AutoMixDialog, CalibrateDialog, ExportDialog
from studio.ui.quant.htp_probe import HtpProbe
from studio.ui.quant.session import stats_view

log = logging.getLogger(__name__)

CALIBRATION_SCHEMA = 1
EVAL_SAMPLES = DEFAULT_EVAL_SAMPLES  # evaluation samples for SQNR (the core's default)
SIMULATED = (
    "; the HTP simulator's counts on this x86-64 host, which rise when the host is busy: "
    "compare points measured together"
)


def _model_path(ws) -> str | None:
    path = getattr(ws.ctx, "model_path", None)
    graph = ws.session.graph
    if not path and graph is not None:
        path = str(getattr(graph, "path", "") or "")
    return path or None


def _need_stats(ws, what: str) -> bool:
    if ws.session.stats is None:
        ws.show_message(f"{what} needs calibration statistics: Calibrate first.", error=True)
        return False
    return True


# ---------------------------------------------------------------------- calibration
def calibrate_dialog(ws) -> None:
    if _model_path(ws) is None:
        ws.show_message("Open a model first.", error=True)
        return
    plan = ws.session.plan
    # first calibration: the model's own sample images, else random:N (warned); never the cwd
    data = ws.data_spec or default_calibration_source(_model_path(ws))[0]
    dialog = CalibrateDialog(ws, data, plan.method, plan.percentile)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        choice = dialog.choice()
        calibrate(ws, choice.data, choice.method, choice.percentile)


def calibrate(ws, data: str, method: str | None = None, percentile: float | None = None) -> None:
    """One calibration pass (cached by model + data) on the runner; stats replace the old ones."""
    model = _model_path(ws)
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


# ---------------------------------------------------------------------- SQNR and auto-mix
def _evaluation(ws, stats: CalibrationStats):
    """(Analyser, feeds) for these stats, kept between runs: the float side is computed once.

    Evaluation samples come from the calibration source (``random:N`` is re-seeded by the core
    so an evaluation does not score the very samples the ranges were fitted to)."""
    from studio.core.accuracy import Analyser
    from studio.core.accuracy.jobs import load_feeds

    source = _eval_source(ws)
    key = (stats.key, source)
    cached = ws._evaluation
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    feeds = load_feeds(str(stats.prepared_model), source, limit=EVAL_SAMPLES)
    analyser = Analyser(stats.prepared_model, cache_float=True)
    ws._evaluation = (key, analyser, feeds)
    return analyser, feeds


def _need_data(ws) -> bool:
    if not ws.data_spec:
        ws.show_message("No evaluation data: Calibrate first (its data is reused).", error=True)
        return False
    return True


def _eval_source(ws) -> str:
    """Where SQNR is measured: a model that ships held-out samples is scored on them, not on
    what it was calibrated on (the same source in the window and in the worker)."""
    return heldout_source(_model_path(ws)) or ws.data_spec


def _eval_label(ws, count: int | None = None) -> str:
    """What an SQNR figure of the window was measured on, in words."""
    held = heldout_source(_model_path(ws))
    if held:
        many = f"{count} " if count is not None else ""
        return f"held-out: {many}samples of {held} (calibration never saw them)"
    return calibration_label(ws.data_spec, count if count is not None else EVAL_SAMPLES)


def analyse(ws, backend: str = "cpu") -> None:
    """Build the plan's QDQ model, then per-layer SQNR against the float model (on the runner)."""
    if not _need_stats(ws, "Analyse") or not _need_data(ws):
        return
    stats, plan = ws.session.stats, ws.session.plan.copy()
    target = ws.scratch_path("analyse.qdq.onnx")

    data = _eval_source(ws)
    label_all = _eval_label(ws)

    def job(jctx):
        jctx.progress(0.0, "building the QDQ model")
        in_worker = backend != "cpu" or stats.folder is not None
        if in_worker and stats.folder is not None:
            # the build and the analysis hold the GIL in native code for seconds: a background
            # thread would still freeze the window, so both run in the worker process
            from studio.core.jobs.client import run_in_worker
            from studio.core.jobs.protocol import job_kind
            from studio.core.quantize.jobs import build_qdq_job

            build = {"stats_dir": str(stats.folder), "plan": plan.to_json(), "out": target}
            run_in_worker(job_kind(build_qdq_job), build, jctx)
        else:
            core_build_qdq(stats, plan, target, ctx=None)
        jctx.check_cancelled()
        if in_worker:
            # QNN runs native code that may crash: in the worker process, never in the GUI
            from studio.core.accuracy import SqnrReport
            from studio.core.jobs.client import run_in_worker

            request = {
                "float_model": str(stats.prepared_model),
                "qdq_model": target,
                "data": data,
                "backend": backend,
                "samples": EVAL_SAMPLES,
                "data_label": label_all,
            }
            result = run_in_worker(job_kind(analyse_job), request, jctx)
            return SqnrReport.from_json(result)
        analyser, feeds = _evaluation(ws, stats)
        label = _eval_label(ws, len(feeds))
        return analyser.analyse(target, feeds, backend=backend, ctx=jctx, data=label)

    def done(report) -> None:
        _show_report(ws, report, f"analyse on {report.backend.upper()}")
        text = (
            f"SQNR on {report.backend.upper()} over {report.samples} samples: model output "
            f"{report.output_sqnr_db:.1f} dB; {len(report.layers)} activations, "
            f"{len(report.weights)} weights; measured on {report.data or 'calibration data'}; "
            f"{report.target}"
        )
        finite = {k: v for k, v in ws.session.sqnr.items() if math.isfinite(v)}
        if finite:
            worst = min(finite, key=finite.get)
            text += f"; worst {finite[worst]:.1f} dB at {worst}"
        if report.notes:
            text += f" ({report.notes[0]})"
        ws.show_message(text)
        ws.tabs.setCurrentWidget(ws.sqnr_chart)

    ws.runner.start("Analyse SQNR", job, on_result=done)


def sim_vs_htp(ws, threshold_db: float | None = None) -> None:
    """Build the plan's QDQ model, then float vs CPU simulation vs HTP per layer for the target
    (both in the worker process: QNN native code never runs in the window)."""
    if not _need_stats(ws, "Sim vs HTP") or not _need_data(ws):
        return
    stats, plan = ws.session.stats, ws.session.plan.copy()
    target = ws.scratch_path("simcheck.qdq.onnx")
    data, label = _eval_source(ws), _eval_label(ws)

    def job(jctx):
        from studio.core.accuracy.jobs import sim_vs_htp_job
        from studio.core.accuracy.simcheck import DEFAULT_THRESHOLD_DB
        from studio.core.jobs.client import run_in_worker
        from studio.core.jobs.protocol import job_kind
        from studio.core.quantize.jobs import build_qdq_job

        jctx.progress(0.0, "building the QDQ model")
        if stats.folder is not None:
            build = {"stats_dir": str(stats.folder), "plan": plan.to_json(), "out": target}
            run_in_worker(job_kind(build_qdq_job), build, jctx)
        else:
            core_build_qdq(stats, plan, target, ctx=None)
        jctx.check_cancelled()
        request = {
            "float_model": str(stats.prepared_model),
            "qdq_model": target,
            "data": data,
            "samples": EVAL_SAMPLES,
            "data_label": label,
            "threshold_db": DEFAULT_THRESHOLD_DB if threshold_db is None else threshold_db,
        }
        return run_in_worker(job_kind(sim_vs_htp_job), request, jctx)

    def done(result) -> None:
        ws.sim_vs_htp_view.show_result(result)
        ws.tabs.setCurrentWidget(ws.sim_vs_htp_view)
        ws.show_message(
            f"Sim vs HTP: {len(result['flagged'])} of {len(result['layers'])} layers differ by "
            f"more than {result['threshold_db']:g} dB; HTP: {result['target']}"
        )

    ws.runner.start("Sim vs HTP", job, on_result=done)


def check_htp(ws) -> None:
    """Build the plan's QDQ model and ask QNN (in the worker) which nodes the target's HTP would
    not take; the editor's HTP column then names them with QNN's reason."""
    if not _need_stats(ws, "Check HTP"):
        return
    stats, plan = ws.session.stats, ws.session.plan.copy()
    if stats.folder is None:
        ws.show_message("Check HTP needs saved calibration stats (calibrate again)", error=True)
        return
    target = ws.scratch_path("htpcheck.qdq.onnx")

    def job(jctx):
        from studio.core.jobs.client import run_in_worker
        from studio.core.jobs.protocol import job_kind
        from studio.core.quantize.jobs import htp_fallback_job

        request = {"stats_dir": str(stats.folder), "plan": plan.to_json(), "out": target}
        return run_in_worker(job_kind(htp_fallback_job), request, jctx)

    def done(result) -> None:
        fallbacks = result["fallbacks"]
        ws.session.set_htp_fallbacks(fallbacks)
        nodes = sorted({f"{fb['node']} ({fb['op_type']})" for fb in fallbacks.values()})
        if nodes:
            first = next(iter(fallbacks.values()))
            ws.show_message(
                f"HTP check: {len(nodes)} node(s) would fall back to the CPU on "
                f"{first['target']}: {', '.join(nodes[:4])}; see the HTP column",
                error=True,
            )
        else:
            ws.show_message("HTP check: the whole model runs on the target's QNN HTP")

    ws.runner.start("Check HTP", job, on_result=done)


def _show_report(ws, report, source: str) -> None:
    values = {layer.tensor: layer.sqnr_db for layer in report.layers}
    values.update(report.weights)
    ws.sqnr_report = report
    ws.session.set_sqnr(values, source)


def htp_probe(ws) -> HtpProbe:
    """The workspace's one HTP availability probe, started on first use."""
    probe = getattr(ws, "_htp_probe", None)
    if probe is None:
        probe = ws._htp_probe = HtpProbe(ws)
    probe.start()
    return probe


def automix_dialog(ws) -> AutoMixDialog:
    """Open the (window-modal, non-blocking) Auto-mix dialog; accepting it starts the search."""
    start = 30.0
    report = getattr(ws, "sqnr_report", None)
    if report is not None and math.isfinite(report.output_sqnr_db):
        start = round(report.output_sqnr_db + 6.0)
    dialog = AutoMixDialog(ws, start, htp_probe(ws))
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def accepted() -> None:
        target, steps, cycles = dialog.choice()
        auto_mix(ws, target, steps, backend=ws.backend.currentData(), cycles=cycles)

    dialog.accepted.connect(accepted)
    dialog.open()
    return dialog


def auto_mix(
    ws, target_db: float, max_steps: int = 10, backend: str = "cpu", cycles: bool = False
) -> None:
    """Raise the worst tensors to 16 bits until the output SQNR meets ``target_db``; the curve
    is shown and its last point applied as one undoable step (any point can be applied).
    ``backend="htp"`` measures every point's SQNR on QNN HTP, ``cycles`` its HTP cycles too
    (the right-hand axis of the curve); either runs the search in the worker process, where a
    native crash in QNN fails only the job."""
    if not _need_stats(ws, "Auto-mix") or not _need_data(ws):
        return
    from studio.core.accuracy import auto_mixed_precision

    stats, start_plan = ws.session.stats, ws.session.plan.copy()
    out = ws.scratch_path("automix.qdq.onnx")

    data = _eval_source(ws)

    def job(jctx):
        if backend != "cpu" or cycles:  # every step runs on QNN: in the worker process
            from studio.core.accuracy import AutoMpResult
            from studio.core.jobs.client import run_in_worker

            request = {
                "stats_dir": str(stats.folder),
                "plan": start_plan.to_json(),
                "data": data,
                "out": out,
                "target_db": float(target_db),
                "max_steps": int(max_steps),
                "samples": EVAL_SAMPLES,
                "backend": backend,
            }
            if cycles:
                request["cycles"] = "htp"
            result = run_in_worker(job_kind(auto_mp_job), request, jctx)
            return AutoMpResult.from_json(result)
        _analyser, feeds = _evaluation(ws, stats)
        return auto_mixed_precision(
            stats, start_plan, feeds, out, target_db=target_db, max_steps=max_steps, ctx=jctx
        )

    def done(result) -> None:
        ws.mix_result = (start_plan, result)
        curve = result.curve
        measured = [p.cycles for p in curve if p.cycles is not None]
        caption = (
            f"{len(curve)} configurations measured on {result.backend.upper()} in "
            f"{result.elapsed_s:.1f} s; target "
            f"{target_db:.1f} dB {'met' if result.met else 'NOT met'}. Click a point to apply it."
        )
        caption += (
            f" HTP cycles per inference {min(measured):,.0f} .. {max(measured):,.0f} (QNN "
            f"profiler, lowest of {DEFAULT_RUNS} runs{SIMULATED if is_x86_host() else ''})."
            if measured
            else " Cycles: not measured (tick 'Measure HTP cycles' in Auto-mix…)."
        )
        ws.mix_curve.set_curve(
            [p.wide_tensors for p in curve],
            [p.output_sqnr_db for p in curve],
            target_db,
            caption,
            cycles=[p.cycles for p in curve],
        )
        ws.tabs.setCurrentWidget(ws.mix_curve)
        if apply_mix_point(ws, len(curve) - 1) and result.final_report is not None:
            # the search measured exactly the configuration just applied: show its SQNR
            _show_report(ws, result.final_report, "auto-mix final point")

    ws.runner.start("Auto mixed precision", job, on_result=done)


def apply_mix_point(ws, index: int) -> bool:
    """Apply curve point ``index``: tensors promoted up to it take the search's override, the
    ones promoted after it go back to what they were before the search. One undo step."""
    if ws.mix_result is None:
        return False
    start_plan, result = ws.mix_result
    if not 0 <= index < len(result.curve):
        return False
    upto = {name for point in result.curve[: index + 1] for name in point.promoted}
    changes = {}
    for name in result.promoted:
        if name in upto:
            changes[name] = result.plan.overrides.get(name)
        else:
            changes[name] = start_plan.overrides.get(name)
    point = result.curve[index]
    ws.mix_curve.mark(index)
    if not changes:
        ws.show_message(
            f"auto-mix point {index}: the starting plan ({point.output_sqnr_db:.1f} dB)"
        )
        return True
    return ws.push_overrides(
        changes,
        f"auto-mix: {len(upto)} tensors widened ({point.output_sqnr_db:.1f} dB at step {index})",
    )


# ---------------------------------------------------------------------- files
def import_encodings(ws, path: str) -> bool:
    """Read any supported encodings file against the model; one undoable command."""
    model = ws.session.proto if ws.session.proto is not None else ws.session.graph
    try:
        encset, warnings = load_encodings(path, model)
    except StudioError as exc:
        ws.show_message(f"import failed: {exc}", error=True)
        return False
    command = ImportEncodingsCommand(ws.session, encset, str(path), f"import {Path(path).name}")
    try:
        ws.session.apply_import(encset, str(path))
    except StudioError as exc:
        ws.show_message(f"import failed: {exc}", error=True)
        return False
    command.applied = True
    ws.ctx.undo_stack.push(command)
    text = f"Imported {len(encset)} encodings from {Path(path).name}"
    if ws.session.proto is not None:
        report = coverage(encset, ws.session.proto)
        if report.unknown_tensors:
            text += (
                f"; {len(report.unknown_tensors)} name no tensor of the model "
                f"(e.g. {report.unknown_tensors[0]})"
            )
    if warnings:
        text += f"; {len(warnings)} warnings: {warnings[0]}"
    ws.show_message(text, error=bool(warnings))
    return True


def export_dialog(ws) -> None:
    default = ""
    model = _model_path(ws)
    if model:
        default = str(Path(model).with_suffix(".encodings.json"))
    dialog = ExportDialog(ws, default)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        path, fmt = dialog.choice()
        if path:
            export_encodings(ws, path, fmt)


def export_encodings(ws, path: str, fmt: str) -> bool:
    """The encodings the plan asks for (calibrated + imported + edits) in ``fmt``."""
    encset = ws.session.encodings
    if not len(encset) and ws.session.plan.imported is not None:
        encset = ws.session.plan.imported
    if not len(encset):
        ws.show_message("Nothing to export: calibrate or import encodings first.", error=True)
        return False
    try:
        save_encodings(encset, path, fmt)
    except StudioError as exc:
        ws.show_message(f"export failed: {exc}", error=True)
        return False
    ws.show_message(f"Exported {len(encset)} encodings ({fmt}) to {path}")
    return True


def build_dialog(ws) -> None:
    if not _need_stats(ws, "Building the QDQ model"):
        return
    model = _model_path(ws) or "model.onnx"
    default = str(Path(model).with_suffix(".qdq.onnx"))
    path, _ = QFileDialog.getSaveFileName(ws, "Build QDQ model", default, "ONNX (*.onnx)")
    if path:
        build_qdq(ws, path)


def build_qdq(ws, path: str) -> None:
    if not _need_stats(ws, "Building the QDQ model"):
        return
    stats, plan = ws.session.stats, ws.session.plan.copy()
    techniques = ws.techniques.currentData() if hasattr(ws, "techniques") else ""
    data_spec = ws.data_spec
    if techniques and not data_spec:
        ws.show_message("Techniques need the calibration data: Calibrate first.", error=True)
        return

    def job(jctx):
        # the build, then whether QNN HTP takes the whole model: native QNN code, so the worker
        from studio.core.jobs.client import run_in_worker
        from studio.core.jobs.protocol import job_kind
        from studio.core.quantize.build import BuildResult
        from studio.core.quantize.jobs import build_qdq_job

        request = {
            "stats_dir": str(stats.folder),
            "plan": plan.to_json(),
            "out": path,
            "check_htp": True,
        }
        kind = job_kind(build_qdq_job)
        if techniques:
            from studio.core.accuracy.jobs import techniques_build_job

            request.update({"techniques": techniques, "data": data_spec})
            kind = job_kind(techniques_build_job)
        data = run_in_worker(kind, request, jctx)
        result = BuildResult.from_json(data)
        ws.last_techniques = data.get("techniques")
        return result, data.get("htp_full_offload") or {}

    def done(outcome) -> None:
        result, offload = outcome
        ws.last_build = result
        ws.last_offload = offload
        text = (
            f"QDQ model written to {result.qdq_path} in {result.elapsed_s:.1f} s: "
            f"{len(result.wide_tensors)} activations at 16 bits, {len(result.float_tensors)} float"
        )
        tech = getattr(ws, "last_techniques", None)
        if tech:
            chosen = "+".join(tech["techniques"]) or "none (the default was best)"
            gains = [e["after_db"] - e["before_db"] for e in tech["layers"]]
            text += (
                f"; techniques {chosen}: output {tech['output_sqnr_db']:.1f} dB on "
                f"{tech['data_label']}"
            )
            if gains:
                text += f", layers +{max(gains):.1f} dB at best (weight-only output SQNR)"
        if offload.get("ok"):
            text += "; QNN HTP runs it fully offloaded"
        elif offload:
            text += f"; NOT fully on QNN HTP: {offload.get('reason', '')}"
        if result.warnings:
            text += f"; {len(result.warnings)} warnings: {result.warnings[0]}"
        ws.show_message(text, error=bool(result.warnings) or not offload.get("ok", False))

    ws.runner.start("Build QDQ", job, on_result=done)
