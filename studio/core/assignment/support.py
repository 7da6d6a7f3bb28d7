"""Which nodes each backend really accepts, and why not: asked of the real execution provider.

A hand-written op list goes stale with every QNN release and cannot see shapes, dtypes or
attributes, so support is measured: every node is compiled *on its own* on the backend (a
single-node model with the node's real input shapes and dtypes, keeping the Quantize/Dequantize
nodes around it for QDQ models) with CPU fallback disabled. Creation either succeeds (the backend
took the node) or fails, and the QNN EP's verbose log says why ("REASON : ..."). Nodes with the
same signature (op, attributes, shapes, dtypes, small constant inputs) share one probe, so a
200-node model needs a few dozen compiles. A second pass creates the whole model once with
fallback allowed and reads the EP's per-node-unit verdicts, which catches context effects.

Probes run in the worker process (a backend crash kills one probe, never the studio; the probes
after it continue in a fresh worker) and the report is cached on disk per model sha256, package
versions and options. Model-level limits (static shapes, precision, VTCM size) are part of the
answer as notes and per-node warnings.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.assignment import probe
from studio.core.assignment.plan import NodeSupport
from studio.core.atomic import atomic_write_json, read_json_strict
from studio.core.engine.registry import probe_job, versions
from studio.core.errors import BadInputError, ConfigError, JobCancelledError, StudioError
from studio.core.jobs.protocol import JobContext, job_kind
from studio.core.model.ops import QDQ_OPS, is_quantized_model

SCHEMA_VERSION = 1
MIB = 1024 * 1024
DEFAULT_VTCM_MB = 8
PROBE_JOB = job_kind(probe.probe_job)


@dataclass
class OpSupportReport:
    """Per-node, per-backend support for one model, plus what was probed and model-level notes."""

    model_sha256: str
    versions: dict[str, str]
    backends: dict[str, dict[str, Any]]  # name -> {"available": bool, "reason": str}
    nodes: dict[str, dict[str, NodeSupport]]  # node id -> backend -> support
    notes: list[str] = field(default_factory=list)
    probes: int = 0
    signatures: int = 0
    elapsed_s: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False

    def available(self) -> list[str]:
        return [b for b, s in self.backends.items() if s.get("available")]

    def rejected(self, backend: str) -> dict[str, str]:
        """Node id -> reason for every node ``backend`` refused."""
        return {
            n: per[backend].reason
            for n, per in self.nodes.items()
            if backend in per and not per[backend].supported
        }

    def tooltip(self, node_id: str) -> str:
        per = self.nodes.get(node_id, {})
        return "\n".join(s.tooltip(b) for b, s in per.items())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "npu-studio.op-support",
            "model_sha256": self.model_sha256,
            "versions": dict(self.versions),
            "backends": self.backends,
            "notes": list(self.notes),
            "probes": self.probes,
            "signatures": self.signatures,
            "elapsed_s": self.elapsed_s,
            "options": self.options,
            "nodes": {n: {b: s.to_json() for b, s in per.items()} for n, per in self.nodes.items()},
        }

    @classmethod
    def from_json(cls, data: Any, source: str = "<memory>") -> OpSupportReport:
        if not isinstance(data, dict) or data.get("kind") != "npu-studio.op-support":
            raise ConfigError("not an op-support report", path=source)
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(
                f"op-support report schema_version {data.get('schema_version')!r} "
                f"(expected {SCHEMA_VERSION})",
                path=source,
            )
        try:
            nodes = {
                str(n): {str(b): NodeSupport.from_json(s) for b, s in per.items()}
                for n, per in data["nodes"].items()
            }
            return cls(
                model_sha256=str(data["model_sha256"]),
                versions={str(k): str(v) for k, v in data.get("versions", {}).items()},
                backends=dict(data["backends"]),
                nodes=nodes,
                notes=[str(n) for n in data.get("notes", [])],
                probes=int(data.get("probes", 0)),
                signatures=int(data.get("signatures", 0)),
                elapsed_s=float(data.get("elapsed_s", 0.0)),
                options=dict(data.get("options", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"malformed op-support report: {exc}", path=source) from exc


# ----- availability ---------------------------------------------------------------------------
def backend_availability(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Availability of each backend: the registry's real tiny-session probe, in the worker.

    The probe is :func:`studio.core.engine.registry.probe_job` (the one availability probe). CPU
    is ORT's own EP. HTP/GPU are available only when a real session ran on them; otherwise the
    reason is the backend's own error (e.g. QNN_BACKEND_ERROR_CANNOT_INITIALIZE for GPU here).
    """
    from studio.core.jobs.client import run_in_worker

    wanted = list(names)
    try:
        result = run_in_worker(job_kind(probe_job), {"backends": wanted}, timeout_s=120)
        statuses = {
            str(s["name"]): {
                "available": bool(s["available"]),
                "reason": s.get("reason") if not s["available"] else s.get("note", ""),
            }
            for s in result["backends"]
        }
    except StudioError as exc:
        statuses = {b: {"available": False, "reason": f"probe failed: {exc}"} for b in wanted}
    found: dict[str, dict[str, Any]] = {}
    for name in wanted:
        status = statuses.get(name) or {"available": False, "reason": "not probed"}
        label = name.upper()
        if status.get("available"):
            found[name] = {"available": True, "reason": str(status.get("reason") or "")}
        else:
            found[name] = {
                "available": False,
                "reason": f"{label} unavailable: {status.get('reason')}",
            }
    return found


