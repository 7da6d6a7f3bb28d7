"""The Quantization workspace's accuracy actions: per-layer SQNR (Analyse) and auto mixed
precision, with the curve whose points can be applied.

Each is a core call on the workspace's ``runner`` (progress, cancel, UI never blocked): on CPU in
a thread with the float side cached between runs, on QNN HTP (or with HTP cycles) in the worker
process, where a native crash fails only the job.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt

from studio.core.accuracy.jobs import DEFAULT_EVAL_SAMPLES, analyse_job
from studio.core.accuracy.split import calibration_label
from studio.core.calibration import CalibrationStats
from studio.core.calibration.samples import heldout_source
from studio.core.engine.registry import is_x86_host
from studio.core.jobs.protocol import job_kind
from studio.core.profiling.cycles import DEFAULT_RUNS
from studio.core.quantize import build_qdq as core_build_qdq
from studio.core.workflows.automix import auto_mp_job
from studio.ui.quant.calibrating import model_path, need_stats
from studio.ui.quant.dialogs import AutoMixDialog
from studio.ui.quant.htp_probe import HtpProbe

EVAL_SAMPLES = DEFAULT_EVAL_SAMPLES  # evaluation samples for SQNR (the core's default)
SIMULATED = (
    "; the HTP simulator's counts on this x86-64 host, which rise when the host is busy: "
    "compare points measured together"
)


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
    return heldout_source(model_path(ws)) or ws.data_spec


def _eval_label(ws, count: int | None = None) -> str:
    """What an SQNR figure of the window was measured on, in words."""
    held = heldout_source(model_path(ws))
    if held:
        many = f"{count} " if count is not None else ""
        return f"held-out: {many}samples of {held} (calibration never saw them)"
    return calibration_label(ws.data_spec, count if count is not None else EVAL_SAMPLES)


def analyse(ws, backend: str = "cpu") -> None:
    """Build the plan's QDQ model, then per-layer SQNR against the float model (on the runner)."""
    if not need_stats(ws, "Analyse") or not _need_data(ws):
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
    if not need_stats(ws, "Sim vs HTP") or not _need_data(ws):
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
    from studio.core.devices.catalogue import current_device

    start = 30.0
    report = getattr(ws, "sqnr_report", None)
    if report is not None and math.isfinite(report.output_sqnr_db):
        start = round(report.output_sqnr_db + 6.0)
    start_ms = None
    if ws.mix_result is not None and ws.mix_result[1].curve:
        start_ms = ws.mix_result[1].curve[0].estimated_ms
    dialog = AutoMixDialog(ws, start, htp_probe(ws), current_device().name, start_ms)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def accepted() -> None:
        target, steps, cycles = dialog.choice()
        options = dialog.options()
        auto_mix(
            ws,
            target,
            steps,
            backend=ws.backend.currentData(),
            cycles=cycles,
            latency_budget_ms=options["latency_budget_ms"],
            techniques=options["techniques"],
        )

    dialog.accepted.connect(accepted)
    dialog.open()
    return dialog


