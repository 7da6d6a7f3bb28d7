"""The Quantization workspace's file actions: import and export encodings, and Build QDQ.

Build QDQ goes through the quantise workflow (:func:`studio.core.workflows.quantize.quantize_job`
in the worker process), the one ``npu-studio quantize`` runs, from the statistics the table shows:
the window and the command line cannot build different models from the same choices.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog

from studio.core.calibration import CalibrationStats
from studio.core.encodings import coverage, load_encodings, save_encodings
from studio.core.errors import StudioError
from studio.core.jobs.protocol import job_kind
from studio.core.quantize import QuantPlan
from studio.core.workflows.quantize import QuantizeRequest, quantize_job
from studio.ui.quant.calibrating import model_path, need_stats
from studio.ui.quant.commands import ImportEncodingsCommand
from studio.ui.quant.dialogs import ExportDialog


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
    model = model_path(ws)
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


def quantize_request(
    ws, path: str, stats: CalibrationStats, plan: QuantPlan, techniques: str | None
) -> QuantizeRequest:
    """The window's choices as the workflow's request: the statistics it calibrated (kept as
    they are), the plan being edited, no SQNR of its own (Analyse measures that) and the HTP
    offload check the message reports. Techniques are scored on samples of the calibration
    data (a separate draw for random data), labelled so, as the editor's own figures are."""
    model = model_path(ws) or str(stats.prepared_model)
    return QuantizeRequest(
        model=model,
        output=path,
        calib=ws.data_spec or "random:8",
        plan=plan,
        input_shapes=dict(getattr(ws.ctx, "input_shapes", {}) or {}) or None,
        techniques=techniques,
        check_htp=True,
        sqnr=False,
        stats_dir=str(stats.folder),
    )


def build_dialog(ws):
    """Open the (window-modal, non-blocking) Build QDQ dialog; accepting it starts the build."""
    if not need_stats(ws, "Building the QDQ model"):
        return None
    from PySide6.QtCore import Qt

    from studio.core.devices.catalogue import current_device
    from studio.ui.quant.build_dialog import BuildQdqDialog
    from studio.ui.quant.toolbar import TECHNIQUE_CHOICES

    model = model_path(ws) or "model.onnx"
    default = str(Path(model).with_suffix(".qdq.onnx"))
    proto = ws.session.proto
    if proto is None:
        import onnx

        proto = onnx.load(str(ws.session.stats.prepared_model))
    technique = ws.techniques.currentData() if hasattr(ws, "techniques") else ""
    dialog = BuildQdqDialog(
        ws, default, proto, ws.session.plan, current_device(), TECHNIQUE_CHOICES, technique
    )
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def accepted() -> None:
        choice = dialog.choice()
        if hasattr(ws, "techniques"):  # the toolbar shows what was built
            ws.techniques.setCurrentIndex(max(0, ws.techniques.findData(choice.techniques)))
        build_qdq(ws, choice.path, techniques=choice.techniques, block_size=choice.block_size)

    dialog.accepted.connect(accepted)
    dialog.open()
    return dialog


def build_qdq(ws, path: str, techniques: str | None = None, block_size: int | None = None) -> None:
    """Build the plan's QDQ model at ``path`` through the quantise workflow (the CLI's
    ``quantize``), from the statistics the table shows; then whether QNN HTP takes all of it.
    ``techniques`` (default: the toolbar's choice) and ``block_size`` (block-wise INT4 weights,
    ``--block-size``) are the Build dialog's choices."""
    if not need_stats(ws, "Building the QDQ model"):
        return
    stats, plan = ws.session.stats, ws.session.plan.copy()
    if block_size is not None:
        plan.weight_block_size = int(block_size)
        plan.validate()
    if techniques is None:
        techniques = ws.techniques.currentData() if hasattr(ws, "techniques") else ""
    data_spec = ws.data_spec
    if techniques and not data_spec:
        ws.show_message("Techniques need the calibration data: Calibrate first.", error=True)
        return
    request = quantize_request(ws, path, stats, plan, techniques or None)

    def job(jctx):
        # the build, then whether QNN HTP takes the whole model: native QNN code, so the worker
        from studio.core.jobs.client import run_in_worker
        from studio.core.quantize.build import BuildResult

        data = run_in_worker(job_kind(quantize_job), request.to_json(), jctx)
        ws.last_techniques = data.get("techniques")
        return BuildResult.from_json(data["built"]), data.get("htp_full_offload") or {}

    def done(outcome) -> None:
        result, offload = outcome
        ws.last_build = result
        ws.last_offload = offload
        text = (
            f"QDQ model written to {result.qdq_path} in {result.elapsed_s:.1f} s: "
            f"{len(result.wide_tensors)} activations at 16 bits, {len(result.float_tensors)} float"
        )
        if result.blockwise:
            sizes = sorted(set(result.blockwise.values()))
            text += (
                f", {len(result.blockwise)} weights block-wise INT4 (block "
                f"{'/'.join(map(str, sizes))})"
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
            view = getattr(ws, "technique_view", None)
            if view is not None:
                view.show_build(tech)
        if offload.get("ok"):
            text += "; QNN HTP runs it fully offloaded"
        elif offload:
            text += f"; NOT fully on QNN HTP: {offload.get('reason', '')}"
        if result.warnings:
            text += f"; {len(result.warnings)} warnings: {result.warnings[0]}"
        ws.show_message(text, error=bool(result.warnings) or not offload.get("ok", False))

    ws.runner.start("Build QDQ", job, on_result=done)


def check_htp(ws) -> None:
    """Build the plan's QDQ model and ask QNN (in the worker) which nodes the target's HTP would
    not take; the editor's HTP column then names them with QNN's reason."""
    if not need_stats(ws, "Check HTP"):
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
