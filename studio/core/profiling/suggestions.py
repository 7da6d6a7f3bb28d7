"""Bottlenecks and what to try, derived only from the measured run and the model's own structure.

Every suggestion names its node(s) and carries the numbers it rests on (``evidence``), so a
reader can check it; nothing here is a generic tip. Rules:

* ``hotspot``: the top-N layers by share of the run's total.
* ``depthwise``: a heavy standard k×k Conv whose depthwise-separable replacement would need far
  fewer MACs (``1/C_out + 1/k²`` of them).
* ``bits16``: layers on 16-bit activations (from the QDQ model's zero-point types) that take a
  large share or cost more cycles per MAC than 8-bit layers of the same op type.
* ``cpu_fallback``: nodes ORT ran on the CPU EP while the run targeted a QNN backend, with their
  measured time against the QNN partition's.
* ``layout`` / ``io_quant``: transposes the backend inserted, and quantize/dequantize at graph
  inputs/outputs, with their share.
* ``cycles_per_mac``: layers whose cycles per MAC are far above the model's median.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from studio.core.model.ops import QDQ_OPS
from studio.core.profiling.records import MEASURE_CYCLES, MEASURE_TIME, LayerRow, ProfileRun


@dataclass
class Suggestion:
    kind: str
    title: str
    nodes: list[str]
    evidence: dict[str, Any]
    text: str
    impact: float = 0.0  # share of the run's total this concerns (for ordering)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100.0 * x:.1f}%"


def measure_words(measure: str | None) -> str:
    """What a share is a share of, in words: "all cycles", "the measured time" (never a key)."""
    if measure == MEASURE_CYCLES:
        return "all cycles"
    if measure == MEASURE_TIME:
        return "the measured time"
    return "the total"


def fmt_us(micros: float) -> str:
    """A duration in µs below a millisecond, in ms above: "850.2 µs", "1.23 ms"."""
    if abs(micros) >= 1000.0:
        return f"{micros / 1000.0:,.3g} ms" if abs(micros) < 1e5 else f"{micros / 1000.0:,.0f} ms"
    return f"{micros:,.1f} µs"


def _fmt_value(row: LayerRow) -> str:
    if row.cycles is not None:
        return f"{row.cycles:,.0f} cycles"
    if row.time_us is not None:
        return fmt_us(row.time_us)
    return "no figure"


def _about(row: LayerRow, kind: str, title: str, evidence: dict[str, Any], text: str) -> Suggestion:
    """A suggestion about one measured layer: it names that node and weighs by its share."""
    return Suggestion(kind, title, [row.node_id], evidence, text, impact=row.share or 0.0)


def _share_of(row: LayerRow) -> str:
    """ "40.5% of the measured time (1.23 ms)": share, what it is a share of, and the figure."""
    return f"{_pct(row.share)} of {measure_words(row.measure)} ({_fmt_value(row)})"


def activation_bits(graph: Any) -> dict[str, int]:
    """Bit width of each activation tensor a QDQ model quantises: {tensor fed to Q: bits}.

    Also maps each DequantizeLinear output to the same width, so a compute node's inputs can be
    looked up directly. Weights (Q/DQ of initializers) are left out: they are not activations.
    """
    bits: dict[str, int] = {}
    for node in graph.nodes:
        if node.op_type not in QDQ_OPS or len(node.inputs) < 3:
            continue
        zp = graph.tensors.get(node.inputs[2])
        width = {"uint16": 16, "int16": 16, "uint8": 8, "int8": 8, "int4": 4, "uint4": 4}.get(
            (zp.dtype if zp else "") or ""
        )
        if width is None:
            continue
        src = graph.tensors.get(node.inputs[0])
        if src is not None and src.is_initializer:
            continue
        for t in (*node.inputs[:1], *node.outputs):
            bits[t] = width
    return bits


def _row_bits(graph: Any, row: LayerRow, bits: dict[str, int]) -> int | None:
    node = graph.node_by_id.get(row.node_id)
    if node is None:
        return None
    widths = [bits[t] for t in (*node.inputs, *node.outputs) if t in bits]
    return max(widths) if widths else None


def _depthwise(graph: Any, row: LayerRow, min_share: float) -> Suggestion | None:
    node = graph.node_by_id.get(row.node_id)
    if node is None or node.op_type != "Conv" or (row.share or 0) < min_share:
        return None
    if int(node.attributes.get("group", 1) or 1) != 1 or len(node.inputs) < 2:
        return None
    w = graph.tensors.get(node.inputs[1])
    y = graph.tensors.get(node.outputs[0])
    if w is None or y is None or not w.shape or not y.shape or len(w.shape) != 4:
        return None
    if not all(isinstance(d, int) and d > 0 for d in (*w.shape, *y.shape)):
        return None
    c_out, c_in, kh, kw = w.shape
    if kh * kw < 4 or c_in < 4:
        return None
    spatial = 1
    for d in y.shape[2:]:
        spatial *= d
    batch = y.shape[0]
    std = batch * spatial * c_out * c_in * kh * kw
    dws = batch * spatial * c_in * kh * kw + batch * spatial * c_in * c_out
    ratio = dws / std
    if ratio > 0.5:
        return None
    return _about(
        row,
        "depthwise",
        f"{row.node_id}: a {kh}x{kw} standard Conv ({c_in}->{c_out} ch) could be depthwise-separable",
        {
            "share": row.share,
            "value": row.value,
            "unit": row.measure,
            "macs": std,
            "depthwise_separable_macs": dws,
            "mac_ratio": ratio,
        },
        f"{row.node_id} takes {_share_of(row)} for "
        f"{std:,} MACs. A depthwise {kh}x{kw} + pointwise 1x1 pair would need {dws:,} MACs "
        f"({ratio:.0%} of it); this changes the model and needs retraining or fine-tuning.",
    )


def suggest(
    run: ProfileRun, graph: Any | None = None, *, top_n: int = 5, min_share: float = 0.05
) -> list[Suggestion]:
    """Suggestions for ``run``; ``graph`` (the profiled model's ModelGraph) enables structural rules."""
    out: list[Suggestion] = []
    for r in run.ranked()[:top_n]:
        if (r.share or 0) < 0.02:
            continue
        evidence = {
            "share": r.share,
            "value": r.value,
            "unit": r.measure,
            "macs": r.macs,
            "cycles_per_mac": r.cycles_per_mac,
            "backend": r.backend,
        }
        text = (
            f"{r.node_id} ({r.op_type}, on {r.backend.upper()}) takes {_share_of(r)}"
            + (f", {r.macs:,} MACs" if r.macs else "")
            + (f", {r.cycles_per_mac:.3g} cycles/MAC" if r.cycles_per_mac else "")
            + (" (inserted by the backend)" if r.inserted else "")
        )
        out.append(
            _about(r, "hotspot", f"{r.node_id} ({r.op_type}) takes {_pct(r.share)}", evidence, text)
        )
    out.extend(_latency_shape(run))
    out.extend(_fallback(run))
    out.extend(_inserted(run, graph))
    out.extend(_cycles_per_mac(run, graph))
    if graph is not None:
        for r in run.layers:
            s = _depthwise(graph, r, max(min_share, 0.10))
            if s:
                out.append(s)
        out.extend(_bits16(run, graph, min_share))
    return out


def _latency_shape(run: ProfileRun) -> list[Suggestion]:
    """Tail latency and drift over a sustained run: what the distribution itself shows."""
    out: list[Suggestion] = []
    s = run.stats
    if s.count >= 20 and s.p50_ms > 0 and s.p99_ms > 2.0 * s.p50_ms:
        out.append(
            Suggestion(
                kind="tail_latency",
                title=f"Tail latency: p99 is {s.p99_ms / s.p50_ms:.1f}x the median",
                nodes=[],
                evidence={
                    "p50_ms": s.p50_ms,
                    "p95_ms": s.p95_ms,
                    "p99_ms": s.p99_ms,
                    "runs": s.count,
                },
                text=(
                    f"p50 {s.p50_ms:.3g} ms but p99 {s.p99_ms:.3g} ms over {s.count} runs: "
                    "occasional runs are much slower. On a shared host this is usually other "
                    "processes; on a device, check for power/clock changes (an HTP performance "
                    "mode such as burst or sustained_high_performance keeps clocks up)."
                ),
                impact=min(1.0, s.p99_ms / s.p50_ms / 10.0),
            )
        )
    bins = [b for b in run.timeline if b.get("count", 0) >= 3]
    if len(bins) >= 4:
        first, last = bins[0]["mean_ms"], bins[-1]["mean_ms"]
        if first > 0 and last > 1.2 * first:
            out.append(
                Suggestion(
                    kind="drift",
                    title=f"Latency rose {last / first - 1:.0%} over the run",
                    nodes=[],
                    evidence={
                        "first_bin_mean_ms": first,
                        "last_bin_mean_ms": last,
                        "bins": len(bins),
                        "wall_s": s.wall_s,
                    },
                    text=(
                        f"Mean latency went from {first:.3g} ms in the first time bin to "
                        f"{last:.3g} ms in the last ({len(bins)} bins over {s.wall_s:.1f} s): "
                        "sustained load slows this backend down (thermal or power throttling "
                        "on a device; contention on a shared host). Quote sustained figures, "
                        "not the first seconds."
                    ),
                    impact=min(1.0, last / first - 1),
                )
            )
    return out


def _fallback(run: ProfileRun) -> list[Suggestion]:
    if run.backend == "cpu":
        return []
    rows = [r for r in run.layers if r.backend == "cpu"]
    if not rows:
        return []
    cpu_us = sum(r.time_us or 0.0 for r in rows)
    qnn_us = (run.backend_stats.get("qnn_partition_wall_us") or {}).get("p50")
    mean_us = run.stats.mean_ms * 1000.0
    names = [r.node_id for r in rows]
    return [
        Suggestion(
            kind="cpu_fallback",
            title=f"{len(rows)} node(s) ran on the CPU instead of {run.backend.upper()}",
            nodes=names,
            evidence={
                "cpu_us_per_run": cpu_us,
                "qnn_partition_us_p50": qnn_us,
                "mean_latency_us": mean_us,
                "op_types": sorted({r.op_type for r in rows}),
            },
            text=(
                f"{', '.join(names[:6])}{' ...' if len(names) > 6 else ''} ran on the CPU EP: "
                f"{fmt_us(cpu_us)} per run in the profiled pass"
                + (f" next to {fmt_us(qnn_us)} in the QNN partition" if qnn_us else "")
                + f" (mean latency {fmt_us(mean_us)}). Each switch between CPU and "
                f"{run.backend.upper()} also copies tensors. Quantise these nodes, replace the op "
                "with one the backend supports, or, for graph-input/-output Q/DQ, feed and read "
                "quantised tensors directly."
            ),
            impact=cpu_us / mean_us if mean_us else 0.0,
        )
    ]


def _io_quant_rows(run: ProfileRun, graph: Any | None) -> list[LayerRow]:
    rows = [r for r in run.extra if r.note.startswith("quantize/dequantize")]
    if graph is None:
        return rows
    inputs = {t.name for t in graph.inputs}
    outputs = {t.name for t in graph.outputs}
    for r in run.layers:
        node = graph.node_by_id.get(r.node_id)
        if node is None or node.op_type not in QDQ_OPS:
            continue
        if set(node.inputs) & inputs or set(node.outputs) & outputs:
            rows.append(r)
    return rows


def _inserted(run: ProfileRun, graph: Any | None) -> list[Suggestion]:
    out: list[Suggestion] = []
    layout = [r for r in run.extra if r.note.startswith("layout")]
    if layout:
        share = sum(r.share or 0 for r in layout)
        top = max(layout, key=lambda r: r.share or 0)
        out.append(
            Suggestion(
                kind="layout",
                title=f"{len(layout)} layout conversion(s) inserted by the backend: {_pct(share)}",
                nodes=[r.node_id for r in layout],
                evidence={"share": share, "largest": top.node_id, "largest_share": top.share},
                text=(
                    f"The backend inserted {', '.join(r.node_id for r in layout)} to convert "
                    f"layouts (NCHW <-> NHWC), {_pct(share)} of {measure_words(top.measure)}; the largest is "
                    f"{top.node_id} ({_fmt_value(top)}). If it sits at the graph input, export "
                    "the model with channels-last (NHWC) inputs so no transpose is needed."
                ),
                impact=share,
            )
        )
    io_rows = _io_quant_rows(run, graph)
    if io_rows:
        by_measure: dict[str, float] = {}
        for r in io_rows:
            by_measure[r.measure or "?"] = by_measure.get(r.measure or "?", 0.0) + (r.share or 0)
        cycles = sum(r.cycles or 0 for r in io_rows if r.cycles is not None)
        micros = sum(r.time_us or 0 for r in io_rows if r.time_us is not None)
        mean_us = run.stats.mean_ms * 1000.0
        parts_list = []
        if cycles:
            share = _pct(by_measure.get(MEASURE_CYCLES))
            parts_list.append(f"{cycles:,.0f} cycles ({share} of all cycles)")
        if micros:
            parts_list.append(
                f"{fmt_us(micros)} timed by ORT ({micros / mean_us:.1%} of the mean latency)"
                if mean_us
                else fmt_us(micros)
            )
        parts = " + ".join(parts_list) or "no measurable cost"
        out.append(
            Suggestion(
                kind="io_quant",
                title=f"Quantize/dequantize at the graph inputs/outputs: {parts}",
                nodes=[r.node_id for r in io_rows],
                evidence={
                    "rows": [
                        {
                            "node": r.node_id,
                            "backend": r.backend,
                            "value": r.value,
                            "unit": r.measure,
                        }
                        for r in io_rows
                    ],
                    "share_by_measure": by_measure,
                },
                text=(
                    "Converting float inputs/outputs costs "
                    + "; ".join(f"{r.node_id} {_fmt_value(r)} on {r.backend}" for r in io_rows)
                    + ". If the application can produce and consume quantised tensors, remove "
                    "these from the model and pass uint8/uint16 data directly."
                ),
                impact=max(by_measure.get("cycles", 0.0), micros / mean_us if mean_us else 0.0),
            )
        )
    return out


def _grouped(graph: Any | None, node_id: str) -> int:
    node = graph.node_by_id.get(node_id) if graph is not None else None
    if node is None or node.op_type not in ("Conv", "ConvTranspose"):
        return 1
    return int(node.attributes.get("group", 1) or 1)


def _cycles_per_mac(run: ProfileRun, graph: Any | None, factor: float = 3.0) -> list[Suggestion]:
    rows = [r for r in run.layers if r.cycles_per_mac is not None and r.macs > 0]
    if len(rows) < 3:
        return []
    median = statistics.median(r.cycles_per_mac for r in rows)  # type: ignore[misc]
    out = []
    for r in rows:
        if median > 0 and (r.cycles_per_mac or 0) > factor * median and (r.share or 0) >= 0.01:
            group = _grouped(graph, r.node_id)
            why = (
                f"it is a grouped convolution (group={group}), "
                "which does little arithmetic per byte moved and cannot keep the "
                "matrix unit busy; its MAC count understates its cost. Fusing it with "
                "the following pointwise Conv, or fewer/wider depthwise stages, helps."
                if group > 1
                else "check for shapes that tile poorly on HTP (channel counts not "
                "multiples of 32, odd spatial sizes), or an op variant the backend "
                "runs on its scalar path."
            )
            evidence = {
                "cycles_per_mac": r.cycles_per_mac,
                "median_cycles_per_mac": median,
                "cycles": r.cycles,
                "macs": r.macs,
                "share": r.share,
            }
            text = (
                f"{r.node_id} ({r.op_type}) spends {r.cycles_per_mac:.3g} cycles per MAC "
                f"against a model median of {median:.3g}: {why}"
            )
            title = f"{r.node_id}: {r.cycles_per_mac / median:.1f}x the median cycles per MAC"
            out.append(_about(r, "cycles_per_mac", title, evidence, text))
    return out


def _bits16(run: ProfileRun, graph: Any, min_share: float) -> list[Suggestion]:
    bits = activation_bits(graph)
    if not bits or run.backend == "cpu":
        return []
    rows16, cpm8 = [], {}
    for r in run.layers:
        b = _row_bits(graph, r, bits)
        if b == 16 and r.cycles is not None:
            rows16.append(r)
        elif b == 8 and r.cycles_per_mac:
            cpm8.setdefault(r.op_type, []).append(r.cycles_per_mac)
    out = []
    for r in rows16:
        peers = cpm8.get(r.op_type)
        peer = statistics.median(peers) if peers else None
        worse = peer is not None and r.cycles_per_mac is not None and r.cycles_per_mac > peer
        if (r.share or 0) < min_share and not worse:
            continue
        evidence = {
            "cycles": r.cycles,
            "share": r.share,
            "cycles_per_mac": r.cycles_per_mac,
            "median_cycles_per_mac_8bit_same_op": peer,
        }
        text = (
            f"{r.node_id} ({r.op_type}) uses 16-bit activations and takes {_share_of(r)}"
            + (
                f"; {r.cycles_per_mac:.3g} cycles/MAC vs {peer:.3g} for 8-bit {r.op_type} layers"
                if peer is not None and r.cycles_per_mac is not None
                else ""
            )
            + ". If its SQNR allows, try 8-bit activations here."
        )
        title = f"{r.node_id} runs on 16-bit activations ({_pct(r.share)})"
        out.append(_about(r, "bits16", title, evidence, text))
    return out
