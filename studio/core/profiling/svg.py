"""Small SVG charts in plain Python for the HTML report (core may not import Qt or pyqtgraph).

Each function returns one self-contained ``<svg>`` element as text: no scripts, no external
fonts or files, so the report stays one file that any browser (or an XML parser) can read. All
text goes through :func:`esc`; node names come from model files and are untrusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

FONT = "font-family='DejaVu Sans, Arial, sans-serif'"
AXIS = "#555"
BAR = "#3b7dd8"
MARK_COLORS = {"p50": "#2a9d4b", "p95": "#e08a00", "p99": "#d0342c"}


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + 1e-12 * abs(hi):
        ticks.append(round(v, 12))
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.3g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{esc(title)}'>"
        f"<rect width='{width}' height='{height}' fill='white'/>"
        f"<text x='{width / 2:.1f}' y='18' text-anchor='middle' {FONT} font-size='13' "
        f"font-weight='bold'>{esc(title)}</text>" + "".join(body) + "</svg>"
    )


def _axes(
    x0: float, y0: float, w: float, h: float, xr: tuple[float, float], yr: tuple[float, float]
) -> list[str]:
    out = [
        f"<line x1='{x0}' y1='{y0 + h}' x2='{x0 + w}' y2='{y0 + h}' stroke='{AXIS}'/>",
        f"<line x1='{x0}' y1='{y0}' x2='{x0}' y2='{y0 + h}' stroke='{AXIS}'/>",
    ]
    for t in _nice_ticks(*xr):
        x = x0 + (t - xr[0]) / (xr[1] - xr[0] or 1) * w
        out.append(
            f"<text x='{x:.1f}' y='{y0 + h + 14:.1f}' text-anchor='middle' {FONT} "
            f"font-size='10' fill='{AXIS}'>{_fmt(t)}</text>"
        )
    for t in _nice_ticks(*yr):
        y = y0 + h - (t - yr[0]) / (yr[1] - yr[0] or 1) * h
        out.append(
            f"<text x='{x0 - 4:.1f}' y='{y + 3:.1f}' text-anchor='end' {FONT} font-size='10' "
            f"fill='{AXIS}'>{_fmt(t)}</text>"
            f"<line x1='{x0}' y1='{y:.1f}' x2='{x0 + w}' y2='{y:.1f}' stroke='#eee'/>"
        )
    return out


def histogram_svg(
    values_ms: Sequence[float],
    markers: dict[str, float] | None = None,
    *,
    title: str = "Latency distribution",
    bins: int = 40,
    width: int = 640,
    height: int = 260,
) -> str:
    """Histogram of latencies with vertical marker lines (p50/p95/p99)."""
    arr = np.asarray(values_ms, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    x0, y0, w, h = 50.0, 30.0, width - 70.0, height - 70.0
    if arr.size == 0:
        return _frame(width, height, title, [f"<text x='50' y='60' {FONT}>no data</text>"])
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        hi = lo + max(abs(lo) * 0.01, 1e-6)
    counts, edges = np.histogram(arr, bins=bins, range=(lo, hi))
    top = max(1, int(counts.max()))
    body = _axes(x0, y0, w, h, (lo, hi), (0, top))
    bw = w / len(counts)
    for i, c in enumerate(counts):
        if c:
            bh = c / top * h
            body.append(
                f"<rect x='{x0 + i * bw:.2f}' y='{y0 + h - bh:.2f}' width='{max(bw - 1, 0.5):.2f}' "
                f"height='{bh:.2f}' fill='{BAR}'><title>{_fmt(edges[i])}-{_fmt(edges[i + 1])} ms: "
                f"{int(c)}</title></rect>"
            )
    for k, (name, v) in enumerate((markers or {}).items()):
        x = x0 + (v - lo) / (hi - lo) * w
        color = MARK_COLORS.get(name, "#333")
        right = x > x0 + 0.75 * w  # label on the left of the line near the right edge
        body.append(
            f"<line x1='{x:.1f}' y1='{y0}' x2='{x:.1f}' y2='{y0 + h}' stroke='{color}' "
            f"stroke-width='2' stroke-dasharray='4 2'/>"
            f"<text x='{x - 3 if right else x + 3:.1f}' y='{y0 + 12 + 12 * k:.1f}' {FONT} "
            f"font-size='11' text-anchor='{'end' if right else 'start'}' "
            f"fill='{color}'>{esc(name)} {v:.3g} ms</text>"
        )
    body.append(
        f"<text x='{x0 + w / 2:.1f}' y='{height - 8}' text-anchor='middle' {FONT} "
        f"font-size='11'>latency (ms)</text>"
    )
    return _frame(width, height, title, body)


def line_svg(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    width: int = 640,
    height: int = 260,
) -> str:
    """Line chart of one or more named (x, y) series sharing axes."""
    colors = ["#3b7dd8", "#e08a00", "#d0342c", "#2a9d4b"]
    xs = [float(v) for s in series.values() for v in s[0]]
    ys = [float(v) for s in series.values() for v in s[1]]
    x0, y0, w, h = 55.0, 30.0, width - 75.0, height - 70.0
    if not xs or not ys:
        return _frame(width, height, title, [f"<text x='50' y='60' {FONT}>no data</text>"])
    xr = (min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1)
    yr = (0.0, max(ys) * 1.05 if max(ys) > 0 else 1.0)
    body = _axes(x0, y0, w, h, xr, yr)
    for k, (name, (sx, sy)) in enumerate(series.items()):
        pts = " ".join(
            f"{x0 + (float(a) - xr[0]) / (xr[1] - xr[0]) * w:.1f},"
            f"{y0 + h - (float(b) - yr[0]) / (yr[1] - yr[0]) * h:.1f}"
            for a, b in zip(sx, sy, strict=False)
        )
        color = colors[k % len(colors)]
        body.append(f"<polyline points='{pts}' fill='none' stroke='{color}' stroke-width='1.3'/>")
        body.append(
            f"<text x='{x0 + 8 + 110 * k:.1f}' y='{y0 + 12}' {FONT} font-size='11' "
            f"fill='{color}'>{esc(name)}</text>"
        )
    body.append(
        f"<text x='{x0 + w / 2:.1f}' y='{height - 8}' text-anchor='middle' {FONT} "
        f"font-size='11'>{esc(xlabel)}</text>"
        f"<text x='12' y='{y0 + h / 2:.1f}' transform='rotate(-90 12 {y0 + h / 2:.1f})' "
        f"text-anchor='middle' {FONT} font-size='11'>{esc(ylabel)}</text>"
    )
    return _frame(width, height, title, body)


def hbar_svg(
    items: Sequence[tuple[str, float, str]],
    *,
    title: str,
    unit: str,
    width: int = 640,
    label_w: int = 230,
) -> str:
    """Horizontal bars: (label, value, colour or "") per item, largest first as given."""
    row_h = 20
    height = 40 + row_h * max(1, len(items)) + 10
    vmax = max((v for _, v, _ in items), default=0.0) or 1.0
    bar_w = width - label_w - 90
    body = []
    for i, (label, value, color) in enumerate(items):
        y = 30 + i * row_h
        bw = max(1.0, value / vmax * bar_w)
        short = label if len(label) <= 34 else "…" + label[-33:]
        body.append(
            f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end' {FONT} font-size='11'>"
            f"<title>{esc(label)}</title>{esc(short)}</text>"
            f"<rect x='{label_w}' y='{y + 3}' width='{bw:.1f}' height='{row_h - 6}' "
            f"fill='{color or BAR}'/>"
            f"<text x='{label_w + bw + 4:.1f}' y='{y + 14}' {FONT} font-size='10'>"
            f"{_fmt(value)} {esc(unit)}</text>"
        )
    return _frame(width, height, title, body)
