"""HTML for the summary and details panels: plain functions of core data, no widgets."""

from __future__ import annotations

from html import escape
from typing import Any

from studio.ui.backends.table import BACKEND_COLOURS


def backend_status_html(report: Any) -> str:
    """One line per backend: available (with its note) or the real reason it is not."""
    parts = []
    for name, status in report.backends.items():
        colour = BACKEND_COLOURS.get(name, "#444")
        if status.get("available"):
            text = f"<b style='color:{colour}'>{name.upper()}</b> available"
            note = status.get("reason") or ""
            if note:
                text += f" <span style='color:#777'>({escape(note)})</span>"
        else:
            reason = str(status.get("reason", "")).removeprefix(f"{name.upper()} unavailable: ")
            text = f"<b style='color:#999'>{name.upper()}</b> unavailable: {escape(reason)}"
        parts.append(text)
    notes = "".join(f"<br><i>{escape(n)}</i>" for n in report.notes)
    return "<br>".join(parts) + notes


def summary_html(plan: Any) -> str:
    """Per-backend nodes, MACs and time, boundaries and the budget verdict."""
    s = plan.summary
    sources = "/".join(s.get("cost_sources", [])) or "—"
    rows = "".join(
        f"<tr><td><b style='color:{BACKEND_COLOURS.get(b, '#444')}'>{b.upper()}</b></td>"
        f"<td align=right>{f['nodes']}</td><td align=right>{f['macs']:,}</td>"
        f"<td align=right>{f['estimated_ms']:.3f}</td></tr>"
        for b, f in s["per_backend"].items()
    )
    budget = s.get("latency_budget_ms")
    verdict = ""
    if budget:
        state = "<b style='color:#c62828'>over</b>" if s["over_budget"] else "within"
        verdict = f"<p>Budget {budget:g} ms: {state}"
        if s.get("budget_forced_fastest"):
            verdict += " (the fastest plan was taken to meet it)"
        verdict += "</p>"
    c = plan.constraints
    mode = (
        "power-critical"
        if c.power_critical
        else "performance-critical"
        if c.performance_critical
        else "balanced"
    )
    return (
        "<h3>Assignment</h3>"
        f"<p>{s['nodes']} nodes in {s['segments']} segment(s), {s['boundaries']} backend "
        f"boundary(ies) costing {s.get('boundary_ms', 0.0):.3f} ms; {mode}; "
        f"{len(c.pins)} pin(s).</p>"
        "<table cellspacing=6><tr><th align=left>Backend</th><th>Nodes</th><th>MACs</th>"
        f"<th>Time (ms, {escape(sources)})</th></tr>{rows}</table>"
        f"<p>Total {s['estimated_total_ms']:.3f} ms ({escape(sources)}).</p>{verdict}"
        + _assumptions_html(s.get("assumptions") or {})
    )


def _assumptions_html(assumed: dict) -> str:
    """Which assumed constants the plan used: the changed ones by value, the rest by count."""
    values, changed = assumed.get("values") or {}, assumed.get("changed") or []
    if not values:
        return ""
    listed = ", ".join(f"{escape(k)} = {values[k]:g}" for k in changed)
    return (
        "<p style='color:#777'>HTP times: device estimate. Phone CPU/GPU times, energy and "
        f"boundaries: {len(values)} <b>assumed</b> constants (Assumptions…)"
        + (f"; changed: {listed}" if listed else ", all at their defaults")
        + ".</p>"
    )


def node_html(node_id: str, report: Any, plan: Any, reason: str) -> str:
    """The selected node: per-backend verdict and score parts, the decision and why."""
    out = [f"<h3>{escape(node_id)}</h3>"]
    decision = plan.decision(node_id) if plan is not None else None
    if decision is not None:
        colour = BACKEND_COLOURS.get(decision.backend, "#444")
        pinned = " (pinned)" if decision.pinned else ""
        out.append(f"<p>Runs on <b style='color:{colour}'>{decision.backend.upper()}</b>{pinned}")
    if reason:
        out.append(f"<p>{escape(reason)}</p>")
    per = report.nodes.get(node_id, {}) if report is not None else {}
    for backend, support in per.items():
        line = escape(support.tooltip(backend))
        score = decision.scores.get(backend) if decision is not None else None
        if score is not None and score.supported:
            line += (
                f"<br>&nbsp;&nbsp;score {score.score:.0f}: {escape(score.precision)} "
                f"(fit {score.precision_fit:.2f}), VTCM fit {score.size_fit:.2f}, power "
                f"{score.power_efficiency:.2f}, {score.cost_ms:.4f} ms ({score.cost_source})"
            )
        out.append(f"<p>{line}</p>")
    return "".join(out)


def run_html(data: dict[str, Any]) -> str:
    """Measured per-segment and per-boundary times of a partitioned run."""
    rows = "".join(
        f"<tr><td>{t['index']}</td><td><b style='color:{BACKEND_COLOURS.get(t['backend'], '#444')}'>"
        f"{t['backend'].upper()}</b></td><td align=right>{t['nodes']}</td>"
        f"<td align=right>{t['run_ms']:.3f}</td>"
        f"<td align=right>{(t['boundary_ms'] if t['index'] else 0.0):.3f}</td>"
        f"<td align=right>{(t['boundary_in_bytes'] if t['index'] else 0):,}</td></tr>"
        for t in data["timings"]
    )
    return (
        f"<h3>Measured run (median of {data['runs']})</h3>"
        "<table cellspacing=4><tr><th>#</th><th></th><th>Nodes</th><th>ms</th>"
        f"<th>In ms</th><th>In bytes</th></tr>{rows}</table>"
        f"<p>End to end {data['total_ms']:.3f} ms.</p>"
        f"<p style='color:#777'>{escape(str(data.get('note', '')))}</p>"
    )
