"""The Graph workspace's colours and tags: overlays (a number per node on a colour map, with
its legend) and badges (short texts per node), applied without a re-layout.

Why apart: the StudioContext's ``overlay_changed``/``badges_changed``/``overlay_cleared`` are
their own stream of state, from every other workspace. A mixin of
:class:`~studio.ui.graph.workspace.GraphWorkspace`: it reads the workspace's ``ctx``, ``graph``,
``layout_data``, ``scene``, ``canvas``, ``overlay_combo``, ``overlays``, ``badge_sets``,
``badge_vertices`` (each badge set by vertex, for ``badge_layout``) and ``badge_layout``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from studio.core.model import layout as lay
from studio.core.overlay import NodeOverlay
from studio.ui.graph import colormaps
from studio.ui.graph.overlay import BUILTIN, builtin_overlay, vertex_values

NO_OVERLAY = "No overlay"


class OverlayPainting:
    """Overlays and badges on the drawn graph."""

    ctx: Any
    graph: Any
    layout_data: Any
    overlays: dict[str, NodeOverlay]
    badge_sets: dict[str, dict[str, str]]
    badge_vertices: dict[str, dict[int, str]]
    badge_layout: Any
    active_overlay: str

    def _on_overlay_changed(self, name: str, values: Any, colormap: str, unit: str) -> None:
        current = self.ctx.current_overlay
        if current is not None and current.name == name:
            self.overlays[name] = current  # with its kind and source
        else:
            cmap = colormap or colormaps.DEFAULT
            self.overlays[name] = NodeOverlay(name, dict(values or {}), unit, colormap=cmap)
        if self.overlay_combo.findText(name) < 0:
            self.overlay_combo.addItem(name)
        self.show_overlay(name)

    def show_overlay(self, name: str) -> None:
        """Colour the graph by overlay ``name`` (a built-in title or one received); no re-layout."""
        if name in BUILTIN and self.graph is not None:
            self.overlays[name] = builtin_overlay(self.graph, name)
        self.active_overlay = name if name in self.overlays else ""
        index = self.overlay_combo.findText(self.active_overlay or NO_OVERLAY)
        self.overlay_combo.setCurrentIndex(max(0, index))
        self._recolour()

    def _recolour(self) -> None:
        layout = self.layout_data
        overlay = self.overlays.get(self.active_overlay)
        if layout is None or overlay is None:
            self.scene.set_overlay_values(None)
            self.canvas.legend.hide()
            self.canvas.minimap.invalidate()
            return
        values = vertex_values(layout, overlay)
        t, vmin, vmax, log = colormaps.normalise(values)
        table = colormaps.lut(overlay.colormap)
        self.scene.set_overlay_values(t, table)
        node_mask = layout.kinds == lay.KIND_NODE
        missing = bool(np.any(~np.isfinite(values[node_mask | (layout.kinds == lay.KIND_GROUP)])))
        legend = self.canvas.legend
        legend.set_overlay(
            overlay.name, table, vmin, vmax, overlay.unit, log, missing, overlay.kind
        )
        self.canvas.minimap.invalidate()

    def _on_badges_changed(self, name: str, badges: Any) -> None:
        if badges:
            self.badge_sets[name] = {str(k): str(v) for k, v in dict(badges).items()}
        else:
            self.badge_sets.pop(name, None)
        self._rebadge(changed=name)

    def _rebadge(self, changed: str | None = None) -> None:
        """Give the scene the badges per vertex; only the set ``changed`` (None: all, after a
        new layout) is mapped to vertices again, and the sets are merged per vertex as it is
        drawn (:class:`MergedBadges`), not for all 20,000 nodes at once on the UI thread."""
        layout = self.layout_data
        if layout is None:
            return
        cache = self.badge_vertices
        if changed is None or self.badge_layout is not layout:
            cache.clear()
            self.badge_layout = layout
        for name in list(cache):
            if name not in self.badge_sets:
                del cache[name]
        vertex_of = layout.vertex_of
        for name, badges in self.badge_sets.items():
            if name in cache and name != changed:
                continue
            per_set: dict[int, str] = {}
            for node_id, text in badges.items():
                vertex = vertex_of.get(node_id)
                if vertex is not None and text:
                    per_set.setdefault(vertex, text)
            cache[name] = per_set
        self.scene.set_badges(MergedBadges([cache[name] for name in self.badge_sets]))

    def _on_overlay_cleared(self) -> None:
        self.active_overlay = ""
        self.badge_sets = {}
        self.overlay_combo.setCurrentIndex(0)
        self._recolour()
        self._rebadge()


class MergedBadges(Mapping):
    """vertex -> its badge texts (in the order of the sets, each text once), merged on lookup.

    The scene asks only for the vertices it draws, so showing a plan's 20,000 badges costs one
    dictionary per badge set instead of a merged list per vertex."""

    def __init__(self, sets: list[dict[int, str]]) -> None:
        self.sets = [s for s in sets if s]

    def __getitem__(self, vertex: int) -> list[str]:
        texts: list[str] = []
        for badges in self.sets:
            text = badges.get(vertex)
            if text is not None and text not in texts:
                texts.append(text)
        if not texts:
            raise KeyError(vertex)
        return texts

    def __iter__(self) -> Iterator[int]:
        seen: set[int] = set()
        for badges in self.sets:
            for vertex in badges:
                if vertex not in seen:
                    seen.add(vertex)
                    yield vertex

    def __len__(self) -> int:
        return len(self.sets[0]) if len(self.sets) == 1 else sum(1 for _ in self)

    def __bool__(self) -> bool:
        return bool(self.sets)
