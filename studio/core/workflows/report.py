"""The stakeholder report: ONE self-contained HTML file (inline SVG charts, data exports inside).

Who reads it: someone who was not at the machine. So it says what was measured and how (backend,
options, host, simulated or not, profiling pass separate from the latency loop), shows the
latency distribution and the slowest layers, and ends with suggestions that cite their numbers.
No scripts, no external resources: it opens offline, prints, and survives e-mail. The CSV/JSON
exports ride along as ``data:`` links so the file is the whole deliverable.

The graph section is, from the studio, a PNG of the studio's own graph view with the heat overlay
(the whole laid-out graph and its legend, rendered by the UI and handed in as bytes): the real
graph, whatever its size. Headless (CLI, pipeline) there is no graph view, so the report draws its
own small SVG instead (the hottest path only for graphs over ``max_graph_nodes``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import struct
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_text
from studio.core.errors import BadInputError
from studio.core.profiling.columns import Column, column, report_columns
from studio.core.profiling.compare import compare_runs
from studio.core.profiling.export import latencies_csv, layers_csv, run_json, runs_csv
from studio.core.profiling.graph_svg import heat_color, heat_graph_svg
from studio.core.profiling.records import LayerRow, ProfileRun
from studio.core.profiling.suggestions import Suggestion, measure_words, suggest
from studio.core.profiling.svg import esc, hbar_svg, histogram_svg, line_svg
from studio.core.workflows.summary import (
    SUMMARY_CSS,
    accuracy_html,
    appendix_html,
    headline_html,
    warnings_html,
)

CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;border-bottom:1px solid #ccc;
padding-bottom:3px;margin-top:28px} table{border-collapse:collapse;margin:8px 0;font-size:12px}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{background:#fff7e0;border-left:4px solid #e0a800;padding:6px 10px;margin:6px 0;font-size:13px}
.muted{color:#777;font-size:12px} .sugg{margin:8px 0;padding:6px 10px;border-left:4px solid #3b7dd8;
background:#f5f8fd} .sugg b{display:block} .charts svg{margin:6px 8px 6px 0;vertical-align:top}
.scroll{overflow-x:auto} figure{margin:8px 0} figure img{max-width:100%;height:auto;
border:1px solid #ccc} figcaption{font-size:12px;color:#555;margin-top:4px}
"""
TOP_N = 15


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{digits}g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return esc(v)


def _kv(data: dict[str, Any], depth: int = 0) -> str:
    """A nested dict as a two-column table (lists of dicts become sub-tables)."""
    rows = []
    for k, v in data.items():
        if isinstance(v, dict) and depth < 3:
            cell = _kv(v, depth + 1) if v else "–"
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and depth < 3:
            cell = _records(v)
        elif isinstance(v, list):
            cell = esc(", ".join(str(x) for x in v)) or "–"
        else:
            cell = _num(v)
        rows.append(f"<tr><th>{esc(k)}</th><td>{cell}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _records(items: list[dict[str, Any]], limit: int = 200) -> str:
    keys: list[str] = []
    for it in items[:limit]:
        keys += [k for k in it if k not in keys]
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    body = []
    for it in items[:limit]:
        cells = []
        for k in keys:
            v = it.get(k)
            cls = " class='num'" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
            text = esc(", ".join(map(str, v))) if isinstance(v, list) else _num(v)
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f"<p class='muted'>{len(items) - limit} more rows in the exports.</p>"
        if len(items) > limit
        else ""
    )
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>{more}"


