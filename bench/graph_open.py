"""Benchmark: open a big model in the Graph workspace, to its first painted frame, offscreen.

    python bench/graph_open.py [--model PATH | --nodes 20000] [--runs 3]

Prints ONE JSON line: nodes, load_s (ModelGraph.load), layout_s (studio.core.model.layout.compute),
scene_s (scene built and view placed), first_paint_s (the whole workspace rendered once, which
builds the lazily cached band paths and the minimap), total_s (their sum), and frame times
(median of several full repaints of a 1600x1000 viewport) at zoom-to-fit (as the user sees it,
with the zoomed-out picture cached, and with that cache dropped before every frame) and while
panning at 100% and at 30% zoom. Every figure is the median over ``--runs`` fresh workspaces. Targets on a
2-core machine: total_s <= 1.0 and frame medians <= 16 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VIEWPORT = (1600, 1000)


def _frames(view, count: int, move=None) -> float:
    times = []
    for i in range(count):
        if move is not None:
            move(i)
        t = time.perf_counter()
        view.viewport().grab()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def one_run(path: str, app) -> dict:
    from studio.core.model import layout as lay
    from studio.core.model.graph import ModelGraph
    from studio.ui.graph.workspace import GraphWorkspace
    from studio.ui.shell.context import StudioContext

    ctx = StudioContext()
    ws = GraphWorkspace(ctx)
    ws.resize(2000, 1200)
    ws.show()
    app.processEvents()
    vp = ws.view.viewport().size()
    ws.resize(2000 + VIEWPORT[0] - vp.width(), 1200 + VIEWPORT[1] - vp.height())
    app.processEvents()

    t0 = time.perf_counter()
    graph = ModelGraph.load(path)
    t1 = time.perf_counter()
    layout = lay.compute(graph)
    t2 = time.perf_counter()
    ctx.graph, ctx.model_path = graph, path
    ws.graph = graph
    ws.apply_layout(layout)
    ws.view.zoom_to_fit()
    t3 = time.perf_counter()
    ws.grab()
    t4 = time.perf_counter()

    view = ws.view
    fit = _frames(view, 9)
    fit_uncached = _frames(view, 5, lambda i: ws.scene.item.invalidate_cache())
    view.set_scale(1.0)
    view.centerOn(ws.scene.bounds.center())
    bar = view.verticalScrollBar()
    pan = _frames(view, 15, lambda i: bar.setValue(bar.value() + 37))
    view.set_scale(0.3)
    view.centerOn(ws.scene.bounds.center())
    pan_mid = _frames(view, 15, lambda i: bar.setValue(bar.value() + 37))
    result = {
        "nodes": len(graph.nodes),
        "load_s": t1 - t0,
        "layout_s": t2 - t1,
        "scene_s": t3 - t2,
        "first_paint_s": t4 - t3,
        "total_s": t4 - t0,
        "frame_ms_fit": fit,
        "frame_ms_fit_uncached": fit_uncached,
        "frame_ms_pan": pan,
        "frame_ms_pan_30pct": pan_mid,
        "viewport": [view.viewport().width(), view.viewport().height()],
    }
    ws.shutdown()
    ws.deleteLater()
    app.processEvents()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an ONNX model (default: a synthetic transformer)")
    parser.add_argument("--nodes", type=int, default=20000, help="synthetic model size")
    parser.add_argument("--runs", type=int, default=3, help="fresh opens to take the median of")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from studio.ui.widgets.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            import onnx

            from studio.core.model.synthetic import transformer_like

            path = str(Path(tmp) / f"transformer_{args.nodes}.onnx")
            onnx.save(transformer_like(args.nodes), path)
        runs = [one_run(path, app) for _ in range(max(1, args.runs))]
    keys = [k for k in runs[0] if k not in ("nodes", "viewport")]
    out = {"nodes": runs[0]["nodes"]}
    for key in keys:
        out[key] = round(statistics.median(r[key] for r in runs), 4)
    out["viewport"] = runs[0]["viewport"]
    out["runs"] = len(runs)
    out["total_s_each"] = [round(r["total_s"], 3) for r in runs]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
