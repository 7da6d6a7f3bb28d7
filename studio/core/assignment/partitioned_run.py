"""Run a backend plan: one session per segment on its backend, chained, timed per segment.

The whole chain runs in the worker process, because a QNN segment that crashes natively must
take only the worker down. Arrays cross the process boundary as ``.npz`` files (never pickles).
QNN segments are created with CPU fallback disabled, so a segment reported as HTP really ran on
HTP; a backend that refuses its segment or fails during a run is an error naming the segment and
its nodes (CLI exit 3), never a silent fallback.

Timing: ``run_ms`` is the segment's ``session.run``; ``boundary_ms`` is the host-side hand-over of
the tensors it receives from earlier segments (gathering and copying them into a fresh buffer, as
a transfer between backends' memories does). Both are wall-clock on this host: on x86-64 the HTP
is a simulator, so its times are not phone times.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.engine.sessions import random_array
from studio.core.errors import BackendUnavailableError, BadInputError, JobFailedError, StudioError
from studio.core.jobs.protocol import JobContext, job, job_kind


@dataclass
class SegmentTiming:
    """One segment's figures over the timed runs (medians), with its boundary traffic."""

    index: int
    backend: str
    nodes: int
    run_ms: float
    boundary_ms: float
    boundary_in_bytes: int
    run_ms_all: list[float] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    cpu_fallback_disabled: bool = False  # QNN segments: ORT refused to put any node on the CPU

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PartitionedResult:
    """Outputs of the last run, per-segment timings and the segment layout that produced them."""

    outputs: dict[str, np.ndarray]
    timings: list[SegmentTiming]
    segments: list[dict[str, Any]]
    runs: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return sum(t.run_ms + t.boundary_ms for t in self.timings)

    def to_json(self) -> dict[str, Any]:
        """Timings and layout (outputs are described, not embedded: they go to .npz files)."""
        return {
            "schema_version": 1,
            "kind": "npu-studio.partitioned-run",
            "runs": self.runs,
            "total_ms": self.total_ms,
            "segments": self.segments,
            "timings": [t.to_json() for t in self.timings],
            "outputs": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in self.outputs.items()
            },
            "notes": list(self.notes),
        }


