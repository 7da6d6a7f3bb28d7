"""Reading QNN's JSON graph dump (provider option ``dump_json_qnn_graph``) for op names and types.

Why: the profiler CSV names QNN ops only. The dump lists every op the backend built, with its type
(``Conv2d``, ``Transpose``, ``Quantize``) and its input/output tensor names, which are derived
from the ONNX tensor names. That is what lets us map an op whose own name says nothing
(``_token_2``, an unnamed node) back to the ONNX node that produced its output, and tell a
layout Transpose the backend inserted from one that was in the model.

The dump also has a ``*_tensor_log.json`` beside each graph file; we read only graph files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class QnnOpInfo:
    """One op of the dumped QNN graph."""

    name: str
    op_type: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def read_qnn_graph_dump(folder: str | Path) -> dict[str, QnnOpInfo]:
    """All ops of every graph dumped into ``folder`` (empty when there is none or it is unreadable).

    A dump we cannot read only weakens the name mapping, so it never fails a profile.
    """
    ops: dict[str, QnnOpInfo] = {}
    root = Path(folder)
    if not root.is_dir():
        return ops
    for path in sorted(root.glob("*.json")):
        if path.name.endswith("_tensor_log.json"):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        graph = data.get("graph") if isinstance(data, dict) else None
        nodes = graph.get("nodes") if isinstance(graph, dict) else None
        if not isinstance(nodes, dict):
            continue
        for name, node in nodes.items():
            if not isinstance(node, dict):
                continue
            ops[str(name)] = QnnOpInfo(
                name=str(name),
                op_type=str(node.get("type", "")),
                inputs=[str(t) for t in node.get("input_names", []) or []],
                outputs=[str(t) for t in node.get("output_names", []) or []],
            )
    return ops
