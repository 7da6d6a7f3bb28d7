"""Colour maps for overlays, as numpy lookup tables (no matplotlib at run time).

Each map is a handful of anchor colours sampled from the well-known matplotlib maps and
interpolated linearly into a 256-entry table; that is indistinguishable on node boxes and keeps the
dependency list short. A ``_r`` suffix reverses any map (``RdYlGn_r``: red is high).
"""

from __future__ import annotations

import numpy as np

_ANCHORS: dict[str, list[str]] = {
    "viridis": ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
                "#6ece58", "#b5de2b", "#fde725"],
    "magma": ["#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d",
              "#fd9668", "#feca8d", "#fcfdbf"],
    "inferno": ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925",
                "#fb9b06", "#f7d13d", "#fcffa4"],
    "plasma": ["#0d0887", "#46039f", "#7201a8", "#9c179e", "#bd3786", "#d8576b", "#ed7953",
               "#fb9f3a", "#fdca26", "#f0f921"],
    "turbo": ["#30123b", "#4662d7", "#36aaf9", "#1ae4b6", "#72fe5e", "#c8ef34", "#faba39",
              "#f66b19", "#ca2a04", "#7a0403"],
    "coolwarm": ["#3b4cc0", "#6788ee", "#9abbff", "#c9d7f0", "#edd1c2", "#f7a889", "#e26952",
                 "#b40426"],
    "RdYlGn": ["#a50026", "#d73027", "#f46d43", "#fdae61", "#fee08b", "#d9ef8b", "#a6d96a",
               "#66bd63", "#1a9850", "#006837"],
    "Blues": ["#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b"],
    "Reds": ["#fff5f0", "#fcbba1", "#fb6a4a", "#cb181d", "#67000d"],
    "Greens": ["#f7fcf5", "#c7e9c0", "#74c476", "#238b45", "#00441b"],
}  # fmt: skip

DEFAULT = "viridis"


def names() -> list[str]:
    return sorted(_ANCHORS) + [f"{n}_r" for n in sorted(_ANCHORS)]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# Maps whose low end is near-black: on the dark canvas their first fifth is cut so that the
# smallest values still read as coloured boxes, not holes.
_DARK_START = {"magma": 0.2, "inferno": 0.2, "viridis": 0.08, "plasma": 0.0, "turbo": 0.05}


def lut(name: str, size: int = 256) -> np.ndarray:
    """A (size, 3) uint8 table for ``name``; unknown names fall back to viridis."""
    reverse = name.endswith("_r")
    base = name[:-2] if reverse else name
    if base not in _ANCHORS:
        base = base.lower() if base.lower() in _ANCHORS else DEFAULT
    anchors = _ANCHORS[base]
    rgb = np.array([_rgb(c) for c in anchors], dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(rgb))
    t = np.linspace(_DARK_START.get(base, 0.0), 1.0, size)
    table = np.column_stack([np.interp(t, xs, rgb[:, k]) for k in range(3)])
    if reverse:
        table = table[::-1]
    return np.clip(np.rint(table), 0, 255).astype(np.uint8)


def normalise(values: np.ndarray, log: bool | None = None) -> tuple[np.ndarray, float, float, bool]:
    """Map finite values to 0..1; returns (t, vmin, vmax, log_used). NaN stays NaN.

    ``log=None`` picks a log scale when every value is positive and they span more than three
    decades (MACs per node typically do), otherwise linear.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full_like(values, np.nan, dtype=np.float64), 0.0, 0.0, False
    vmin, vmax = float(finite.min()), float(finite.max())
    if log is None:
        log = vmin > 0 and vmax / vmin > 1e3
    if log and vmin > 0:
        lv = np.log10(np.where(np.isfinite(values) & (values > 0), values, np.nan))
        lo, hi = np.log10(vmin), np.log10(vmax)
        t = (lv - lo) / (hi - lo) if hi > lo else np.where(np.isfinite(lv), 0.5, np.nan)
        return t, vmin, vmax, True
    span = vmax - vmin
    t = (values - vmin) / span if span > 0 else np.where(np.isfinite(values), 0.5, np.nan)
    return t.astype(np.float64), vmin, vmax, False
