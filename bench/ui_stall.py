"""Benchmark: how long the UI thread stalls while the real window works, phase by phase.

    python bench/ui_stall.py [--models demo,20000] [--phases open,calibrate,analyse,profile,assign]
                             [--timeout 300]

Drives the real MainWindow offscreen through open -> calibrate -> analyse -> profile (HTP) ->
assign (probe + plan on HTP/GPU/CPU), on the shipped demo model and on a generated exporter-like
model (``20000``: ``_measure.bench_model(20000, "exported_small")``, hidden size 32 and static
dims so calibration and the HTP emulator finish in a benchmark; or a path). A 5 ms QTimer on the
UI thread records the gaps between its ticks: a gap is time the event loop could not run, i.e.
a frozen window; ``worst_cpu_ms`` is the UI thread's own CPU time in its busiest gap (measured
with ``time.thread_time``), the part of a stall that is the studio's work rather than a busy
machine's. Prints ONE JSON line: per model and phase the worst gap (``worst_ms``), the
number of gaps over 50 ms, the phase's wall time (to the result fully shown: Profiling's
``run_shown``, Backends' ``plan_shown``) and whether it succeeded; ``worst_stall_ms``
over everything; ``rss_mb``, the whole app's peak (this process and its children, workers
included); ``ref_ms`` and the load average (the machine is shared). Target (issue 15): no stall
above 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NPU_STUDIO_NO_WEBENGINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "models" / "demo_cnn.onnx"
TICK_MS = 5
STALL_MS = 50
PHASES = ("open", "calibrate", "analyse", "profile", "assign")


class StallMonitor:
    """A 5 ms timer on the UI thread; the longest gap between ticks is the worst stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        self.gaps: list[float] = []
        self.cpu: list[float] = []

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.gaps.append((now - self.last) * 1000 - TICK_MS)
        self.cpu.append((cpu - self.last_cpu) * 1000)
        self.last, self.last_cpu = now, cpu

    def start(self) -> None:
        self.gaps, self.cpu = [], []
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        self._tick()
        return {
            "worst_ms": round(max(self.gaps, default=0.0), 1),
            "stalls_over_50ms": sum(g > STALL_MS for g in self.gaps),
            # the UI thread's own CPU time in its busiest gap: unlike the wall-clock gap it does
            # not grow when other processes (or other threads holding the GIL) take the CPU
            "worst_cpu_ms": round(max(self.cpu, default=0.0), 1),
        }


class StackSampler:
    """``--stacks``: a thread that samples the UI thread's Python stack while it is late.

    Tells where the UI thread spends a stall (or, when a background thread holds the GIL in C
    code, where it was waiting). Samples are counted per innermost studio frame.
    """

    def __init__(self, monitor: StallMonitor) -> None:
        import collections
        import threading

        self.monitor = monitor
        self.main = threading.main_thread().ident
        self.counts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import traceback

        while not self._stop.wait(0.01):
            if (time.perf_counter() - self.monitor.last) * 1000 < STALL_MS:
                continue
            frame = sys._current_frames().get(self.main)
            if frame is None:
                continue
            stack = traceback.extract_stack(frame)
            ours = [f for f in stack if "/studio/" in f.filename]
            where = ours[-1] if ours else stack[-1]
            inner = stack[-1]
            self.counts[
                f"{Path(where.filename).name}:{where.lineno} {where.name}"
                f" <- {Path(inner.filename).name}:{inner.lineno} {inner.name}"
            ] += 1

    def start(self) -> StackSampler:
        self._thread.start()
        return self

    def stop(self) -> list:
        self._stop.set()
        self._thread.join()
        return self.counts.most_common(25)


