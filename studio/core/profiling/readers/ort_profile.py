"""Reading ONNX Runtime's profile JSON (``SessionOptions.enable_profiling``) into per-run node times.

The file is a Chrome trace: a JSON list of ``{"cat", "name", "ts", "dur", "args"}`` events. Node
events (``cat == "Node"``) are named ``<node name>_kernel_time`` (fence events ``_fence_before`` /
``_fence_after`` carry no time of their own and are skipped). Names are those of the *optimized*
graph ORT ran, so a fused CPU node may be named after its output (``/stem/Relu_output_0_nchwc``)
or be inserted by ORT (``ReorderOutput``); :mod:`studio.core.profiling.mapping` maps them back.

Runs are the ``model_run`` Session events; a node event belongs to the run whose time span holds
its timestamp. A QNN EP partition shows up as one node with provider ``QNNExecutionProvider``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import BadInputError

_KERNEL_SUFFIX = "_kernel_time"


@dataclass
class OrtNodeTime:
    """One kernel execution: node name (suffix removed), ORT op type, provider, duration (µs)."""

    name: str
    op_type: str
    provider: str
    dur_us: float
    output_shapes: list[list[int]] = field(default_factory=list)


@dataclass
class OrtRun:
    """One ``session.run``: its total (µs) and its kernels in execution order."""

    dur_us: float
    nodes: list[OrtNodeTime] = field(default_factory=list)


@dataclass
class OrtProfile:
    """Session set-up times (µs) and the runs."""

    setup_us: dict[str, float] = field(default_factory=dict)
    runs: list[OrtRun] = field(default_factory=list)


def _shapes(items: Any) -> list[list[int]]:
    out: list[list[int]] = []
    for item in items or []:
        if isinstance(item, dict):
            for dims in item.values():
                if isinstance(dims, list):
                    out.append([int(d) for d in dims if isinstance(d, (int, float))])
    return out


def parse_ort_profile_events(events: Any, source: str = "<events>") -> OrtProfile:
    """Group node events into runs; raise BadInputError when ``events`` is not a trace list."""
    if not isinstance(events, list):
        raise BadInputError("ORT profile is not a JSON list of trace events", path=source)
    profile = OrtProfile()
    spans: list[tuple[float, float, OrtRun]] = []
    kernels: list[tuple[float, OrtNodeTime]] = []
    for ev in events:
        if not isinstance(ev, dict):
            continue
        cat, name = ev.get("cat"), str(ev.get("name", ""))
        try:
            ts, dur = float(ev.get("ts", 0)), float(ev.get("dur", 0))
        except (TypeError, ValueError):
            continue
        if cat == "Session":
            if name == "model_run":
                run = OrtRun(dur_us=dur)
                spans.append((ts, ts + dur, run))
            elif name in ("model_loading_uri", "model_loading_array", "session_initialization"):
                profile.setup_us[name] = profile.setup_us.get(name, 0.0) + dur
        elif cat == "Node" and name.endswith(_KERNEL_SUFFIX):
            args = ev.get("args") or {}
            kernels.append(
                (
                    ts,
                    OrtNodeTime(
                        name=name[: -len(_KERNEL_SUFFIX)],
                        op_type=str(args.get("op_name", "")),
                        provider=str(args.get("provider", "")),
                        dur_us=dur,
                        output_shapes=_shapes(args.get("output_type_shape")),
                    ),
                )
            )
    spans.sort(key=lambda s: s[0])
    for ts, node in sorted(kernels, key=lambda k: k[0]):
        for start, end, run in spans:
            if start <= ts <= end:
                run.nodes.append(node)
                break
    profile.runs = [run for _, _, run in spans]
    return profile


def parse_ort_profile(path: str | Path) -> OrtProfile:
    """Parse the JSON file returned by ``InferenceSession.end_profiling()``."""
    p = Path(path)
    try:
        events = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"cannot read ORT profile JSON: {exc}", path=str(p)) from exc
    return parse_ort_profile_events(events, str(p))