# ----- model-level limits ---------------------------------------------------------------------
def model_notes(graph: Any) -> list[str]:
    """Limits that hold for the whole model on HTP: static shapes and precision."""
    notes = []
    dynamic = graph.dynamic_inputs()
    if dynamic:
        names = ", ".join(f"{k} {v}" for k, v in dynamic.items())
        notes.append(
            f"HTP needs static shapes: input(s) {names} are dynamic; fix them with --input-shape"
        )
    if is_quantized_model(graph):
        notes.append("QDQ model: HTP runs the quantised nodes in int8/int16")
    else:
        notes.append(
            "float model: HTP runs float ops in fp16 (enable_htp_fp16_precision=1 with a "
            "soc_model on a device); quantise it (QDQ) for int8 speed and power"
        )
    return notes


def vtcm_warnings(graph: Any, node: Any, vtcm_mb: float) -> list[str]:
    """A node whose largest tensor exceeds VTCM spills to DDR on HTP (slower, not rejected)."""
    limit = vtcm_mb * MIB
    largest, name = 0, ""
    for t in list(node.inputs) + list(node.outputs):
        info = graph.tensors.get(t) if t else None
        size = (info.nbytes or 0) if info is not None else 0
        if size > largest:
            largest, name = size, t
    if largest > limit:
        return [
            f"tensor '{name}' is {largest / MIB:.1f} MB > VTCM {vtcm_mb:g} MB: it spills to DDR"
        ]
    return []


# ----- the probe ------------------------------------------------------------------------------
def cache_dir() -> Path:
    root = os.environ.get("NPU_STUDIO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "npu-studio"
    )
    return Path(root) / "opsupport"