def _wait(app, done, timeout_s: float) -> bool:
    """Run the event loop until ``done()``; False on timeout."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        app.processEvents()
        if done():
            return True
        time.sleep(0.002)
    return False


def _phase(app, monitor, name: str, start, done, timeout_s: float, settle_s: float = 0.5) -> dict:
    """Start one phase, wait for it (plus ``settle_s`` of results landing), measure the gaps."""
    monitor.start()
    began = time.perf_counter()
    error = ""
    try:
        start()
        ok = _wait(app, done, timeout_s)
    except Exception as exc:  # noqa: BLE001 - a failed phase is reported, the others still run
        ok, error = False, f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - began
    _wait(app, lambda: False, settle_s)
    figures = monitor.stop()
    figures.update({"wall_s": round(wall, 2), "ok": bool(ok)})
    if error:
        figures["error"] = error[:300]
    elif not ok:
        figures["error"] = f"not finished within {timeout_s:.0f} s"
    return figures


def run_model(
    app, path: str, phases: list[str], timeout_s: float, tmp: Path, stacks: bool = False
) -> dict:
    from PySide6.QtCore import QSettings

    from studio.ui.shell import dialogs
    from studio.ui.shell.main_window import MainWindow

    errors: list[str] = []
    # an error dialog would wait for a click: record the message instead
    dialogs.show_error = lambda _parent, title, message, *_a, **_k: errors.append(
        f"{title}: {message}"
    )

    settings = QSettings(str(tmp / f"settings_{time.time_ns()}.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings)
    win.resize(1600, 1000)
    win.show()
    app.processEvents()
    monitor = StallMonitor()
    sampler = StackSampler(monitor).start() if stacks else None
    graph_ws = win.workspaces["graph"]
    quant = win.workspaces["quant"]
    prof = win.workspaces["profiling"]
    backends = win.workspaces["backends"]
    out: dict = {}
    state = {"laid_out": False}
    graph_ws.layout_ready.connect(lambda: state.update(laid_out=True))

    def opened() -> bool:
        return (
            state["laid_out"]
            and win.ctx.graph is not None
            and not quant.session.preparing
            and not win.loader.busy
        )

    if "open" in phases:
        out["open"] = _phase(app, monitor, "open", lambda: win.open_path(path), opened, timeout_s)
        out["open"]["nodes"] = len(win.ctx.graph.nodes) if win.ctx.graph is not None else 0
    if win.ctx.graph is None:
        win.close()
        return out

    def follow(background) -> dict:
        """Watch one Background: done when it reports ``finished``; its error text if any."""
        box: dict = {"done": False}
        background.error.connect(lambda _t, message, _d: box.update(failed=message))
        background.finished.connect(
            lambda state: box.update(done=True, **({} if state == "done" else {"state": state}))
        )
        return box

    for name, action in (
        ("calibrate", lambda: quant.calibrate("random:4")),
        ("analyse", quant.analyse),
    ):
        if name not in phases:
            continue
        box = follow(quant.runner)
        out[name] = _phase(app, monitor, name, action, lambda b=box: b["done"], timeout_s)
        if box.get("failed") or box.get("state"):
            out[name]["ok"] = False
            out[name]["error"] = str(box.get("failed") or box.get("state"))[:300]
        quant.runner.cancel()

    if "profile" in phases:
        box = follow(prof.runner)
        shown: dict = {"run": False}  # the dashboard fills over several turns after the result
        prof.run_shown.connect(lambda _id: shown.update(run=True))

        def start_profile() -> None:
            win.tabs.setCurrentWidget(prof)
            _wait(app, lambda: False, 0.3)  # a user's click comes after the tab has shown
            prof.controls.available["htp"] = True
            if not prof.controls.select_backend("htp"):
                raise RuntimeError("HTP cannot be selected in the Profiling workspace")
            prof.controls.runs.setValue(5)
            prof.controls.warmup.setValue(1)
            prof.controls.start_btn.click()

        out["profile"] = _phase(
            app,
            monitor,
            "profile",
            start_profile,
            lambda: box["done"] and (shown["run"] or "failed" in box or "state" in box),
            timeout_s,
        )
        if box.get("failed") or box.get("state"):
            out["profile"]["ok"] = False
            out["profile"]["error"] = str(box.get("failed") or box.get("state"))[:300]
        prof.runner.cancel()

    if "assign" in phases:

        def start_assign() -> None:
            win.tabs.setCurrentWidget(backends)
            _wait(app, lambda: False, 0.3)  # a user's click comes after the tab has shown
            backends.assign_button.click()

        box = follow(backends.background)
        shown = {"plan": False}  # table, summary and graph take turns of their own
        backends.plan_shown.connect(lambda: shown.update(plan=True))

        def assigned() -> bool:
            return box["done"] and (shown["plan"] or "failed" in box or "state" in box)

        out["assign"] = _phase(app, monitor, "assign", start_assign, assigned, timeout_s)
        if backends.plan is None:
            out["assign"]["ok"] = False
            out["assign"].setdefault("error", backends.status.text()[:300])
    win.ctx.project.dirty = False if win.ctx.project is not None else None
    if win.ctx.jobs is not None:
        win.ctx.jobs.shutdown()
    win.close()
    app.processEvents()
    if sampler is not None:
        out["stacks"] = sampler.stop()
    if errors:
        out["errors"] = [e[:300] for e in errors]
    return out


def _worst(results: dict, key: str) -> float:
    """The largest ``key`` over every model's phases (the non-phase entries are not dicts)."""
    return max(
        (p[key] for phases in results.values() for p in phases.values() if isinstance(p, dict)),
        default=0.0,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,20000", help="demo, a node count, or paths")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase at most")
    parser.add_argument("--stacks", action="store_true", help="sample the UI thread in stalls")
    args = parser.parse_args()
    phases = [p for p in args.phases.split(",") if p]

    from PySide6.QtWidgets import QApplication

    from studio.ui.widgets.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    with tempfile.TemporaryDirectory(prefix="npu-studio-stall-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("NPU_STUDIO_CACHE", str(tmp / "cache"))
        os.environ.setdefault("NPU_STUDIO_DATA_DIR", str(tmp / "data"))
        models: dict[str, str] = {}
        for item in args.models.split(","):
            if item == "demo":
                models["demo"] = str(DEMO)
            elif item.isdigit():
                models[f"exported_{item}"] = str(_measure.bench_model(int(item), "exported_small"))
            elif item:
                models[Path(item).name] = item
        ref_ms = _measure.reference_ms()
        before = _measure.machine()
        sampler = _measure.RssSampler().start()
        results = {
            name: run_model(app, path, phases, args.timeout, tmp, args.stacks)
            for name, path in models.items()
        }
        peak = sampler.stop()
    out = {
        "worst_stall_ms": _worst(results, "worst_ms"),
        "worst_cpu_ms": _worst(results, "worst_cpu_ms"),
        "target_ms": STALL_MS,
        "models": results,
        "rss_mb": round(peak, 1),
        "ref_ms": ref_ms,
        "machine_before": before,
        "machine_after": _measure.machine(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
