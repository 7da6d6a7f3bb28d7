"""The one quantise workflow: calibrate -> plan -> (auto mixed precision) -> build -> SQNR -> export.

Why here: the CLI's ``quantize``, the pipeline and the GUI need the same sequence with the same
rules (the QDQ model is built beside its target and published only when everything, the encodings
export included, worked; SQNR is measured on the evaluation samples, not the calibration ones).
It needs calibration, quantize, accuracy and, for cycles, profiling: so it stands in workflows.
Each stage is a function of its own; :func:`quantize_model` runs them in order.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.core.accuracy import Analyser, SqnrReport, auto_mixed_precision
from studio.core.accuracy.jobs import DEFAULT_EVAL_SAMPLES, load_feeds
from studio.core.accuracy.split import EvalSplit, calibration_label, split_for_eval
from studio.core.calibration import CalibrationStats, Preprocess, calibrate
from studio.core.encodings import load_encodings, save_encodings
from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext, job
from studio.core.quantize import BuildResult, QuantPlan, build_coverage, build_qdq
from studio.core.quantize import check_htp_offload as htp_offload

SCHEMA_VERSION = 1


@dataclass
class QuantizeRequest:
    """Everything one quantisation needs; the CLI's flags and the GUI's choices map onto it."""

    model: str
    output: str
    calib: str = "random:8"
    eval: str | None = None  # held-out SQNR data; else a held-back part of ``calib``
    plan: QuantPlan = field(default_factory=QuantPlan)
    input_shapes: dict[str, list[int]] | None = None
    preprocess: Preprocess | None = None
    cache_dir: str | None = None
    encodings: str | None = None  # import these, kept exactly
    techniques: str | None = None  # "cle,bias-correction,adaround,seqmse" or "auto"
    auto_mp: bool = False
    target_sqnr: float | None = None
    max_steps: int = 10
    latency_budget_ms: float | None = None  # auto-MP stops at this estimated device latency
    # per-layer technique moves auto-MP may choose beside precision ("seqmse,adaround", "none")
    mp_techniques: str = "seqmse"
    mp_backend: str = "cpu"  # where auto-MP (and then the final SQNR) is measured
    # how auto-MP ranks 16-bit moves: "gain" (estimated added error) or "measured" (each
    # activation's measured sensitivity; finds tensors that only gain together)
    mp_rank: str = "gain"
    mp_cycles: bool = False  # measure HTP cycles of every auto-MP point
    export_encodings: str | None = None
    export_format: str = "qnn"
    check_htp: bool = False
    mse_threshold: float | None = None  # list tensors whose relative quantisation MSE exceeds it
    sqnr: bool = True  # measure the built model's SQNR (the pipeline skips it)
    eval_samples: int = DEFAULT_EVAL_SAMPLES
    # statistics an earlier calibration of this model on ``calib`` wrote (the GUI's Calibrate,
    # whose table the user edited): used as they are, without another pass over the data
    stats_dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The request as the worker job receives it (plain JSON: paths, numbers, the plan)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["plan"] = self.plan.to_json()
        data["preprocess"] = self.preprocess.to_json() if self.preprocess is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuantizeRequest:
        if not isinstance(data, dict):
            raise BadInputError("a quantise request must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadInputError(f"quantise request: unknown field(s) {', '.join(unknown)}")
        values = dict(data)
        values["plan"] = QuantPlan.from_json(data["plan"]) if data.get("plan") else QuantPlan()
        values["preprocess"] = (
            Preprocess.from_json(data["preprocess"]) if data.get("preprocess") else None
        )
        try:
            return cls(**values)
        except TypeError as exc:  # a required field (model, output) is missing
            raise BadInputError(f"quantise request: {exc}") from exc


@dataclass
class QuantizeOutcome:
    """What the workflow produced, with the stats and plan it used."""

    request: QuantizeRequest
    stats: CalibrationStats
    plan: QuantPlan
    built: BuildResult
    cache_hit: bool
    import_warnings: list[str] = field(default_factory=list)
    split: EvalSplit | None = None
    report: SqnrReport | None = None
    promoted: list[str] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    auto_mp: dict[str, Any] = field(default_factory=dict)
    techniques: dict[str, Any] | None = None
    offload: tuple[bool, str] | None = None
    mse_over: dict[str, Any] | None = None

    @property
    def sqnr_backend(self) -> str:
        return self.request.mp_backend if self.request.auto_mp else "cpu"

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(self.stats.warnings + self.import_warnings + self.built.warnings))

    def to_json(self) -> dict[str, Any]:
        """The summary ``npu-studio quantize --json`` prints."""
        req, plan, report = self.request, self.plan, self.report
        report_json = report.to_json() if report is not None else {}
        return {
            "schema_version": SCHEMA_VERSION,
            "model": str(req.model),
            "output": str(req.output),
            "calibration": {
                "source": req.calib,
                "samples": self.stats.num_samples,
                "cache_hit": self.cache_hit,
                "stats_dir": str(self.stats.folder),
                "method": plan.method,
            },
            "activation_bitwidth": plan.activation_bitwidth,
            "weight_bitwidth": plan.weight_bitwidth,
            "blockwise_weights": dict(self.built.blockwise),
            "per_channel": plan.per_channel,
            "encodings_coverage": build_coverage(self.built, self.stats).to_json(),
            "encodings_count": len(self.built.encodings),
            "imported_encodings": plan.imported_source,
            "output_sqnr_db": report_json.get("output_sqnr_db"),
            "outputs_sqnr_db": report_json.get("outputs"),
            "sqnr_samples": report.samples if report is not None else 0,
            "sqnr_backend": self.sqnr_backend,
            "sqnr_data": self.split.to_json() if self.split is not None else None,
            "sqnr_target": report.target if report is not None else None,
            "wide_tensors": self.built.wide_tensors,
            "promoted": self.promoted,
            "curve": self.curve,
            "curve_cycles": "htp" if req.mp_cycles else None,
            "auto_mp": self.auto_mp,
            "exported_encodings": req.export_encodings,
            "export_format": req.export_format if req.export_encodings else None,
            "warnings": self.warnings,
            "quant_mse_over": self.mse_over,
            "techniques": self.techniques,
            "htp_full_offload": (
                {"ok": self.offload[0], "reason": self.offload[1]} if self.offload else None
            ),
        }


def check_request(req: QuantizeRequest) -> None:
    """Refuse a request that cannot be carried out, before any work."""
    from studio.core.quantize.techniques import parse_techniques

    if req.auto_mp and req.target_sqnr is None:
        raise BadInputError("--auto-mp needs --target-sqnr DB")
    if req.latency_budget_ms is not None and (not req.auto_mp or req.latency_budget_ms <= 0):
        raise BadInputError("--latency-budget-ms needs --auto-mp and a value > 0")
    if parse_techniques(req.techniques) and req.auto_mp:
        raise BadInputError(
            "--techniques and --auto-mp cannot be combined: --auto-mp chooses techniques per "
            "layer itself (--mp-techniques seqmse,adaround)"
        )
    mp_technique_names(req)  # unknown names fail here
    if req.mp_cycles and not req.auto_mp:
        raise BadInputError("--mp-cycles measures the --auto-mp curve: add --auto-mp")
    if req.export_encodings and Path(req.export_encodings).resolve() == Path(req.output).resolve():
        raise BadInputError("--export-encodings must differ from -o")


def split_stage(req: QuantizeRequest) -> EvalSplit | None:
    """SQNR data calibration never sees: ``eval``, or a held-back tail of ``calib`` (None when
    nothing is measured, so calibration uses every sample)."""
    if not (req.sqnr or req.auto_mp or req.techniques):
        return None
    if req.stats_dir and not req.eval:
        return _calibration_split(req)
    return split_for_eval(
        req.model, req.calib, req.eval, input_shapes=req.input_shapes, preprocess=req.preprocess
    )


def _calibration_split(req: QuantizeRequest) -> EvalSplit:
    """With statistics calibrated on all of ``calib`` nothing is held out: the figures are on
    samples of the calibration source (a separate draw for ``random:N``), and say so."""
    feeds = load_feeds(
        req.model,
        req.calib,
        input_shapes=req.input_shapes,
        preprocess=req.preprocess,
        limit=req.eval_samples,
    )
    kind = "random" if req.calib.startswith("random:") else "calibration"
    return EvalSplit(feeds, None, kind, calibration_label(req.calib, len(feeds)))


def calibrate_stage(
    req: QuantizeRequest, ctx: JobContext, limit: int | None = None, model: str | None = None
) -> tuple[CalibrationStats, bool]:
    """Calibration statistics (cached by model + data hash) and whether the cache had them.

    ``req.stats_dir`` (statistics of the request's own model) is used as it is; a ``model``
    of its own (a technique's rewritten model) is always calibrated.
    """
    if req.stats_dir and model is None:
        ctx.progress(0.0, "calibration statistics from an earlier pass")
        return CalibrationStats.load(req.stats_dir), True
    hit: list[bool] = []
    stats = calibrate(
        model or req.model,
        req.calib,
        input_shapes=req.input_shapes,
        preprocess=req.preprocess,
        cache_dir=req.cache_dir,
        ctx=ctx,
        on_cache=hit.append,
        limit=limit,
    )
    return stats, bool(hit and hit[0])


def plan_stage(req: QuantizeRequest, stats: CalibrationStats) -> tuple[QuantPlan, list[str]]:
    """The request's plan, with imported encodings attached (kept exactly by the build)."""
    plan = req.plan
    warnings: list[str] = []
    if req.encodings:
        imported, warnings = load_encodings(req.encodings, str(stats.prepared_model))
        plan.imported, plan.imported_source = imported, str(req.encodings)
    return plan, warnings


def evaluation_feeds(req: QuantizeRequest, stats: CalibrationStats) -> list[dict[str, Any]]:
    """Samples of the calibration source (for callers without a held-out split)."""
    return load_feeds(
        str(stats.prepared_model), req.calib, preprocess=req.preprocess, limit=req.eval_samples
    )


def mp_technique_names(req: QuantizeRequest) -> tuple[str, ...]:
    """``mp_techniques`` as names ("none" or empty: precision moves only)."""
    from studio.core.accuracy.mp_moves import TECHNIQUE_MOVES

    text = (req.mp_techniques or "").strip()
    if text in ("", "none"):
        return ()
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in TECHNIQUE_MOVES]
    if bad:
        raise BadInputError(
            f"--mp-techniques: unknown {', '.join(bad)} (choose from {', '.join(TECHNIQUE_MOVES)}"
            " or none)"
        )
    return names


def _cycles_fn(req: QuantizeRequest) -> Callable[[Any], float] | None:
    if not req.mp_cycles:
        return None
    from studio.core.profiling.cycles import htp_total_cycles

    return htp_total_cycles


@dataclass
class _Built:
    stats: CalibrationStats
    plan: QuantPlan
    built: BuildResult
    promoted: list[str] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    auto_mp: dict[str, Any] = field(default_factory=dict)
    techniques: dict[str, Any] | None = None


def automix_stage(
    req: QuantizeRequest,
    stats: CalibrationStats,
    plan: QuantPlan,
    feeds: list[dict[str, Any]],
    target: Path,
    ctx: JobContext,
    calib_limit: int | None = None,
) -> _Built:
    """Auto mixed precision over precision and per-layer technique moves, ranked and stopped
    on the target device's latency estimate; then the build of the chosen point."""
    from studio.core.devices.catalogue import current_device
    from studio.core.devices.estimate import estimate_model

    device = current_device()
    names = mp_technique_names(req)
    calib_feeds = None
    if names:  # techniques are fitted on calibration samples, never on the SQNR data
        calib_feeds = load_feeds(
            str(stats.prepared_model),
            req.calib,
            preprocess=req.preprocess,
            limit=min(32, calib_limit or 32),
            seed=0,
        )
    mp = auto_mixed_precision(
        stats,
        plan,
        feeds,
        target,
        target_db=float(req.target_sqnr),  # type: ignore[arg-type] - check_request made sure
        max_steps=req.max_steps,
        backend=req.mp_backend,
        rank=req.mp_rank,
        profile_fn=_cycles_fn(req),
        ctx=ctx,
        device=device,
        latency_budget_ms=req.latency_budget_ms,
        techniques=names,
        technique_feeds=calib_feeds,
    )
    built = build_qdq(stats, mp.plan, target, ctx=ctx, model=mp.model)
    start_ms = mp.curve[0].estimated_ms if mp.curve else None
    chosen = next((p for p in reversed(mp.curve) if p.kept), None)
    extra = {
        "latency_budget_ms": req.latency_budget_ms,
        "stopped_by_budget": mp.stopped_by_budget,
        "pareto_steps": [p.step for p in mp.pareto()],
        "estimated_for": device.name,
        "estimate_label": estimate_model(target, device).label,
        "start_estimated_ms": start_ms,
        "chosen_estimated_ms": chosen.estimated_ms if chosen else None,
        "mp_techniques": list(names),
        "techniques": mp.techniques,
        "technique_effects": mp.technique_effects,
    }
    return _Built(stats, mp.plan, built, mp.promoted, [p.to_json() for p in mp.curve], extra)


def techniques_stage(
    req: QuantizeRequest,
    stats: CalibrationStats,
    plan: QuantPlan,
    split: EvalSplit,
    target: Path,
    ctx: JobContext,
) -> _Built:
    """The post-training techniques (a list, or "auto"), fitted on calibration samples and
    scored on the held-out split; the chosen model is then built."""
    from studio.core.accuracy.techniques import choose_techniques, run_techniques
    from studio.core.quantize.techniques import parse_techniques

    names = parse_techniques(req.techniques)
    calib_feeds = load_feeds(
        str(stats.prepared_model),
        req.calib,
        preprocess=req.preprocess,
        limit=min(32, split.calib_limit or 32),
        seed=0,
    )

    def recalibrate(path: str) -> CalibrationStats:
        return calibrate_stage(req, JobContext(), limit=split.calib_limit, model=path)[0]

    common = {"calib_feeds": calib_feeds, "eval_feeds": split.feeds, "recalibrate": recalibrate}
    if names == "auto":
        run, tried = choose_techniques(stats, plan, target, log=ctx.log, **common)
    else:
        run, tried = run_techniques(stats, plan, list(names), target, **common), []
    summary = run.summary()
    summary["tried"] = tried
    summary["data_label"] = split.label
    built = build_qdq(run.stats, run.plan, target, ctx=ctx, model=run.technique.model)
    return _Built(run.stats, run.plan, built, techniques=summary)


def build_stage(
    req: QuantizeRequest,
    stats: CalibrationStats,
    plan: QuantPlan,
    split: EvalSplit | None,
    target: Path,
    ctx: JobContext,
) -> _Built:
    """Build the QDQ model at ``target``: auto-MP or techniques first when asked."""
    if req.auto_mp:
        feeds = split.feeds if split is not None else evaluation_feeds(req, stats)
        limit = split.calib_limit if split is not None else None
        return automix_stage(req, stats, plan, feeds, target, ctx, limit)
    if req.techniques and split is not None:
        return techniques_stage(req, stats, plan, split, target, ctx)
    return _Built(stats, plan, build_qdq(stats, plan, target, ctx=ctx))


def sqnr_stage(
    float_model: Path | str,
    model: Path,
    feeds: list[dict[str, Any]],
    backend: str,
    data: str | None = None,
) -> SqnrReport:
    """Per-layer and output SQNR of the built model against the prepared float model."""
    return Analyser(float_model, cache_float=False).analyse(
        model, feeds, backend=backend, data=data
    )


def mse_stage(
    stats: CalibrationStats, encodings: Any, threshold: float | None
) -> dict[str, Any] | None:
    """Tensors whose quantise-dequantise MSE (relative to their mean square) exceeds ``threshold``."""
    if threshold is None:
        return None
    from studio.core.quantize.mse import check_mse, quantisation_mse

    over = check_mse(quantisation_mse(stats, encodings), threshold)
    return {"threshold": threshold, "tensors": [m.to_json() for m in over]}


def quantize_model(req: QuantizeRequest, ctx: JobContext | None = None) -> QuantizeOutcome:
    """Run every stage; the QDQ model reaches ``req.output`` only when all of them worked."""
    ctx = ctx or JobContext()
    check_request(req)
    split = split_stage(req)
    stats, cache_hit = calibrate_stage(req, ctx, limit=split.calib_limit if split else None)
    float_ref = stats.prepared_model  # techniques re-calibrate; SQNR stays against this float
    plan, import_warnings = plan_stage(req, stats)
    out = Path(req.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target, publish only when everything (incl. the encodings export) worked
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        b = build_stage(req, stats, plan, split, tmp, ctx)
        outcome = QuantizeOutcome(req, b.stats, b.plan, b.built, cache_hit, import_warnings, split)
        outcome.promoted, outcome.curve, outcome.auto_mp = b.promoted, b.curve, b.auto_mp
        outcome.techniques = b.techniques
        if req.sqnr and split is not None:
            label = split.label
            outcome.report = sqnr_stage(float_ref, tmp, split.feeds, outcome.sqnr_backend, label)
        if req.check_htp:
            ok, reason = htp_offload(tmp)
            outcome.offload = (ok, reason.replace(tmp_name, str(out)))
        encodings = b.built.encodings  # read now, while the model is where the build wrote it
        if req.export_encodings:
            save_encodings(encodings, req.export_encodings, fmt=req.export_format)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    b.built.qdq_path = str(out)
    outcome.mse_over = mse_stage(b.stats, encodings, req.mse_threshold)
    return outcome


@job
def quantize_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The workflow in the worker process: a :class:`QuantizeRequest` as JSON -> the summary
    ``npu-studio quantize --json`` prints, plus ``built`` (the BuildResult) and ``report`` (the
    whole SQNR report, when measured) for the GUI's tables and charts.

    The GUI's *Build QDQ* sends its request here (with the statistics it calibrated as
    ``stats_dir``), so the window and the command line build through one sequence.
    """
    outcome = quantize_model(QuantizeRequest.from_json(request), ctx)
    data = outcome.to_json()
    data["built"] = outcome.built.to_json()
    data["report"] = outcome.report.to_json() if outcome.report is not None else None
    return data