def _cache_key(graph: Any, backends: list[str], options: dict[str, Any]) -> str:
    shapes = {t.name: t.shape for t in graph.inputs}
    blob = json.dumps(
        [graph.sha256(), versions(), backends, options, shapes], sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def probe_op_support(
    graph: Any,
    backends: Iterable[str] = ("htp", "gpu"),
    *,
    provider_options: Mapping[str, str] | None = None,
    vtcm_mb: float = DEFAULT_VTCM_MB,
    ctx: JobContext | None = None,
    use_cache: bool = True,
    availability: Mapping[str, Mapping[str, Any]] | None = None,
    isolate: str = "unconfirmed",
) -> OpSupportReport:
    """Probe every node of ``graph`` (a ModelGraph) on ``backends`` (CPU is always included).

    ``availability`` (name -> {"available", "reason"}) skips the backend probe when the caller
    already has it. Unavailable backends get every node marked unsupported with the backend's
    real error as the reason, so nothing is ever shown as supported that was not compiled.
    """
    ctx = ctx or JobContext()
    started = time.perf_counter()
    names = [b for b in dict.fromkeys([*backends, "cpu"])]
    options = {str(k): str(v) for k, v in (provider_options or {}).items()}
    if isolate not in ("unconfirmed", "all"):
        raise BadInputError(f"isolate must be 'unconfirmed' or 'all', not {isolate!r}")
    key = _cache_key(graph, names, {**options, "vtcm_mb": vtcm_mb, "isolate": isolate})
    cached = cache_dir() / f"{key}.json"
    if use_cache and cached.is_file():
        try:
            report = OpSupportReport.from_json(read_json_strict(cached), str(cached))
            report.from_cache = True
            ctx.log(f"op support from cache {cached}")
            return report
        except StudioError:
            pass  # a stale or damaged cache entry is simply re-probed
    ctx.progress(0.0, "checking backends")
    status = dict(availability) if availability is not None else backend_availability(names)
    status["cpu"] = dict(status.get("cpu") or {"available": True, "reason": ""})
    nodes: dict[str, dict[str, NodeSupport]] = {
        n.id: {} for n in graph.nodes if not (n.op_type == "Constant" and not n.inputs)
    }
    report = OpSupportReport(
        model_sha256=graph.sha256(),
        versions=versions(),
        backends={
            b: dict(status.get(b, {"available": False, "reason": "not probed"})) for b in names
        },
        nodes=nodes,
        notes=model_notes(graph),
        options={**options, "vtcm_mb": vtcm_mb, "isolate": isolate},
    )
    qnn = [b for b in names if b != "cpu"]
    for i, backend in enumerate(qnn):
        info = report.backends[backend]
        if not info.get("available"):
            for per in nodes.values():
                per[backend] = NodeSupport(False, str(info.get("reason", "")), "backend")
            continue
        _probe_backend(graph, backend, options, report, ctx, (i, len(qnn)), isolate)
        for node in graph.nodes:
            if backend == "htp" and node.id in nodes:
                nodes[node.id][backend].warnings.extend(vtcm_warnings(graph, node, vtcm_mb))
    for per in nodes.values():
        per["cpu"] = NodeSupport(True, "ONNX Runtime CPU EP (reference)", "reference")
    report.elapsed_s = round(time.perf_counter() - started, 3)
    ctx.progress(1.0, "op support probed")
    try:  # a fresh probe always refreshes the cache; use_cache only controls reading it
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cached, report.to_json())
    except (OSError, StudioError) as exc:
        ctx.log(f"could not cache op support in {cached}: {exc}")
    return report


