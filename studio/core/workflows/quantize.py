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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.accuracy import Analyser, SqnrReport, auto_mixed_precision
from studio.core.accuracy.jobs import DEFAULT_EVAL_SAMPLES, load_feeds
from studio.core.calibration import CalibrationStats, Preprocess, calibrate
from studio.core.encodings import load_encodings, save_encodings
from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext
from studio.core.quantize import BuildResult, QuantPlan, build_coverage, build_qdq
from studio.core.quantize import check_htp_offload as htp_offload

SCHEMA_VERSION = 1


@dataclass
class QuantizeRequest:
    """Everything one quantisation needs; the CLI's flags and the GUI's choices map onto it."""

    model: str
    output: str
    calib: str = "random:8"
    plan: QuantPlan = field(default_factory=QuantPlan)
    input_shapes: dict[str, list[int]] | None = None
    preprocess: Preprocess | None = None
    cache_dir: str | None = None
    encodings: str | None = None  # import these, kept exactly
    auto_mp: bool = False
    target_sqnr: float | None = None
    max_steps: int = 10
    mp_backend: str = "cpu"  # where auto-MP (and then the final SQNR) is measured
    mp_cycles: bool = False  # measure HTP cycles of every auto-MP point
    export_encodings: str | None = None
    export_format: str = "qnn"
    check_htp: bool = False
    sqnr: bool = True  # measure the built model's SQNR (the pipeline skips it)
    eval_samples: int = DEFAULT_EVAL_SAMPLES


@dataclass
class QuantizeOutcome:
    """What the workflow produced, with the stats and plan it used."""

    request: QuantizeRequest
    stats: CalibrationStats
    plan: QuantPlan
    built: BuildResult
    cache_hit: bool
    import_warnings: list[str] = field(default_factory=list)
    report: SqnrReport | None = None
    promoted: list[str] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    offload: tuple[bool, str] | None = None

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
            "per_channel": plan.per_channel,
            "encodings_coverage": build_coverage(self.built, self.stats).to_json(),
            "encodings_count": len(self.built.encodings),
            "imported_encodings": plan.imported_source,
            "output_sqnr_db": report_json.get("output_sqnr_db"),
            "outputs_sqnr_db": report_json.get("outputs"),
            "sqnr_samples": report.samples if report is not None else 0,
            "sqnr_backend": self.sqnr_backend,
            "wide_tensors": self.built.wide_tensors,
            "promoted": self.promoted,
            "curve": self.curve,
            "curve_cycles": "htp" if req.mp_cycles else None,
            "exported_encodings": req.export_encodings,
            "export_format": req.export_format if req.export_encodings else None,
            "warnings": self.warnings,
            "htp_full_offload": (
                {"ok": self.offload[0], "reason": self.offload[1]} if self.offload else None
            ),
        }


def check_request(req: QuantizeRequest) -> None:
    """Refuse a request that cannot be carried out, before any work."""
    if req.auto_mp and req.target_sqnr is None:
        raise BadInputError("auto mixed precision needs a target SQNR (dB)")
    if req.mp_cycles and not req.auto_mp:
        raise BadInputError("HTP cycles are measured on the auto mixed precision curve")
    if req.export_encodings and Path(req.export_encodings).resolve() == Path(req.output).resolve():
        raise BadInputError("the encodings export must not overwrite the QDQ model")


def calibrate_stage(req: QuantizeRequest, ctx: JobContext) -> tuple[CalibrationStats, bool]:
    """Calibration statistics (cached by model + data hash) and whether the cache had them."""
    hit: list[bool] = []
    stats = calibrate(
        req.model,
        req.calib,
        input_shapes=req.input_shapes,
        preprocess=req.preprocess,
        cache_dir=req.cache_dir,
        ctx=ctx,
        on_cache=hit.append,
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
    """The samples SQNR is measured on (the evaluation split of the calibration source)."""
    return load_feeds(
        str(stats.prepared_model), req.calib, preprocess=req.preprocess, limit=req.eval_samples
    )


def _cycles_fn(req: QuantizeRequest) -> Callable[[Any], float] | None:
    if not req.mp_cycles:
        return None
    from studio.core.profiling.cycles import htp_total_cycles

    return htp_total_cycles


def build_stage(
    req: QuantizeRequest,
    stats: CalibrationStats,
    plan: QuantPlan,
    feeds: list[dict[str, Any]],
    target: Path,
    ctx: JobContext,
) -> tuple[QuantPlan, BuildResult, list[str], list[dict[str, Any]]]:
    """Build the QDQ model at ``target``: auto-MP first when asked (plan, build, promoted, curve)."""
    if not req.auto_mp:
        return plan, build_qdq(stats, plan, target, ctx=ctx), [], []
    mp = auto_mixed_precision(
        stats,
        plan,
        feeds,
        target,
        target_db=float(req.target_sqnr),  # type: ignore[arg-type] - check_request made sure
        max_steps=req.max_steps,
        backend=req.mp_backend,
        profile_fn=_cycles_fn(req),
        ctx=ctx,
    )
    built = build_qdq(stats, mp.plan, target, ctx=ctx)
    return mp.plan, built, mp.promoted, [p.to_json() for p in mp.curve]


def sqnr_stage(
    stats: CalibrationStats, model: Path, feeds: list[dict[str, Any]], backend: str
) -> SqnrReport:
    """Per-layer and output SQNR of the built model against the prepared float model."""
    return Analyser(stats.prepared_model, cache_float=False).analyse(model, feeds, backend=backend)


def quantize_model(req: QuantizeRequest, ctx: JobContext | None = None) -> QuantizeOutcome:
    """Run every stage; the QDQ model reaches ``req.output`` only when all of them worked."""
    ctx = ctx or JobContext()
    check_request(req)
    stats, cache_hit = calibrate_stage(req, ctx)
    plan, import_warnings = plan_stage(req, stats)
    feeds = evaluation_feeds(req, stats) if (req.sqnr or req.auto_mp) else []
    out = Path(req.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target, publish only when everything (incl. the encodings export) worked
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".onnx", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        plan, built, promoted, curve = build_stage(req, stats, plan, feeds, tmp, ctx)
        outcome = QuantizeOutcome(req, stats, plan, built, cache_hit, import_warnings)
        outcome.promoted, outcome.curve = promoted, curve
        if req.sqnr:
            outcome.report = sqnr_stage(stats, tmp, feeds, outcome.sqnr_backend)
        if req.check_htp:
            ok, reason = htp_offload(tmp)
            outcome.offload = (ok, reason.replace(tmp_name, str(out)))
        encodings = built.encodings  # read now, while the model is where the build wrote it
        if req.export_encodings:
            save_encodings(encodings, req.export_encodings, fmt=req.export_format)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    built.qdq_path = str(out)
    return outcome
