"""What the Deploy workspace's results pane says after a run, a profile or a phone run.

Each function turns one job's JSON result into the text shown, with the kind of every number
(emulated on this host, measured on the phone, estimated by the device model), so the wording
can be read and tested without a window.
"""

from __future__ import annotations

from typing import Any


def ran_text(result: dict[str, Any]) -> str:
    """A bundle run here: per-segment times of a chain, then the outputs."""
    lines = []
    if "timings" in result:
        lines.append(
            f"{len(result['timings'])} segment(s), {result['total_ms']:.3f} ms (emulated, this host)"
        )
        for t in result["timings"]:
            lines.append(
                f"  segment {t['index']} {t['backend'].upper()}: {t['run_ms']:.3f} ms on "
                f"{', '.join(t['providers'])}"
            )
    for name, info in result.get("outputs", {}).items():
        lines.append(f"output {name}: {info['dtype']} {info['shape']}")
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


def profiled_text(record: dict[str, Any]) -> str:
    """A profile here (it also goes to the Profiling workspace)."""
    s = record["stats"]
    return (
        f"{record.get('label')}: p50 {s['p50_ms']:.3f} ms, mean {s['mean_ms']:.3f} ms over "
        f"{s['count']} runs (emulated: HTP on x86-64 is the emulator)\n"
        + "\n".join(record.get("notes", []))
        + "\n\nSent to the Profiling workspace."
    )


def device_text(result: dict[str, Any]) -> str:
    """A run on a phone: its latency, the device estimate beside it, the costliest layers."""
    est = result.get("estimate") or {}
    lines = [result["latency_label"]]
    if est.get("label"):
        lines.append(f"device estimate: {est['label']}")
    if est.get("error_text"):
        lines.append(f"estimate error on this model: {est['error_text']}")
    for row in sorted(result.get("layers") or [], key=lambda r: -(r.get("cycles") or 0))[:8]:
        lines.append(
            f"  {row.get('cycles') or 0:>12,.0f} cycles  {row['node_id']} ({result['measured']})"
        )
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
