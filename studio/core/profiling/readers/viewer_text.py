"""Reading the text that ``qnn-profile-viewer --input_log LOG`` prints (bundles run with the SDK).

The viewer prints sections ("Init Stats:", "Finalize Stats:", "Execute Stats (Average):", ...),
optionally underlined with dashes; inside them an optional "Total Inference Time:" heading,
"Graph N (name):" headings, and metric lines::

    NetRun:  2952 us
    Backend (Accelerator (execute) time): 2492 us
    Backend (Accelerator (execute) time (cycles)): 3415149 cycles
    Backend (/stem/Conv_token_1:OpId_24 (cycles)): 141014 cycles
    NetRun IPS:  214.8888 inf/sec

The section / graph / "Backend (...)" shape is taken from published viewer output. The per-op line
is the same ``Backend (<Event Identifier>)`` wrapping of the identifiers the QNN EP writes to its
CSV: a metric whose identifier carries ``OpId_N`` is read as a per-op figure. Anything else is
kept as a metric under its own name, so an unfamiliar line is never silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import BadInputError
from studio.core.profiling.readers.qnn_csv import QnnOpTime, split_op_identifier

_GRAPH_RE = re.compile(r"^Graph\s+(?P<index>\d+)\s*\((?P<name>.*)\):$")
_METRIC_RE = re.compile(
    r"^(?P<key>NetRun(?: IPS)?|Backend \((?P<ident>.*)\)):\s*(?P<value>-?[\d.]+(?:[eE][-+]?\d+)?)"
    r"\s*(?P<unit>\S*)\s*$"
)


@dataclass
class ViewerGraphStats:
    """Metrics (name -> (value, unit)) and per-op figures of one graph in one section."""

    metrics: dict[str, tuple[float, str]] = field(default_factory=dict)
    ops: list[QnnOpTime] = field(default_factory=list)


@dataclass
class ViewerReport:
    """``sections[section][graph]``; graph ``""`` holds metrics printed outside any graph."""

    sections: dict[str, dict[str, ViewerGraphStats]] = field(default_factory=dict)

    def metric(self, section: str, name: str, graph: str | None = None) -> float | None:
        """A metric by section and name, from ``graph`` or else the first graph that has it."""
        for gname, stats in self.sections.get(section, {}).items():
            if graph is not None and gname != graph:
                continue
            if name in stats.metrics:
                return stats.metrics[name][0]
        return None

    def ops(self, section: str = "Execute Stats (Average)") -> list[QnnOpTime]:
        out: list[QnnOpTime] = []
        for stats in self.sections.get(section, {}).values():
            out.extend(stats.ops)
        return out

    @property
    def execute_us(self) -> float | None:
        """Average per-inference QNN execute time (µs), the figure users quote."""
        return self.metric("Execute Stats (Average)", "QNN (execute) time") or self.metric(
            "Execute Stats (Average)", "NetRun"
        )


def parse_viewer_text(text: str, source: str = "<text>") -> ViewerReport:
    """Parse viewer output; raise BadInputError if it holds no section with a figure at all."""
    report = ViewerReport()
    section = ""
    graph = ""
    count = 0
    for raw in text.splitlines():
        line = raw.strip()
        stripped = line.lstrip("-").strip()
        if not stripped:
            continue
        if stripped.endswith("Statistics:"):
            continue
        if stripped.endswith("Stats:") or re.match(r"^Execute Stats \(\w+\):$", stripped):
            section = stripped[:-1]
            graph = ""
            continue
        if stripped == "Total Inference Time:":
            continue
        g = _GRAPH_RE.match(stripped)
        if g:
            graph = g.group("name")
            continue
        m = _METRIC_RE.match(stripped)
        if not m:
            continue
        value = float(m.group("value"))
        unit = m.group("unit")
        stats = report.sections.setdefault(section, {}).setdefault(graph, ViewerGraphStats())
        ident = m.group("ident")
        count += 1
        if ident is not None and "OpId_" in ident:
            name, op_id, _ = split_op_identifier(ident)
            stats.ops.append(QnnOpTime(name, op_id, value, unit.upper()))
        else:
            stats.metrics[ident if ident is not None else m.group("key")] = (value, unit)
    if count == 0:
        raise BadInputError("no qnn-profile-viewer figures found in this text", path=source)
    return report


def viewer_layer_rows(
    report: ViewerReport, graph: Any, backend: str = "htp"
) -> tuple[list, list, list]:
    """Per-layer rows of an SDK run (``qnn-net-run --profiling_level detailed``) mapped to ``graph``.

    Same mapping as the in-process profile (:func:`studio.core.profiling.mapping.build_layer_rows`);
    the figures are the viewer's own averages over the SDK run's inferences.
    """
    from studio.core.profiling.mapping import BackendOp, build_layer_rows

    ops = [BackendOp(o.name, o.value, o.unit or "CYCLES", backend) for o in report.ops()]
    return build_layer_rows(graph, ops)


def parse_viewer_file(path: str | Path) -> ViewerReport:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BadInputError(f"cannot read profile viewer output: {exc}", path=str(p)) from exc
    return parse_viewer_text(text, str(p))
