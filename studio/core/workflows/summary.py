"""The report's reader-facing parts: the headline, one ranked warnings box, the accuracy section
and the appendix. ``report.build_report`` places them; the pipeline fills the headline.

Who reads the top of the report: someone deciding whether this model ships on this device. So the
headline answers, in one block, what model, what device, what precision, how fast on the device
(estimated or measured, and which), how much faster than float, how accurate against float on
data it was not calibrated on, fully on the NPU or what falls back, and how much smaller, each
figure with its kind (DESIGN.md: measured / estimated / emulated / assumed). Everything a
specialist needs to check it follows below; raw options and host facts go to the appendix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from studio.core.profiling.svg import esc, hbar_svg

SUMMARY_CSS = """
.headline{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:14px 0}
.tile{border:1px solid #d5dbe5;border-radius:6px;padding:8px 10px;background:#fafcff}
.tile .k{font-size:11px;color:#666;text-transform:uppercase;letter-spacing:.04em}
.tile .v{font-size:19px;font-weight:bold;margin:2px 0} .tile .s{font-size:11px;color:#555}
.kind{display:inline-block;font-size:10px;padding:0 5px;border-radius:8px;margin-left:4px;
vertical-align:middle;font-weight:normal} .kind-measured{background:#d9f2dd;color:#1c6b2a}
.kind-estimated{background:#dde8fb;color:#1f4f9c} .kind-emulated{background:#fde9cf;color:#8a4b00}
.kind-assumed{background:#eee;color:#555} .kind-none{background:#f6dede;color:#8a1f1f}
.warnbox{border:1px solid #e0a800;background:#fff9e8;border-radius:6px;padding:6px 12px;margin:12px 0}
.warnbox ol{margin:4px 0;padding-left:20px;font-size:13px} .warnbox li{margin:3px 0}
.warnbox .why{color:#7a5b00;font-size:11px} details.appendix{margin-top:28px}
details.appendix summary{font-size:17px;font-weight:bold;cursor:pointer}
@media print{details.appendix{display:block} .headline{grid-template-columns:repeat(4,1fr)}}
"""

KIND_TEXT = {
    "measured": "measured",
    "estimated": "estimated",
    "emulated": "x86 emulator",
    "assumed": "assumed",
    "none": "not available",
}

# What a warning changes for the reader, most serious first. First matching rule wins.
WARNING_RANKS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "accuracy",
        ("random data", "random inputs", "accuracy is not meaningful"),
        "accuracy figures do not describe real inputs",
    ),
    (
        "placement",
        (
            "not on htp",
            "htp was not available",
            "htp unavailable",
            "fall back",
            "fallback",
            "left on cpu",
            "cpu instead",
            "not possible here",
        ),
        "the model does not run where the headline says it should",
    ),
    (
        "device numbers",
        ("emulat", "simulat", "not phone", "not a phone", "estimate"),
        "the times are not a phone's measurements",
    ),
    (
        "quantisation",
        ("float", "bitwidth", "scale", "encoding", "quantis", "quantiz"),
        "part of the model is quantised differently from the plan",
    ),
)


def _kind(kind: str) -> str:
    kind = kind if kind in KIND_TEXT else "assumed"
    return f"<span class='kind kind-{kind}'>{esc(KIND_TEXT[kind])}</span>"


def _bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def folder_size(path: str | Path | None) -> int | None:
    """Bytes of a file, or of every file under a folder (what would be shipped)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return None


def headline_html(h: dict[str, Any]) -> str:
    """The headline tiles. ``h`` is what ``pipeline.headline`` (or a caller) assembled."""
    lat = h.get("latency") or {}
    speed = h.get("speedup") or {}
    acc = h.get("sqnr") or {}
    place = h.get("placement") or {}
    size = h.get("size") or {}
    lat_v = f"{lat['ms']:.3g} ms" if lat.get("ms") is not None else "–"
    speed_v = f"{speed['ratio']:.2f}×" if speed.get("ratio") else "–"
    acc_v = (
        f"{acc['db']:.1f} dB"
        if acc.get("db") is not None and math.isfinite(acc["db"])
        else ("exact" if acc.get("db") == math.inf else "–")
    )
    fallbacks = place.get("fallback") or []
    if place.get("full") is True:
        place_v, place_s = "fully on the NPU", place.get("detail", "")
    elif place.get("full") is False:
        shown = ", ".join(fallbacks[:6]) + (
            f" and {len(fallbacks) - 6} more" if len(fallbacks) > 6 else ""
        )
        place_v, place_s = f"{len(fallbacks)} node(s) on CPU", shown
    else:
        place_v, place_s = "not checked", place.get("detail", "")
    before, after = size.get("before"), size.get("after")
    size_v = f"{_bytes(before)} → {_bytes(after)}" if before and after else _bytes(before or after)
    size_s = size.get("detail", "")
    if before and after:
        size_s = f"{after / before:.0%} of float · {size_s}".rstrip(" ·")
    tiles = [
        ("Model", esc(h.get("model", "–")), esc(h.get("model_detail", ""))),
        ("Target device", esc(h.get("device", "none chosen")), esc(h.get("device_detail", ""))),
        ("Precision", esc(h.get("precision", "–")), esc(h.get("precision_detail", ""))),
        (
            "On-device latency",
            esc(lat_v) + _kind(lat.get("kind", "none")),
            esc(lat.get("label", "")),
        ),
        (
            "Speed-up vs float",
            esc(speed_v) + _kind(speed.get("kind", "none")),
            esc(speed.get("label", "")),
        ),
        (
            "Output SQNR vs float",
            esc(acc_v) + _kind(acc.get("kind", "none")),
            esc(acc.get("label", "")),
        ),
        ("Placement", esc(place_v), esc(place_s)),
        ("Size", esc(size_v), esc(size_s)),
    ]
    cells = "".join(
        f"<div class='tile'><div class='k'>{k}</div><div class='v'>{v}</div><div class='s'>{s}</div></div>"
        for k, v, s in tiles
    )
    return f"<div class='headline' id='headline'>{cells}</div>"


def rank_warnings(texts: list[str]) -> list[tuple[str, str, str]]:
    """(category, why it matters, text), most serious first, duplicates dropped."""
    seen: set[str] = set()
    ranked: list[tuple[int, str, str, str]] = []
    for text in texts:
        key = " ".join(str(text).split())
        if not key or key.lower() in seen:
            continue
        seen.add(key.lower())
        low = key.lower()
        for rank, (category, needles, why) in enumerate(WARNING_RANKS):
            if any(n in low for n in needles):
                ranked.append((rank, category, why, key))
                break
        else:
            ranked.append((len(WARNING_RANKS), "other", "worth knowing", key))
    ranked.sort(key=lambda r: r[0])
    return [(c, w, t) for _, c, w, t in ranked]


def warnings_html(texts: list[str]) -> str:
    ranked = rank_warnings(texts)
    if not ranked:
        return ""
    items = "".join(
        f"<li><b>{esc(c)}</b>: {esc(t)} <span class='why'>({esc(w)})</span></li>"
        for c, w, t in ranked
    )
    return (
        f"<div class='warnbox' id='warnings'><b>{len(ranked)} warning(s)</b>, the ones that "
        f"change what the figures mean first<ol>{items}</ol></div>"
    )


def accuracy_html(
    sqnr: dict[str, Any] | None, *, source: str = "", points: list | None = None
) -> str:
    """Per-layer SQNR chart, the worst layers, and mixed-precision points (when searched)."""
    if not sqnr:
        return (
            "<h2>Accuracy</h2><p>Not measured in this run (no float model to compare against, "
            "or the analysis was skipped).</p>"
        )
    layers = [
        layer for layer in sqnr.get("layers", []) if isinstance(layer.get("sqnr_db"), (int, float))
    ]
    out = sqnr.get("output_sqnr_db")
    head = (
        f"<p>Output SQNR against the float model: <b>{_db(out)}</b> (worst output) on "
        f"{sqnr.get('samples', '?')} held-out sample(s){(' from ' + esc(source)) if source else ''}"
        f", quantised model run on <b>{esc(sqnr.get('backend', '?').upper())}</b>. SQNR = "
        "10·log10(signal / error power); every 6 dB is about one bit; above ~30 dB outputs rarely "
        "change a decision.</p>"
    )
    chart = ""
    if layers:
        bars = [
            (
                f"{layer['tensor'][-38:]}",
                max(0.0, float(layer["sqnr_db"])),
                _db_colour(float(layer["sqnr_db"])),
            )
            for layer in layers
        ]
        chart = hbar_svg(
            bars,
            title="Per-layer SQNR, in graph order (higher is better)",
            unit="dB",
            width=760,
            label_w=300,
        )
    worst = sorted(
        layers, key=lambda layer: (float(layer["sqnr_db"]), float(layer.get("added_db") or 0.0))
    )[:8]
    rows = "".join(
        f"<tr><td>{esc(layer['tensor'])}</td><td>{esc(layer.get('op_type', ''))}</td>"
        f"<td class='num'>{_db(layer['sqnr_db'])}</td><td class='num'>{_db(layer.get('added_db'))}</td>"
        f"<td class='num'>{esc(layer.get('bitwidth') or '')}</td></tr>"
        for layer in worst
    )
    worst_html = (
        "<h3>Worst layers</h3><p class='muted'>The lowest SQNR first; “added” is the part of "
        "the error that enters at that tensor itself (the rest is inherited from upstream).</p><table><tr><th>tensor</th><th>op</th>"
        f"<th>SQNR</th><th>added</th><th>bits</th></tr>{rows}</table>"
        if worst
        else ""
    )
    mp = ""
    if points:
        rows = "".join(
            f"<tr><td class='num'>{i}</td><td class='num'>{_db(p.get('sqnr_db'))}</td>"
            f"<td class='num'>{esc(p.get('promoted_count', len(p.get('promoted', []))))}</td>"
            f"<td>{esc(', '.join(p.get('promoted', [])[:6]))}</td></tr>"
            for i, p in enumerate(points)
        )
        mp = (
            "<h3>Mixed-precision points</h3><table><tr><th>step</th><th>output SQNR</th>"
            f"<th>16-bit tensors</th><th>promoted</th></tr>{rows}</table>"
        )
    notes = "".join(f"<p class='muted'>{esc(n)}</p>" for n in sqnr.get("notes", []))
    return f"<h2 id='accuracy'>Accuracy</h2>{head}<div class='charts'>{chart}</div>{worst_html}{mp}{notes}"


def _db(v: Any) -> str:
    if v in ("inf", math.inf):
        return "exact"
    if isinstance(v, (int, float)) and math.isfinite(v):
        return f"{v:.1f} dB"
    return "–"


def _db_colour(v: float) -> str:
    if v >= 30:
        return "#2a9d4b"
    if v >= 20:
        return "#e0a800"
    return "#d0342c"


def appendix_html(sections: list[tuple[str, str]]) -> str:
    """Raw material for specialists, folded away (unfolded when printed)."""
    body = "".join(f"<h3>{esc(title)}</h3>{html}" for title, html in sections if html)
    return f"<details class='appendix' open><summary>Appendix</summary>{body}</details>"