def auto_mix(
    ws,
    target_db: float,
    max_steps: int = 10,
    backend: str = "cpu",
    cycles: bool = False,
    latency_budget_ms: float | None = None,
    techniques: tuple[str, ...] = ("seqmse",),
) -> None:
    """Search per layer among 16-bit activations, 8-bit weights and ``techniques`` (per-layer
    MSE scales) until the output SQNR meets ``target_db`` or the next move would break
    ``latency_budget_ms`` on the target device's estimate; moves are ranked by SQNR gained per
    estimated ms. The curve is shown against estimated ms with its Pareto points, and its last
    point applied as one undoable step (any point can be applied). ``backend="htp"`` measures
    every point's SQNR on QNN HTP, ``cycles`` its HTP cycles too (the right-hand axis of the
    curve); either runs the search in the worker process, where a native crash in QNN fails
    only the job."""
    if not need_stats(ws, "Auto-mix") or not _need_data(ws):
        return
    from studio.core.accuracy import auto_mixed_precision
    from studio.core.devices.catalogue import current_device

    stats, start_plan = ws.session.stats, ws.session.plan.copy()
    out = ws.scratch_path("automix.qdq.onnx")
    device = current_device()
    data = _eval_source(ws)
    calib = ws.data_spec

    def job(jctx):
        from studio.core.devices.estimate import estimate_model

        # In the worker process: QNN's native code may crash (HTP, cycles), and on CPU the
        # search builds and scores QDQ models holding the GIL for seconds at a time, which in a
        # thread of this process froze the window (a 515 ms stall seen on the demo model).
        if backend != "cpu" or cycles or stats.folder is not None:
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
                "estimate": True,
                "latency_budget_ms": latency_budget_ms,
                "techniques": list(techniques),
                "calib_data": calib,
            }
            if cycles:
                request["cycles"] = "htp"
            result = AutoMpResult.from_json(run_in_worker(job_kind(auto_mp_job), request, jctx))
        else:
            from studio.core.accuracy.jobs import load_feeds

            _analyser, feeds = _evaluation(ws, stats)
            technique_feeds = None
            if techniques:
                technique_feeds = load_feeds(str(stats.prepared_model), calib, limit=32, seed=0)
            result = auto_mixed_precision(
                stats, start_plan, feeds, out, target_db=target_db, max_steps=max_steps,
                ctx=jctx, device=device, latency_budget_ms=latency_budget_ms,
                techniques=techniques, technique_feeds=technique_feeds,
            )  # fmt: skip
        return result, estimate_model(out, device).error_text

    def done(outcome) -> None:
        result, error_text = outcome
        ws.mix_result = (start_plan, result)
        curve = result.curve
        measured = [p.cycles for p in curve if p.cycles is not None]
        est = [p.estimated_ms for p in curve if p.estimated_ms is not None]
        caption = (
            f"{len(curve)} configurations measured on {result.backend.upper()} in "
            f"{result.elapsed_s:.1f} s; target "
            f"{target_db:.1f} dB {'met' if result.met else 'NOT met'}. Click a point to apply it."
        )
        if est:
            caption += (
                f" Estimated {min(est):.3g} .. {max(est):.3g} ms on {device.name} (device "
                f"estimate, {error_text}); ringed: Pareto points (SQNR vs est. ms)."
            )
        if result.stopped_by_budget:
            caption += f" Stopped: no further move fits the {latency_budget_ms:.3g} ms budget."
        if result.techniques:
            caption += f" {len(result.techniques)} layer(s) with MSE scales (Techniques tab)."
        caption += (
            f" HTP cycles per inference {min(measured):,.0f} .. {max(measured):,.0f} (QNN "
            f"profiler, lowest of {DEFAULT_RUNS} runs{SIMULATED if is_x86_host() else ''})."
            if measured
            else " Cycles: not measured (tick 'Measure HTP cycles' in Auto-mix…)."
        )
        pareto_steps = {p.step for p in result.pareto()}
        ws.mix_curve.set_curve(
            [p.wide_tensors for p in curve],
            [p.output_sqnr_db for p in curve],
            target_db,
            caption,
            cycles=[p.cycles for p in curve],
            estimated_ms=[p.estimated_ms for p in curve],
            pareto=[i for i, p in enumerate(curve) if p.step in pareto_steps],
            estimated_for=device.name,
            budget_ms=latency_budget_ms,
            kept=[p.kept for p in curve],
        )
        view = getattr(ws, "technique_view", None)
        if view is not None and result.technique_effects:
            view.show_automix(result.technique_effects, result.techniques)
        ws.tabs.setCurrentWidget(ws.mix_curve)
        last_kept = max((i for i, p in enumerate(curve) if p.kept), default=len(curve) - 1)
        if apply_mix_point(ws, last_kept) and result.final_report is not None:
            # the search measured exactly the configuration just applied: show its SQNR
            _show_report(ws, result.final_report, "auto-mix final point")

    ws.runner.start("Auto mixed precision", job, on_result=done)


def apply_mix_point(ws, index: int) -> bool:
    """Apply curve point ``index``: the configuration it measured (``AutoMpResult.plan_at``:
    the kept moves before it and its own, even if the search then undid them). Every tensor the
    search changed takes that plan's override, or what it had before the search. One undo
    step."""
    if ws.mix_result is None:
        return False
    start_plan, result = ws.mix_result
    if not 0 <= index < len(result.curve):
        return False
    plan = result.plan_at(start_plan, index)
    touched = result.touched()
    changes = {name: plan.overrides.get(name) for name in sorted(touched)}
    changes = {n: ov for n, ov in changes.items() if _differs(ov, ws.session.plan.overrides.get(n))}
    point = result.curve[index]
    ws.mix_curve.mark(index)
    if not changes:
        ws.show_message(f"auto-mix point {index}: {point.output_sqnr_db:.1f} dB, the plan as it is")
        return True
    return ws.push_overrides(
        changes, f"auto-mix: point {index} applied ({point.output_sqnr_db:.1f} dB)"
    )


def _differs(a, b) -> bool:
    return (a.to_json() if a is not None else None) != (b.to_json() if b is not None else None)