def random_feeds(graph: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs with the graph's (static) input shapes and dtypes."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for t in graph.inputs:
        if t.shape is None or any(not isinstance(d, int) or d <= 0 for d in t.shape):
            raise BadInputError(
                f"input '{t.name}' has dynamic shape {t.shape}: fix it with --input-shape"
            )
        feeds[t.name] = random_array(rng, t.shape, t.dtype or "float32")
    return feeds


def run_plan(
    model_path: str | Path,
    plan: Any,
    feeds: Mapping[str, np.ndarray] | None = None,
    ctx: JobContext | None = None,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    provider_options: Mapping[str, Mapping[str, str]] | None = None,
    runs: int = 1,
    warmup: int = 0,
    timeout_s: float = 600,
) -> PartitionedResult:
    """Split ``model_path`` along ``plan`` (a Plan or its JSON) and run the chain in the worker."""
    from studio.core.assignment.partition import split_segments, write_segment_models
    from studio.core.assignment.scoring import Plan
    from studio.core.model.graph import ModelGraph

    ctx = ctx or JobContext()
    if not isinstance(plan, Plan):
        plan = Plan.from_json(plan)
    # The plan remembers the input shapes it was made with (e.g. from --input-shape).
    graph = ModelGraph.load(model_path, input_shapes=input_shapes or plan.input_shapes or None)
    plan.check_against(graph)
    segments = split_segments(graph, plan.assignment)
    feeds = dict(feeds) if feeds is not None else random_feeds(graph)
    notes = []
    if plan.model_sha256 and plan.model_sha256 != graph.sha256():
        notes.append("the plan was made for a different file with the same node ids")
    with tempfile.TemporaryDirectory(prefix="studio-partition-") as tmp:
        folder = Path(tmp)
        write_segment_models(graph, segments, folder)
        outputs, timings = run_chain_in_worker(
            [s.to_json() for s in segments],
            feeds,
            folder,
            [t.name for t in graph.outputs],
            {k: dict(v) for k, v in (provider_options or {}).items()},
            ctx,
            runs=runs,
            warmup=warmup,
            timeout_s=timeout_s,
        )
    layout = [{**s.to_json(), "model_path": None, "nodes": len(s.node_ids)} for s in segments]
    return PartitionedResult(outputs, timings, layout, runs=int(runs), notes=notes)


def run_chain_in_worker(
    segments: list[dict[str, Any]],
    feeds: Mapping[str, np.ndarray],
    folder: Path,
    output_names: list[str],
    provider_options: Mapping[str, Mapping[str, str]],
    ctx: JobContext,
    *,
    runs: int,
    warmup: int,
    timeout_s: float,
    what: str = "",
) -> tuple[dict[str, np.ndarray], list[SegmentTiming]]:
    """Run segment models (``run_segments_job``) in the worker; arrays go through ``folder``.

    The one way both a plan's chain (``run_plan``) and a compiled bundle's chain
    (``workflows.plan_bundle``) reach the worker: feeds in ``feeds.npz``, the final outputs back
    in ``outputs.npz`` (arrays never cross as JSON), per-segment timings in the result.
    """
    from studio.core.jobs.client import run_in_worker

    np.savez(folder / "feeds.npz", **feeds)
    request = {
        "segments": segments,
        "feeds": str(folder / "feeds.npz"),
        "outputs": str(folder / "outputs.npz"),
        "output_names": list(output_names),
        "provider_options": {k: dict(v) for k, v in provider_options.items()},
        "runs": int(runs),
        "warmup": int(warmup),
    }
    ctx.progress(0.05, f"running {len(segments)} segment(s){what}")
    result = run_in_worker(job_kind(run_segments_job), request, ctx, timeout_s=timeout_s)
    with np.load(folder / "outputs.npz", allow_pickle=False) as data:
        outputs = {name: data[name] for name in data.files}
    return outputs, [SegmentTiming(**t) for t in result["timings"]]


def profile_plan(
    model_path: str | Path,
    plan: Any,
    feeds: Mapping[str, np.ndarray] | None = None,
    ctx: JobContext | None = None,
    *,
    runs: int = 10,
    warmup: int = 2,
    **kwargs: Any,
) -> dict[str, Any]:
    """Time a partitioned run: per segment and per boundary medians, and the end-to-end total."""
    result = run_plan(model_path, plan, feeds, ctx, runs=runs, warmup=warmup, **kwargs)
    return chain_profile_json(result)


def chain_profile_json(result: Any) -> dict[str, Any]:
    """A timed chain as a partitioned-profile record: per-segment and per-boundary medians
    (the same shape for ``profile --plan`` and a heterogeneous bundle's chain)."""
    data = result.to_json()
    data["kind"] = "npu-studio.partitioned-profile"
    data["boundaries"] = [
        {
            "into_segment": t.index,
            "backend": t.backend,
            "bytes": t.boundary_in_bytes,
            "ms": t.boundary_ms,
        }
        for t in result.timings
        if t.index > 0
    ]
    data["note"] = (
        "emulated where HTP runs on x86-64: wall-clock on this host, medians over the timed "
        "runs; these are not phone times"
    )
    return data


# ----- inside the worker ----------------------------------------------------------------------
def _open(seg: Mapping[str, Any], options: Mapping[str, Mapping[str, str]]) -> tuple[Any, Any]:
    from studio.core.engine.sessions import make_session

    backend = str(seg["backend"])
    label = f"segment {seg['index']} ({backend.upper()}, {len(seg['node_ids'])} nodes from "
    label += f"'{seg['node_ids'][0]}' to '{seg['node_ids'][-1]}')"
    try:
        return make_session(
            seg["model_path"],
            backend,
            provider_options=dict(options.get(backend, {})),
            disable_cpu_fallback=bool(seg.get("disable_cpu_fallback", backend != "cpu")),
        )
    except StudioError as exc:
        reason = str(exc)
        if backend != "cpu":  # ORT's exception is generic; the EP's verbose log names the cause
            from studio.core.assignment.probe import compile_verbose

            found = compile_verbose(
                seg["model_path"], backend, dict(options.get(backend, {})), True
            )
            reason = found.get("reason") or reason
        raise BackendUnavailableError(
            f"{label} could not start on {backend.upper()}: {reason}"
        ) from exc
    except Exception as exc:  # ORT's own exception types
        raise BackendUnavailableError(f"{label} could not start: {exc}") from exc


@job
def run_segments_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Open every segment's session, then run the chain ``warmup + runs`` times."""
    segments = request["segments"]
    options = request.get("provider_options") or {}
    sessions = []
    for i, seg in enumerate(segments):
        ctx.check_cancelled()
        sess, info = _open(seg, options)
        sessions.append((seg, sess, info))
        ctx.progress(0.1 + 0.3 * (i + 1) / len(segments), f"opened segment {i}")
    with np.load(request["feeds"], allow_pickle=False) as data:
        feeds = {name: data[name] for name in data.files}
    runs, warmup = max(1, int(request.get("runs", 1))), max(0, int(request.get("warmup", 0)))
    run_ms: list[list[float]] = [[] for _ in segments]
    boundary_ms: list[list[float]] = [[] for _ in segments]
    boundary_bytes = [0] * len(segments)
    values: dict[str, np.ndarray] = {}
    for r in range(warmup + runs):
        ctx.check_cancelled()
        values = dict(feeds)
        for seg, sess, _ in sessions:
            start = time.perf_counter()
            try:
                seg_feeds = {name: np.array(values[name], copy=True) for name in seg["inputs"]}
            except KeyError as exc:
                raise BadInputError(
                    f"segment {seg['index']} needs tensor {exc} that no input or segment produced"
                ) from exc
            handed = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            try:
                results = sess.run(seg["outputs"], seg_feeds)
            except Exception as exc:
                raise JobFailedError(
                    f"segment {seg['index']} ({seg['backend'].upper()}) failed during run "
                    f"{r + 1}: {exc}"
                ) from exc
            elapsed = (time.perf_counter() - start) * 1e3
            values.update(zip(seg["outputs"], results, strict=True))
            if r >= warmup:
                run_ms[seg["index"]].append(elapsed)
                boundary_ms[seg["index"]].append(handed if seg["index"] > 0 else 0.0)
                boundary_bytes[seg["index"]] = int(sum(a.nbytes for a in seg_feeds.values()))
        ctx.progress(0.4 + 0.6 * (r + 1) / (warmup + runs), f"run {r + 1}/{warmup + runs}")
    missing = [n for n in request["output_names"] if n not in values]
    if missing:
        raise BadInputError(f"no segment produced graph output(s) {', '.join(missing)}")
    np.savez(request["outputs"], **{n: values[n] for n in request["output_names"]})
    timings = [
        {
            "index": seg["index"],
            "backend": seg["backend"],
            "nodes": len(seg["node_ids"]),
            "run_ms": statistics.median(run_ms[seg["index"]]),
            "boundary_ms": statistics.median(boundary_ms[seg["index"]]),
            "boundary_in_bytes": boundary_bytes[seg["index"]],
            "run_ms_all": run_ms[seg["index"]],
            "providers": list(info.providers),
            "cpu_fallback_disabled": bool(info.cpu_fallback_disabled),
        }
        for seg, _, info in sessions
    ]
    return {"timings": timings}