def _probe_backend(
    graph: Any,
    backend: str,
    options: dict[str, str],
    report: OpSupportReport,
    ctx: JobContext,
    position: tuple[int, int],
    isolate: str,
) -> None:
    """Whole-model compile plus single-node probes for ``backend``, surviving backend crashes.

    Each worker appends its results to a JSON-lines file; when a probe crashes the worker, the
    finished results are kept, the crashing probe is marked with the crash message, and a fresh
    worker continues with the rest.
    """
    from studio.core.jobs.client import run_in_worker

    full_model = probe.load_full_model(graph)
    with tempfile.TemporaryDirectory(prefix="studio-opsupport-") as tmp:
        folder = Path(tmp)
        groups, failures = probe.write_probes(graph, full_model, folder)
        whole = folder / "whole.onnx"
        probe.write_named_model(graph, full_model, whole)
        items = [{"key": k, "path": str(p), "node_ids": ids} for k, (p, ids) in groups.items()]
        report.signatures += len(groups)
        results: dict[str, dict[str, Any]] = {}
        whole_result: dict[str, Any] | None = None
        pending = list(items)
        for attempt in range(6):
            request = {
                "backend": backend,
                "provider_options": options,
                "probes": pending,
                "whole_model": str(whole),
                "whole_result": whole_result,
                "isolate": isolate,
                "results_file": str(folder / f"results-{attempt}.jsonl"),
            }
            sub = JobContext(
                on_progress=lambda f, t: ctx.progress(
                    (position[0] + f) / max(position[1], 1), f"{backend.upper()}: {t}"
                ),
                token=ctx.token,
            )
            try:
                out = run_in_worker(PROBE_JOB, request, sub, timeout_s=600)
            except JobCancelledError:
                raise
            except StudioError as exc:
                done, whole_done, current = probe.read_partial(Path(request["results_file"]))
                results.update(done)
                whole_result = whole_done or whole_result
                if current is None:
                    raise
                crash = {"ok": False, "reason": f"the backend crashed compiling it: {exc}"}
                if current == "__whole__":
                    whole_result = {**crash, "verdicts": {}, "off_qnn": []}
                else:
                    results[current] = crash
                pending = [p for p in pending if p["key"] not in results]
                ctx.log(f"{backend.upper()} probe worker crashed; continuing: {exc}")
                continue
            results.update(out["probes"])
            whole_result = out.get("whole") or whole_result
            break
        report.probes += sum(1 for r in results.values() if not r.get("skipped"))
    whole_result = whole_result or {"ok": False, "reason": "not run", "verdicts": {}}
    verdicts = {k: tuple(v) for k, v in (whole_result.get("verdicts") or {}).items()}
    off_qnn = set(whole_result.get("off_qnn") or [])
    for key, (_, node_ids) in groups.items():
        res = results.get(key, {"ok": False, "reason": "not probed"})
        for node_id in node_ids:
            is_qdq = graph.node_by_id[node_id].op_type in QDQ_OPS
            found = _combine(node_id, res, verdicts, is_qdq)
            if found.supported and node_id in off_qnn and found.source != "model":
                found.warnings.append("ORT left it to the CPU EP in the full-model compile")
            report.nodes[node_id][backend] = found
    for node_id, reason in failures.items():
        report.nodes[node_id][backend] = NodeSupport(False, reason, "probe")
    for node in graph.nodes:
        owner = probe.qdq_owner(graph, node)
        if owner is not None and backend in report.nodes.get(owner, {}):
            verdict = report.nodes[owner][backend]
            report.nodes[node.id][backend] = NodeSupport(
                verdict.supported, f"part of the QDQ unit of '{owner}': {verdict.reason}", "unit"
            )
    if not whole_result.get("ok"):
        report.notes.append(
            f"{backend.upper()}: the whole model did not compile with CPU fallback allowed: "
            f"{whole_result.get('reason', '')}"
        )


def _combine(
    node_id: str, res: Mapping[str, Any], verdicts: Mapping[str, Any], is_qdq: bool
) -> NodeSupport:
    """Merge a node's own probe with the full-model verdict (a failure in either rejects it)."""
    verdict = verdicts.get(node_id)
    if res.get("skipped"):
        return NodeSupport(True, "placed on QNN in the full-model compile", "model")
    if not res.get("ok"):
        if is_qdq and verdict is not None and verdict[0]:
            # A lone Q/DQ is never offloaded by itself, but in the model it joins a partition.
            return NodeSupport(
                True, f"passed QNN validation in the model (alone: {res.get('reason')})", "model"
            )
        return NodeSupport(False, str(res.get("reason") or "rejected"), "probe")
    if verdict is not None and not verdict[0]:
        return NodeSupport(False, f"in the full model: {verdict[1]}", "model")
    return NodeSupport(True, "compiled alone" + ("" if verdict is None else " and in the model"))


def support_map(report: OpSupportReport) -> dict[str, dict[str, Any]]:
    """Node id -> backend -> NodeSupport, the form the assignment consumes (one type for both)."""
    return {n: dict(per) for n, per in report.nodes.items()}
