"""The sweep in a report: a Pareto plot (SQNR against device latency, per device) and a table.

Pure Python (an SVG drawn here), so a headless ``npu-studio sweep --report`` and the GUI's
report give the same section; the GUI may hand in its own plot as PNG instead. Only rows with a
device figure (measured, else estimated) are plotted: the emulator's time is never an axis.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from studio.core.atomic import atomic_write_text
from studio.core.sweeps.results import latency_of

PALETTE = ("#4e9af1", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2")
W, H, PAD = 560, 340, 48


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def pareto_svg(doc: dict[str, Any]) -> str:
    """SQNR (dB, up) against device latency (ms, right); Pareto points joined per device."""
    pts = []
    for row in doc.get("rows", []):
        lat, kind = latency_of(row)
        if row.get("status") == "done" and lat is not None and row.get("sqnr_db") is not None:
            pts.append((str(row.get("device")), lat, float(row["sqnr_db"]), row))
    if not pts:
        return "<p class='muted'>No point has a device latency yet: nothing to plot.</p>"
    xs, ys = [p[1] for p in pts], [p[2] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    dx, dy = (x1 - x0) or max(abs(x1) * 0.1, 1e-3), (y1 - y0) or 1.0
    x0, x1, y0, y1 = x0 - 0.08 * dx, x1 + 0.08 * dx, y0 - 0.1 * dy, y1 + 0.1 * dy

    def sx(v: float) -> float:
        return PAD + (v - x0) / (x1 - x0) * (W - 2 * PAD)

    def sy(v: float) -> float:
        return H - PAD - (v - y0) / (y1 - y0) * (H - 2 * PAD)

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' "
        f"viewBox='0 0 {W} {H}' font-family='sans-serif' font-size='11'>",
        f"<rect width='{W}' height='{H}' fill='white'/>",
        f"<line x1='{PAD}' y1='{H - PAD}' x2='{W - PAD}' y2='{H - PAD}' stroke='#444'/>",
        f"<line x1='{PAD}' y1='{PAD}' x2='{PAD}' y2='{H - PAD}' stroke='#444'/>",
    ]
    for i in range(5):
        xv, yv = x0 + (x1 - x0) * i / 4, y0 + (y1 - y0) * i / 4
        out.append(
            f"<text x='{sx(xv):.1f}' y='{H - PAD + 14}' text-anchor='middle'>{xv:.3g}</text>"
        )
        out.append(f"<text x='{PAD - 6}' y='{sy(yv) + 4:.1f}' text-anchor='end'>{yv:.3g}</text>")
    kinds = sorted({latency_of(p[3])[1] or "" for p in pts})
    out.append(
        f"<text x='{W / 2}' y='{H - 8}' text-anchor='middle'>on-device latency, ms "
        f"({esc(', '.join(kinds))})</text>"
    )
    out.append(
        f"<text x='12' y='{H / 2}' text-anchor='middle' transform='rotate(-90 12 {H / 2})'>"
        "output SQNR, dB</text>"
    )
    devices = sorted({p[0] for p in pts})
    for i, dev in enumerate(devices):
        colour = PALETTE[i % len(PALETTE)]
        mine = sorted((p for p in pts if p[0] == dev), key=lambda p: p[1])
        front = [p for p in mine if p[3].get("pareto")]
        if len(front) > 1:
            path = " ".join(f"{sx(p[1]):.1f},{sy(p[2]):.1f}" for p in front)
            out.append(
                f"<polyline points='{path}' fill='none' stroke='{colour}' stroke-width='1.5'/>"
            )
        for _, x, y, row in mine:
            r = 5 if row.get("pareto") else 3.5
            fill = colour if row.get("pareto") else "white"
            out.append(
                f"<circle cx='{sx(x):.1f}' cy='{sy(y):.1f}' r='{r}' fill='{fill}' "
                f"stroke='{colour}'><title>{esc(row.get('label'))}: {y:.2f} dB, "
                f"{x:.4g} ms</title></circle>"
            )
        out.append(
            f"<text x='{W - PAD - 4}' y='{PAD + 14 * i}' text-anchor='end' "
            f"fill='{colour}'>{esc(dev)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def sweep_section(doc: dict[str, Any], png: bytes | None = None) -> str:
    """The report's sweep section (HTML): the plot (``png`` from the GUI, else the SVG), the
    Pareto rows, and what the axes are."""
    if png is not None:
        plot = (
            f"<img alt='Pareto plot' src='data:image/png;base64,"
            f"{base64.b64encode(png).decode()}' style='max-width:100%'>"
        )
    else:
        plot = pareto_svg(doc)
    cl = doc.get("cluster", {})
    rows = [r for r in doc.get("rows", []) if r.get("status") == "done"]
    body = [
        "<h2>Sweep: accuracy against on-device latency</h2>",
        f"<p class='muted'>{len(doc.get('rows', []))} points on Ray {esc(doc.get('ray_version'))}"
        f" ({esc(cl.get('nodes'))} node(s), {esc(cl.get('cpus'))} CPUs). Latency: the target "
        "device's estimate (or a measurement on real hardware), never the x86 emulator's time. "
        "Filled points are on the Pareto front of their device.</p>",
        plot,
        "<table><tr><th>point</th><th>device</th><th>SQNR dB</th><th>device ms</th>"
        "<th>fully on HTP</th><th>size kB</th><th>Pareto</th></tr>",
    ]
    for r in sorted(rows, key=lambda r: (str(r.get("device")), -(r.get("sqnr_db") or 0))):
        lat, kind = latency_of(r)
        body.append(
            f"<tr><td>{esc(r.get('label'))}</td><td>{esc(r.get('device'))}</td>"
            f"<td>{r['sqnr_db']:.2f}</td><td>{'-' if lat is None else f'{lat:.4g} ({kind})'}</td>"
            f"<td>{esc(r.get('fully_on_htp'))}</td><td>{(r.get('size_bytes') or 0) / 1024:.1f}</td>"
            f"<td>{'yes' if r.get('pareto') else ''}</td></tr>"
        )
    failed = [r for r in doc.get("rows", []) if r.get("status") == "failed"]
    body.append("</table>")
    if failed:
        body.append(
            "<p><b>Failed points</b></p><ul>"
            + "".join(
                f"<li>{esc(r.get('label'))}: {esc((r.get('error') or {}).get('message', ''))[:300]}</li>"
                for r in failed
            )
            + "</ul>"
        )
    return "\n".join(body)


def write_sweep_report(doc: dict[str, Any], path: str | Path) -> Path:
    """A self-contained HTML page with just the sweep section (``npu-studio sweep --report``)."""
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Sweep</title>"
        "<style>body{font-family:sans-serif;margin:24px}td,th{padding:2px 8px;text-align:left}"
        ".muted{color:#666}</style></head><body>" + sweep_section(doc) + "</body></html>"
    )
    atomic_write_text(path, page)
    return Path(path)
