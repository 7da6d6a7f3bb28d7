"""Benchmark: open a big model in the Graph workspace, to its first painted frame, offscreen.

    python bench/graph_open.py [--model PATH | --nodes 20000 [--kind exported|synthetic]]
                               [--runs 3] [--netron]

``--nodes`` generates (and caches) a model: ``exported`` (default) looks like a torch.onnx export
with real-sized weights (``studio.core.model.synthetic_export``; external data from 50k nodes),
``synthetic`` is the project's small-weight generator. ``rss_mb`` is the whole app's peak resident
memory (this process and every child: workers, QtWebEngine), sampled every 20 ms;
``rss_before_mb`` is before the model is opened. ``--netron`` also shows the Netron tab once and
prints its peak (``rss_netron_mb``) and the memory after the hidden tab released its page.
``ref_ms`` and ``loadavg_1m`` say how fast and loaded the (shared) machine was in this run.

Prints ONE JSON line: nodes, load_s (``ModelGraph.load(shapes=False)``: the structure the window
draws first), layout_s (studio.core.model.layout.compute), scene_s (scene built and view placed),
first_paint_s (the whole workspace rendered once, which builds the lazily cached band paths and
the minimap), total_s (their sum: open to first paint), shapes_s (then the second stage, checker +
shape inference + per-node stats + file hash on a thread, as the window runs it) and
shapes_paint_s (the view updated with them and painted), and frame times
(median of several full repaints of a 1600x1000 viewport) at zoom-to-fit (as the user sees it,
with the zoomed-out picture cached, and with that cache dropped before every frame) and while
panning at 100% and at 30% zoom. Every figure is the median over ``--runs`` fresh workspaces.
Targets (issue 15): a 20k-node real model total_s <= 1.0 and rss_mb <= 500; 100k nodes
total_s <= 3, frame medians <= 16 ms, rss_mb <= 1000.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure  # noqa: E402

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


def one_run(path: str, app, sampler=None, netron: bool = False) -> dict:
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
    graph = ModelGraph.load(path, shapes=False)  # the structure: what the window draws first
    t1 = time.perf_counter()
    layout = lay.compute(graph)
    t2 = time.perf_counter()
    ws._previewed = graph  # as ctx.preview_model leaves it: shapes follow
    ws.graph = graph
    ws.netron.set_model(path)  # as the preview does (the tab starts its server when shown)
    ws.apply_layout(layout)
    ws.view.zoom_to_fit()
    t3 = time.perf_counter()
    ws.grab()
    t4 = time.perf_counter()
    shapes_s, shapes_paint_s = _complete(graph, ctx, path, ws, app)

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
    rss_open = _measure.tree_rss_mb()
    netron_figures = _netron(ws, app, sampler) if netron else {}
    result = {
        "nodes": len(graph.nodes),
        "rss_open_mb": rss_open,
        **netron_figures,
        "load_s": t1 - t0,
        "layout_s": t2 - t1,
        "scene_s": t3 - t2,
        "first_paint_s": t4 - t3,
        "total_s": t4 - t0,
        "shapes_s": shapes_s,
        "shapes_paint_s": shapes_paint_s,
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


def _complete(graph, ctx, path: str, ws, app) -> tuple[float, float]:
    """The second stage as the window runs it: ``complete()`` on a thread, the event loop
    turning, then the model set (the view fills in its shapes) and one frame painted.
    Returns the seconds from first paint to complete, and that last update and frame."""
    import threading

    from studio.ui.shell.model_loader import complete_model_graph

    t0 = time.perf_counter()
    worker = threading.Thread(target=complete_model_graph, args=(graph,))
    worker.start()
    while worker.is_alive():
        app.processEvents()
        worker.join(0.005)
    t1 = time.perf_counter()
    ctx.set_model(graph, path)
    ws.grab()
    return t1 - t0, time.perf_counter() - t1


def _netron(ws, app, sampler) -> dict:
    """Show the Netron tab until its page loaded, then hide it and let it be released."""
    tab = ws.netron
    tab.set_release_after(500)
    ws.tabs.setCurrentWidget(tab)
    deadline = time.perf_counter() + 60
    view = None
    while time.perf_counter() < deadline:
        app.processEvents()
        view = tab.web_view
        if view is None or not tab.use_webengine:
            if tab.server.address is not None and not tab.use_webengine:
                break
        elif view.url().toString().startswith("http") and not view.page().isLoading():
            break
        time.sleep(0.05)
    for _ in range(100):  # let the renderer lay the graph out
        app.processEvents()
        time.sleep(0.05)
    shown = _measure.tree_rss_mb()
    ws.tabs.setCurrentIndex(0)
    deadline = time.perf_counter() + 10
    while tab.released == 0 and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.05)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)
    return {
        "netron_embedded": bool(view is not None and tab.use_webengine),
        "rss_netron_mb": shown,
        "rss_after_release_mb": _measure.tree_rss_mb(),
        "netron_released": tab.released,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an ONNX model (default: a synthetic transformer)")
    parser.add_argument("--nodes", type=int, default=20000, help="generated model size")
    parser.add_argument("--kind", choices=("exported", "synthetic"), default="exported")
    parser.add_argument("--runs", type=int, default=3, help="fresh opens to take the median of")
    parser.add_argument("--netron", action="store_true", help="also show the Netron tab once")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from studio.ui.widgets.theme import apply_theme

    if args.netron:
        os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")
    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    path = args.model or str(_measure.bench_model(args.nodes, args.kind))
    ref_ms = _measure.reference_ms()
    before = _measure.machine()
    rss_before = _measure.tree_rss_mb()
    sampler = _measure.RssSampler().start()
    runs = [
        one_run(path, app, sampler, netron=args.netron and i == 0) for i in range(max(1, args.runs))
    ]
    peak = sampler.stop()
    keys = [
        k
        for k in runs[0]
        if k not in ("nodes", "viewport") and not k.startswith(("rss_", "netron"))
    ]
    out = {"model": path, "nodes": runs[0]["nodes"]}
    for key in keys:
        out[key] = round(statistics.median(r[key] for r in runs), 4)
    out["viewport"] = runs[0]["viewport"]
    out["runs"] = len(runs)
    out["total_s_each"] = [round(r["total_s"], 3) for r in runs]
    out["rss_before_mb"] = round(rss_before, 1)
    out["rss_open_mb"] = round(runs[0]["rss_open_mb"], 1)
    out["rss_mb"] = round(peak, 1)
    for key in ("netron_embedded", "rss_netron_mb", "rss_after_release_mb", "netron_released"):
        if key in runs[0]:
            value = runs[0][key]
            out[key] = round(value, 1) if isinstance(value, float) else value
    out["ref_ms"] = ref_ms
    out["total_s_per_ref"] = round(out["total_s"] / (ref_ms / 1000), 3)
    out["machine_before"] = before
    out["machine_after"] = _measure.machine()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
