"""The per-layer pass: a separate, short, profiled session whose figures are mapped to ONNX nodes.

Why separate from the latency loop: profiling costs time (QNN's detailed profiling and ORT's
kernel timer both add work to every run), so latencies are measured with profiling off and the
per-layer figures come from this pass. Its first run is discarded (VTCM acquire, power-on and
cache warm-up inflate it: the simulator reported 1.04 M cycles for an input quantize on the first
run and 0.62 M on the third). The simulator's counts also grow when the host is busy (a 3x3 Conv
read 1.0 M cycles on a quiet host, 2.3-6.3 M with two busy processes), so per op we keep the
lowest cycle count of the remaining runs (and the spread), and the median for ORT's µs.

* HTP: QNN profiler CSV (``profiling_level=detailed``) for per-op cycles, QNN's JSON graph dump to
  name ops, and ORT's profile JSON for nodes ORT placed on the CPU EP (fallback) and the wall time
  of each QNN partition.
* CPU: ORT's profile JSON only.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.engine.sessions import QNN_EP, make_session
from studio.core.jobs.protocol import JobContext
from studio.core.profiling.mapping import BackendOp, build_layer_rows
from studio.core.profiling.readers.ort_profile import OrtProfile, parse_ort_profile
from studio.core.profiling.readers.qnn_csv import QnnProfile, parse_qnn_csv
from studio.core.profiling.readers.qnn_dump import read_qnn_graph_dump
from studio.core.profiling.records import LayerRow
from studio.core.profiling.stats import value_stats


@dataclass
class LayerPass:
    """Rows, extra rows, unmapped node ids, backend figures and notes of one profiled pass."""

    layers: list[LayerRow] = field(default_factory=list)
    extra: list[LayerRow] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    backend_stats: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    notes: list[str] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def qnn_ops(
    profile: QnnProfile, skip_first: int = 1
) -> tuple[list[tuple[str, float, str, float, float]], int]:
    """Per-op figure over the blocks after the first ``skip_first``: [(name, value, unit, lo, hi)].

    Cycles: the MINIMUM over runs. On the x86-64 simulator a busy host only ever adds cycles
    (measured: a 3x3 Conv read 1.0 M cycles on a quiet host and 2.3-6.3 M with two busy
    processes), so the lowest reading is the closest to the uncontended cost. Other units: the
    median. ``lo``/``hi`` keep the spread. Op order is QNN's execution order.
    """
    blocks = profile.blocks[skip_first:] if len(profile.blocks) > skip_first else profile.blocks
    values: dict[str, list[float]] = {}
    units: dict[str, str] = {}
    for block in blocks:
        for op in block.ops:
            values.setdefault(op.name, []).append(op.value)
            units[op.name] = op.unit
    out = []
    for name, v in values.items():
        value = min(v) if units[name] == "CYCLES" else _median(v)
        out.append((name, value, units[name], min(v), max(v)))
    return out, len(blocks)


def ort_ops(
    profile: OrtProfile, skip_first: int = 1
) -> tuple[list[tuple[str, str, str, float]], int]:
    """Median kernel time per node over runs after the first: [(name, op_type, provider, µs)]."""
    runs = profile.runs[skip_first:] if len(profile.runs) > skip_first else profile.runs
    values: dict[str, list[float]] = {}
    meta: dict[str, tuple[str, str]] = {}
    for run in runs:
        per_run: dict[str, float] = {}
        for node in run.nodes:
            per_run[node.name] = per_run.get(node.name, 0.0) + node.dur_us
            meta[node.name] = (node.op_type, node.provider)
        for name, v in per_run.items():
            values.setdefault(name, []).append(v)
    return [(n, *meta[n], _median(v)) for n, v in values.items()], len(runs)


def ort_optimized_graph(
    model_path: str, session_kwargs: dict[str, Any], path: Path
) -> dict[str, tuple[str, list[str], list[str]]]:
    """{node name: (op type, inputs, outputs)} of the graph ORT's CPU EP really runs.

    ORT's profile names kernels after its *optimized* graph (fused nodes get new names such as
    ``SkipLayerNormalization`` or ``.../MatMulAddFusion``); that graph, saved by an identically
    configured CPU session, tells which tensors each kernel reads and writes, and so which ONNX
    nodes it replaced. Empty if ORT cannot save it (the mapping then works on names alone).
    """
    import onnx
    import onnxruntime as ort

    from studio.core.engine.sessions import GRAPH_OPT_LEVELS

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(path)
    level = session_kwargs.get("graph_optimization_level")
    if level in GRAPH_OPT_LEVELS:
        so.graph_optimization_level = GRAPH_OPT_LEVELS[level]
    for key, value in (session_kwargs.get("session_config") or {}).items():
        so.add_session_config_entry(str(key), str(value))
    try:
        ort.InferenceSession(model_path, sess_options=so, providers=["CPUExecutionProvider"])
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # an unsaveable graph only weakens the mapping
        return {}
    finally:
        for extra in path.parent.glob(path.name + "*.data"):
            extra.unlink(missing_ok=True)
    return {n.name: (n.op_type, list(n.input), list(n.output)) for n in proto.graph.node if n.name}


def profile_layers(
    graph: Any,
    model_path: str,
    backend: str,
    feeds: dict[str, Any],
    *,
    session_kwargs: dict[str, Any] | None = None,
    disable_cpu_fallback: bool = False,
    runs: int = 3,
    workdir: str | Path | None = None,
    ctx: JobContext | None = None,
) -> LayerPass:
    """Run ``1 + runs`` profiled inferences in a fresh session and map the figures to nodes."""
    ctx = ctx or JobContext()
    keep = workdir is not None
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="studio-prof-")
    folder = Path(workdir) if keep else Path(tmp.name)  # type: ignore[union-attr]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _run_pass(
            graph,
            model_path,
            backend,
            feeds,
            folder,
            dict(session_kwargs or {}),
            disable_cpu_fallback,
            max(1, int(runs)),
            ctx,
            keep,
        )
    finally:
        if tmp is not None:
            tmp.cleanup()


def _run_pass(
    graph: Any,
    model_path: str,
    backend: str,
    feeds: dict[str, Any],
    folder: Path,
    session_kwargs: dict[str, Any],
    disable_cpu_fallback: bool,
    runs: int,
    ctx: JobContext,
    keep: bool,
) -> LayerPass:
    """One profiled session, then its rows: CPU-EP kernels from ORT, QNN ops from the CSV."""
    out = LayerPass()
    csv_path = folder / "qnn_profile.csv"
    dump_dir = folder / "qnn_graph"
    ort_json, info = _profiled_runs(
        model_path,
        backend,
        feeds,
        folder,
        (csv_path, dump_dir),
        session_kwargs,
        disable_cpu_fallback,
        runs,
        ctx,
    )
    ort = parse_ort_profile(ort_json)
    cpu_ops, n_ort = ort_ops(ort)
    ops = _cpu_ep_ops(cpu_ops, model_path, backend, session_kwargs, folder)
    if backend != "cpu":
        _qnn_rows(out, ops, ort, csv_path, dump_dir, backend)
    else:
        out.backend_stats = {
            "ort_run_us": value_stats([r.dur_us for r in (ort.runs[1:] or ort.runs)]),
            "session_initialization_us": ort.setup_us.get("session_initialization"),
        }
        out.source = (
            f"ORT profiler (enable_profiling): median kernel time per node over {n_ort} "
            f"profiled run(s) after 1 discarded, in a separate session from the latency loop"
        )
    out.backend_stats["providers"] = list(info.providers)
    out.layers, out.extra, out.unmapped = build_layer_rows(graph, ops)
    fallback = [r for r in out.layers if r.backend == "cpu" and backend != "cpu"]
    if fallback:
        out.notes.append(
            f"{len(fallback)} node(s) ran on the CPU EP, not on {backend.upper()}: "
            + ", ".join(r.node_id for r in fallback[:8])
        )
    if keep:
        out.artifacts = {"ort_profile": str(ort_json)}
        if backend != "cpu":
            out.artifacts.update({"qnn_csv": str(csv_path), "qnn_graph_dump": str(dump_dir)})
    return out


def _profiled_runs(
    model_path: str,
    backend: str,
    feeds: dict[str, Any],
    folder: Path,
    qnn_files: tuple[Path, Path],
    session_kwargs: dict[str, Any],
    disable_cpu_fallback: bool,
    runs: int,
    ctx: JobContext,
) -> tuple[str, Any]:
    """Run 1 + ``runs`` inferences with ORT's profiler (on QNN also its CSV and graph dump).

    Returns ORT's profile file and the session info; ``session_kwargs`` loses its
    provider_options (merged into the profiling ones here).
    """
    csv_path, dump_dir = qnn_files
    opts = dict(session_kwargs.pop("provider_options", None) or {})
    if backend != "cpu":
        if csv_path.exists():
            csv_path.unlink()  # the EP appends: a stale file would add another session's rows
        opts.update(
            {
                "profiling_level": "detailed",
                "profiling_file_path": str(csv_path),
                "dump_json_qnn_graph": "1",
                "json_qnn_graph_dir": str(dump_dir),
            }
        )
        dump_dir.mkdir(exist_ok=True)
    sess, info = make_session(
        model_path,
        backend,
        provider_options=opts,
        **session_kwargs,
        disable_cpu_fallback=disable_cpu_fallback,
        enable_profiling=True,
        profile_prefix=str(folder / "ort_profile"),
    )
    for i in range(1 + runs):
        ctx.check_cancelled()
        sess.run(None, feeds)
        ctx.progress((i + 1) / (1 + runs), f"profiled run {i + 1}/{1 + runs}")
    ort_json = sess.end_profiling()
    del sess  # the QNN EP flushes its CSV when the session goes
    return ort_json, info


def _cpu_ep_ops(
    cpu_ops: list[Any], model_path: str, backend: str, session_kwargs: dict[str, Any], folder: Path
) -> list[BackendOp]:
    """The kernels ORT ran on its CPU EP (a QNN partition's ops come from the CSV instead)."""
    optimized = (
        ort_optimized_graph(model_path, session_kwargs, folder / "ort_optimized.onnx")
        if backend == "cpu"
        else {}
    )
    ops: list[BackendOp] = []
    for name, op_type, provider, us in cpu_ops:
        if provider == QNN_EP:
            continue  # a whole QNN partition; its ops come from the CSV
        _, ins, outs = optimized.get(name, (op_type, [], []))
        ops.append(BackendOp(name, us, "US", "cpu", op_type=op_type, inputs=ins, outputs=outs))
    return ops


def _qnn_rows(
    out: LayerPass, ops: list[BackendOp], ort: Any, csv_path: Path, dump_dir: Path, backend: str
) -> None:
    """Add the QNN profiler's ops to ``ops``, and its totals, notes and source to ``out``."""
    qnn_partition_us = [
        sum(n.dur_us for n in r.nodes if n.provider == QNN_EP) for r in ort.runs[1:] or ort.runs
    ]
    qnn = parse_qnn_csv(csv_path)
    out.notes.extend(f"QNN CSV: {n}" for n in qnn.notes)
    dump = read_qnn_graph_dump(dump_dir)
    if not dump:
        out.notes.append("QNN graph dump unavailable: op names mapped by name only")
    q_ops, n_blocks = qnn_ops(qnn)
    for name, value, unit, lo, hi in q_ops:
        info_op = dump.get(name)
        ops.append(
            BackendOp(
                name,
                value,
                unit,
                backend,
                spread=(lo, hi),
                op_type=info_op.op_type if info_op else "",
                outputs=info_op.outputs if info_op else [],
                inputs=info_op.inputs if info_op else [],
            )
        )
    kept = qnn.blocks[1:] if len(qnn.blocks) > 1 else qnn.blocks
    out.backend_stats = {
        "accelerator_cycles": value_stats(
            [b.accelerator_cycles for b in kept if b.accelerator_cycles is not None]
        ),
        "accelerator_us": value_stats(
            [b.accelerator_us for b in kept if b.accelerator_us is not None]
        ),
        "qnn_execute_us": value_stats([b.execute_us for b in kept if b.execute_us is not None]),
        "qnn_partition_wall_us": value_stats(qnn_partition_us),
        "qnn_finalize_us": qnn.setup_us("QNN (finalize) time"),
        "blocks": len(qnn.blocks),
    }
    totals = [b.accelerator_cycles for b in kept if b.accelerator_cycles]
    if len(totals) > 1 and max(totals) > 1.25 * min(totals):
        out.notes.append(
            f"the simulator's cycle counts varied {max(totals) / min(totals):.1f}x across the "
            f"{len(totals)} profiled runs (accelerator total {min(totals):,.0f} to "
            f"{max(totals):,.0f} cycles): the host was busy, which inflates simulated cycles. "
            "Per-op figures are the lowest reading; re-profile on a quiet machine before "
            "comparing runs"
        )
    cpu_nodes = [o for o in ops if o.backend == "cpu"]
    out.source = (
        f"QNN profiler CSV (profiling_level=detailed): lowest cycles per op over {n_blocks} "
        f"profiled run(s) after 1 discarded, in a separate session from the latency loop"
    )
    if cpu_nodes:
        out.source += f"; {len(cpu_nodes)} node(s) ORT placed on the CPU EP timed by ORT's profiler"