def _column_table(rows: list[LayerRow], cols: list[Column]) -> str:
    """Per-layer rows under profiler columns (``profiling/columns.py``), as the UI table shows them."""
    head = "".join(
        f"<th title='{esc(c.tip)}'>{esc(c.label)}</th>" if c.tip else f"<th>{esc(c.label)}</th>"
        for c in cols
    )
    body = []
    for r in rows:
        cells = []
        for c in cols:
            cls = " class='num'" if c.numeric else ""
            cells.append(f"<td{cls}>{esc(c.text(r)) or '–'}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def _data_link(name: str, mime: str, text: str) -> str:
    b64 = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"<a download='{esc(name)}' href='data:{mime};base64,{b64}'>{esc(name)}</a>"


LABELS = {
    "model_load_s": "load + check model (s)",
    "qnn_register_s": "load QNN EP library (s)",
    "session_create_s": "create session / compile graph (s)",
    "rss_session_delta_mb": "memory added by the session (MB)",
    "first_run_ms": "first inference (ms)",
    "qnn_partitions_run": "QNN partitions in the first run",
    "cpu_kernels_run": "CPU kernels in the first run",
    "cpu_percent": "CPU use over the loop (% of one core)",
    "cpu_s": "CPU time over the loop (s)",
    "logical_cpus": "logical CPUs",
    "rss_start_mb": "RSS at loop start (MB)",
    "rss_end_mb": "RSS at loop end (MB)",
    "rss_max_mb": "RSS max during loop (MB)",
    "rss_delta_mb": "RSS change over loop (MB)",
    "rss_before_session_mb": "RSS before the session (MB)",
    "peak_rss_mb": "peak RSS of the process (MB)",
}


def _labelled(data: dict[str, Any]) -> dict[str, Any]:
    return {LABELS.get(k, k): v for k, v in data.items()}


def _latency_section(run: ProfileRun) -> str:
    s = run.stats
    stats = {
        "runs": s.count,
        "mean (ms)": s.mean_ms,
        "std (ms)": s.std_ms,
        "p50 (ms)": s.p50_ms,
        "p95 (ms)": s.p95_ms,
        "p99 (ms)": s.p99_ms,
        "min (ms)": s.min_ms,
        "max (ms)": s.max_ms,
        "loop wall (s)": s.wall_s,
        "throughput (inf/s)": s.throughput_ips,
    }
    hist = histogram_svg(
        run.latencies_ms,
        {"p50": s.p50_ms, "p95": s.p95_ms, "p99": s.p99_ms},
        title=f"Latency distribution ({run.label})",
    )
    if len(run.latency_offsets_s) == len(run.latencies_ms):
        xs, xlabel = run.latency_offsets_s, "seconds into the loop"
    else:
        xs, xlabel = [i * run.latency_stride for i in range(len(run.latencies_ms))], "run"
    series = {"per run": (xs, run.latencies_ms)}
    over_time = line_svg(series, title="Latency over the loop", xlabel=xlabel, ylabel="ms")
    charts = [hist, over_time]
    if run.options.get("duration_s") or len(run.timeline) >= 4:
        t = [b["t_s"] for b in run.timeline]
        charts.append(
            line_svg(
                {
                    "mean": (t, [b["mean_ms"] for b in run.timeline]),
                    "p95": (t, [b["p95_ms"] for b in run.timeline]),
                },
                title="Latency per time bin (mean, p95)",
                xlabel="seconds",
                ylabel="ms",
            )
        )
    return (
        "<h2>Latency</h2><div style='display:flex;gap:24px;flex-wrap:wrap'>"
        f"<div><b>Warm runs</b>{_kv(stats)}</div><div><b>Set-up</b>{_kv(_labelled(run.setup))}"
        f"</div><div><b>Resources (the measuring process)</b>{_kv(_labelled(run.resources))}"
        "</div></div>"
        f"<div class='charts'>{''.join(charts)}</div>"
    )


def _layers_section(run: ProfileRun) -> str:
    measure = run.primary_measure
    if measure is None:
        return "<h2>Slowest layers</h2><p>No per-layer figures were collected for this run.</p>"
    unit = "cycles" if measure == "cycles" else "µs"
    ranked = run.ranked()
    total = sum(r.value or 0 for r in ranked) or 1.0
    bars = [
        (f"{r.node_id} ({r.op_type})", float(r.value or 0), heat_color((r.value or 0) / total * 2))
        for r in ranked[:TOP_N]
    ]
    by_op: dict[str, float] = {}
    for r in ranked:
        key = r.op_type + (" (inserted)" if r.inserted else "")
        by_op[key] = by_op.get(key, 0.0) + float(r.value or 0)
    ops = sorted(by_op.items(), key=lambda kv: kv[1], reverse=True)
    op_bars = [(f"{k} {v / total:.1%}", v, "") for k, v in ops[:TOP_N]]
    table = _column_table(ranked[:TOP_N], report_columns(run))
    others = [r for r in run.all_rows if r.measure != measure and r.measure]
    other_html = ""
    if others:
        other_html = (
            "<p><b>Nodes measured in another unit</b> (e.g. CPU fallback timed by ORT):</p>"
        )
        keys = ("node_id", "op_type", "backend", "time_us")
        other_html += _column_table(others, [column(k) for k in keys])
    return (
        f"<h2>Slowest layers</h2><p class='muted'>{esc(run.layer_source)}</p>"
        f"<div class='charts'>{hbar_svg(bars, title=f'Top {len(bars)} layers', unit=unit)}"
        f"{hbar_svg(op_bars, title='By op type', unit=unit)}</div>{table}{other_html}"
        + (
            f"<p class='muted'>Not reported by the backend and not attributable: "
            f"{esc(', '.join(run.unmapped_nodes[:30]))}</p>"
            if run.unmapped_nodes
            else ""
        )
    )


def _rounded(value: Any) -> Any:
    """Evidence for display: floats to 4 significant digits (the record keeps full precision)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _evidence_text(evidence: dict[str, Any]) -> str:
    """``share 0.155 · value 18 · unit time us``: readable for a stakeholder, exact enough to check."""
    parts = []
    for key, value in _rounded(evidence).items():
        if value is None:
            continue
        shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
        parts.append(f"{key.replace('_', ' ')} {str(shown).replace('_', ' ')}")
    return " · ".join(parts)


def _suggestions_section(items: list[Suggestion]) -> str:
    if not items:
        return "<h2>Suggestions</h2><p>No bottleneck rule fired for this run.</p>"
    order = sorted(items, key=lambda s: (s.kind == "hotspot", -s.impact))
    blocks = [
        f"<div class='sugg'><b>{esc(s.title)}</b>{esc(s.text)}"
        f"<div class='muted'>nodes: {esc(', '.join(s.nodes[:10]))} · evidence: "
        f"{esc(_evidence_text(s.evidence)[:400])}</div></div>"
        for s in order
    ]
    return "<h2>Bottlenecks and suggestions</h2>" + "".join(blocks)


def _comparison_section(runs: list[ProfileRun]) -> str:
    comp = compare_runs(runs)
    summary = _records(
        [
            {
                "run": r["label"],
                "backend": r["backend"],
                "mean ms": r["mean_ms"],
                "p95 ms": r["p95_ms"],
                "inf/s": r["throughput_ips"],
                "× baseline": r["mean_ratio_vs_baseline"],
                "accel cycles p50": r["accelerator_cycles_p50"],
            }
            for r in comp.runs
        ]
    )
    rows = []
    for row in comp.rows:
        item: dict[str, Any] = {"node": row.node_id, "op": row.op_type}
        for run, cell, dpp in zip(comp.runs, row.cells, row.share_delta_pp, strict=True):
            tag = run["label"]
            item[f"{tag} value"] = None if cell is None else cell.value
            item[f"{tag} unit"] = None if cell is None else cell.unit
            item[f"{tag} share %"] = (
                None if cell is None or cell.share is None else 100 * cell.share
            )
            item[f"{tag} Δ pp"] = dpp
        rows.append(item)
    link = _data_link("comparison.csv", "text/csv", comp.to_csv())
    return (
        f"<h2>Comparison of runs</h2>{summary}<p class='muted'>Per layer; the first run is the "
        f"baseline; Δ pp = change of share in percentage points. Export: {link}</p>{_records(rows)}"
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes, what: str = "graph picture") -> tuple[int, int]:
    """(width, height) from a PNG's header; BadInputError if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise BadInputError(f"{what} is not a PNG image ({len(data)} bytes, no PNG header)")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _png_bytes(png: bytes | str | Path) -> tuple[bytes, str]:
    """The PNG's bytes and a name for messages (the path, when one was given)."""
    if isinstance(png, (bytes, bytearray, memoryview)):
        return bytes(png), "graph picture"
    try:
        return Path(png).read_bytes(), f"graph picture {png}"
    except OSError as exc:
        raise BadInputError(f"cannot read the graph picture {png}: {exc.strerror or exc}") from exc


def default_png_caption(run: ProfileRun) -> str:
    """What the colour means when the caller did not say (it normally does: it chose the map)."""
    unit = "cycles" if run.primary_measure == "cycles" else "kernel time"
    return (
        "The studio's own graph view, whole graph fitted to the picture (in columns when too "
        "tall to read). Node colour: each node's "
        f"{unit} in this run (legend in the picture: range and unit); grey = no figure "
        "(fused, folded or not reported)."
    )


def _graph_png_section(png: bytes | str | Path, caption: str) -> str:
    data, what = _png_bytes(png)
    width, height = png_size(data, what)
    b64 = base64.b64encode(data).decode("ascii")
    return (
        "<h2>Where the time goes in the graph</h2><figure>"
        f"<img src='data:image/png;base64,{b64}' width='{width}' height='{height}' "
        f"alt='Model graph coloured by measured cost per node'>"
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def build_report(
    runs: list[ProfileRun],
    graph: Any | None = None,
    *,
    title: str | None = None,
    quantization: dict[str, Any] | None = None,
    assignment: dict[str, Any] | None = None,
    suggestions: list[Suggestion] | None = None,
    max_graph_nodes: int = 60,
    graph_png: bytes | str | Path | None = None,
    graph_png_caption: str | None = None,
    extra_sections: list[str] | None = None,
    headline: dict[str, Any] | None = None,
    accuracy: dict[str, Any] | None = None,
    accuracy_source: str = "",
    mixed_precision: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
    facts: dict[str, Any] | None = None,
) -> str:
    """The HTML text. ``runs[0]`` is the main run; ``graph`` is its ModelGraph (optional).

    Order, for a reader who was not there: the headline (``headline``: see
    ``summary.headline_html``), ONE box of warnings ranked by what they change (the runs' notes,
    the quantisation's warnings and ``warnings``), the accuracy section (``accuracy``: an
    SqnrReport's JSON on held-out data from ``accuracy_source``; ``mixed_precision``: auto-mix
    curve points), then latency, layers, suggestions, the graph and the comparison; model
    details, quantisation and measurement options and host ``facts`` go to the appendix.

    ``graph_png`` (PNG bytes or a path): the studio's graph view with the run's heat overlay; it
    replaces the drawn SVG, embedded as a ``data:`` URI so the file stays self-contained.
    ``graph_png_caption`` says what its colours mean (default: ``default_png_caption``).
    ``extra_sections``: HTML fragments from layers above this one (a sweep's Pareto section),
    placed before the data exports.
    """
    if not runs:
        raise ValueError("build_report needs at least one run")
    run = runs[0]
    items = suggestions if suggestions is not None else suggest(run, graph)
    name = graph.name if graph is not None else Path(run.model_path).stem
    head = title or f"Profile of {name}"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(head)}</title>"
        f"<style>{CSS}{SUMMARY_CSS}</style></head><body><h1>{esc(head)}</h1>",
        f"<p class='muted'>Generated {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC} by "
        f"npu-studio · run {esc(run.id)} ({esc(run.created)}) · backend "
        f"<b>{esc(run.backend.upper())}</b> on {esc(', '.join(run.providers))}</p>",
    ]
    if headline:
        parts.append(headline_html(headline))
    notes = [n for r in runs[:1] for n in r.notes]
    notes += [str(w) for w in (quantization or {}).get("warnings", []) or []]
    notes += list(warnings or [])
    parts.append(warnings_html(notes))
    if accuracy is not None or headline:
        parts.append(accuracy_html(accuracy, source=accuracy_source, points=mixed_precision))
    parts.append(_latency_section(run))
    parts.append(_layers_section(run))
    parts.append(_suggestions_section(items))
    if graph_png is not None:
        parts.append(_graph_png_section(graph_png, graph_png_caption or default_png_caption(run)))
    elif graph is not None and (heat := run.overlay()).values:
        svg, caption = heat_graph_svg(graph, heat.values, max_nodes=max_graph_nodes)
        parts.append(
            f"<h2>Where the time goes in the graph</h2><p class='muted'>{esc(caption)} Colour: "
            f"share of {esc(measure_words(run.primary_measure))}, grey = no figure (fused, folded or not "
            f"reported).</p><div class='scroll'>{svg}</div>"
        )
    if len(runs) > 1:
        parts.append(_comparison_section(runs))
    parts.extend(extra_sections or [])
    if graph is not None:
        summary = graph.summary()
        keep = ("name", "path", "sha256", "opset", "producer", "node_count", "total_params")
        model = {k: summary.get(k) for k in keep}
        model["total_macs"] = summary.get("total_macs")
        model["inputs"] = summary.get("inputs")
        model["outputs"] = summary.get("outputs")
        model["op_types"] = summary.get("op_types")
    else:
        model = {"path": run.model_path, "sha256": run.model_sha256}
    quant = {k: v for k, v in (quantization or {}).items() if k != "warnings"}
    exports = [
        _data_link(f"run_{run.id}.json", "application/json", json.dumps(run_json(run), indent=1)),
        _data_link(f"layers_{run.id}.csv", "text/csv", layers_csv(run)),
        _data_link(f"latencies_{run.id}.csv", "text/csv", latencies_csv(run)),
        _data_link("runs.csv", "text/csv", runs_csv(runs)),
    ]
    if accuracy:
        exports.append(_data_link("sqnr.json", "application/json", json.dumps(accuracy, indent=1)))
    parts.append(
        appendix_html(
            [
                ("Model", _kv(model)),
                ("Quantisation", _kv(quant) if quant else ""),
                ("Backend assignment", _kv(assignment) if assignment else ""),
                ("How it was measured", _kv({"options": run.options, "host": run.host})),
                ("Software", _kv(facts) if facts else ""),
                ("Data", f"<p>Exports: {' · '.join(exports)}</p>"),
            ]
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    path: str | Path, runs: list[ProfileRun], graph: Any | None = None, **kw: Any
) -> Path:
    """Build the report and write it atomically to ``path``.

    Keywords go to ``build_report``: ``graph_png`` (bytes or path) puts the studio's graph picture
    in place of the SVG drawing.
    """
    atomic_write_text(path, build_report(runs, graph, **kw))
    return Path(path)
