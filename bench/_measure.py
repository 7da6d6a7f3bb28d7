"""Shared measuring helpers for the UI benchmarks: whole-app RSS, a machine reference, load.

The machine these run on is shared and noisy, so every benchmark prints, beside its figures, how
loaded the machine was (``loadavg``) and how long a fixed reference workload took in the same run
(``ref_ms``): compare ratios (figure / ref_ms) between runs, not raw seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(stat[1]), []).append(int(entry))
    return tree


def tree_rss_mb(root: int | None = None, exclude: int | None = None) -> float:
    """Resident memory of a process and all its descendants (QtWebEngine, workers), in MB;
    ``exclude``: a process (with its descendants) left out (the sampler itself)."""
    root = os.getpid() if root is None else root
    tree = _children()
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if pid == exclude:
            continue
        stack.extend(tree.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1])
        except OSError:
            continue
    return total * os.sysconf("SC_PAGE_SIZE") / 1e6


_SAMPLER_LOOP = """
import os, sys, select, _measure
root, interval = int(sys.argv[1]), float(sys.argv[2])
peak = 0.0
while True:
    peak = max(peak, _measure.tree_rss_mb(root, os.getpid()))
    ready, _, _ = select.select([sys.stdin], [], [], interval)
    if ready:
        if sys.stdin.readline().strip() != "reset":
            print(peak, flush=True)
            break
        peak = _measure.tree_rss_mb(root, os.getpid())
        print(peak, flush=True)
"""


class RssSampler:
    """Samples :func:`tree_rss_mb` of this process's tree every ``interval_s``; ``peak`` is the max.

    The sampling runs in a child process of its own (not counted in the tree it measures): walking
    ``/proc`` every 20 ms is pure Python, and on a thread of the measured app it held the GIL the
    UI thread waits for, a stall the bench itself caused (a third of the app's GIL time in a
    sampled run of ``ui_stall.py``).
    """

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak = 0.0
        self._proc: subprocess.Popen | None = None

    def start(self) -> RssSampler:
        here = str(Path(__file__).resolve().parent)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SAMPLER_LOOP, str(os.getpid()), str(self.interval_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": here},
        )
        return self

    def _ask(self, line: str) -> float:
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return float(self._proc.stdout.readline() or 0.0)

    def reset(self) -> None:
        self.peak = self._ask("reset")

    def stop(self) -> float:
        if self._proc is not None:
            self.peak = self._ask("stop")
            self._proc.wait(timeout=10)
            self._proc = None
        return self.peak


def reference_ms() -> float:
    """A fixed CPU workload (Python loop + protobuf parse), median of 3: the machine's speed now."""
    import onnx
    from onnx import helper

    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i in range(4000)]
    graph = helper.make_graph(nodes, "ref", [], [])
    data = helper.make_model(graph).SerializeToString()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i % 7
        for _ in range(5):
            onnx.ModelProto().ParseFromString(data)
        times.append((time.perf_counter() - start) * 1000)
    return round(sorted(times)[1], 1)


def machine() -> dict:
    """Load average and core count now (the machine is shared)."""
    one, five, _ = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2), "cpus": os.cpu_count()}


def bench_model(nodes: int, kind: str, cache: Path | None = None) -> Path:
    """A generated model of ``nodes`` nodes, cached between runs (building 100k takes a minute).

    ``kind`` "exported": ``synthetic_export.exported_transformer`` (real-sized weights, an
    exporter's naming and Constant nodes; external data from 50k nodes on, as large exports do);
    "synthetic": the project's small-weight ``synthetic.transformer_like``; "exported_small":
    the exported structure with hidden size 32, static input dims (1, 16) and 16 token types
    (random calibration data draws integers 0..9), small enough to calibrate, analyse and
    profile in a benchmark.
    """
    import onnx

    cache = (
        cache or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "npu-studio-bench"
    )
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{kind}_{nodes}.onnx"
    if path.exists():
        return path
    tmp = cache / f"tmp_{os.getpid()}_{path.name}"
    if kind == "synthetic":
        from studio.core.model.synthetic import transformer_like

        onnx.save(transformer_like(nodes), str(tmp))
        tmp.rename(path)
    else:
        from studio.core.model.synthetic_export import exported_transformer, save_exported

        if kind == "exported_small":
            model = exported_transformer(
                nodes, hidden=32, heads=2, ffn=64, static=(1, 16), type_vocab=16
            )
        else:
            model = exported_transformer(nodes)
        external = nodes >= 50_000
        # external data names the final file: write in place under the final name
        save_exported(model, path if external else tmp, external=external)
        if not external:
            tmp.rename(path)
    return path


def emit(result: dict, out: str | None = None) -> int:
    """Print a benchmark's JSON result (and write it to ``out`` when given); exit status 0."""
    import json

    text = json.dumps(result, indent=1)
    if out:
        Path(out).write_text(text)
    print(text)
    return 0
