"""Which nodes really run on the QNN backend, which fell back to the CPU EP, and why.

A session is only called "on HTP" when it is. ORT records the node-to-EP assignment when the
session option ``session.record_ep_graph_assignment_info`` is set; this is the authority used here.
The QNN EP's verbose log adds the reason for each rejected node ("Operators of type `Erf` are not
supported by QNN EP"), parsed from file descriptor 2 while the session is created.

Graph-input QuantizeLinear and graph-output DequantizeLinear nodes are left on the CPU by design
when ``offload_graph_io_quantization`` is on (the QNN EP's default): they are listed apart and do
not count against full offload, which matches what ORT itself accepts with CPU fallback disabled.
Helper code for per-node op support (the backends workspace) reuses :func:`offload_report`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import BadInputError, StudioError

SCHEMA_VERSION = 1
RECORD_ASSIGNMENT = "session.record_ep_graph_assignment_info"
_NODE_LINE = re.compile(r"Operator type: (\S+) Node name: (.*?) Node index: \d+")


@dataclass
class NodePlacement:
    """One node of the session graph and where ORT put it."""

    name: str
    op_type: str
    ep: str
    in_model: bool = True  # False: a node ORT created while optimising (renamed/fused)
    io_quantization: bool = False
    reason: str | None = None


@dataclass
class OffloadReport:
    """Assignment of a model's nodes to the QNN backend vs the CPU EP."""

    model: str
    backend: str
    full_offload: bool
    total_nodes: int = 0
    qnn_node_count: int = 0
    partitions: int = 0
    cpu_nodes: list[NodePlacement] = field(default_factory=list)
    io_quant_nodes: list[NodePlacement] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def cpu_node_names(self) -> list[str]:
        return [n.name for n in self.cpu_nodes]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OffloadReport:
        data = dict(data)
        for key in ("cpu_nodes", "io_quant_nodes"):
            data[key] = [NodePlacement(**n) for n in data.get(key, [])]
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def summary(self) -> str:
        if self.error:
            return f"{self.backend.upper()} session could not be created: {self.error}"
        if self.full_offload:
            text = f"fully offloaded to {self.backend.upper()}: {self.qnn_node_count} node(s)"
            if self.io_quant_nodes:
                text += (
                    f" (+{len(self.io_quant_nodes)} graph I/O (de)quantize nodes on CPU by design)"
                )
            return text
        names = ", ".join(f"{n.name} ({n.op_type})" for n in self.cpu_nodes[:8])
        more = f" and {len(self.cpu_nodes) - 8} more" if len(self.cpu_nodes) > 8 else ""
        return (
            f"{len(self.cpu_nodes)} of {self.total_nodes} nodes fell back to the CPU EP: "
            f"{names}{more}"
        )


def parse_rejections(log_lines: list[str]) -> dict[str, str]:
    """Node name -> reason, from the QNN EP's 'Validation FAILED ... REASON : ...' log blocks."""
    reasons: dict[str, str] = {}
    pending: list[str] = []
    collecting = False
    for line in log_lines:
        text = line.strip()
        if "Validation FAILED" in text:
            collecting, pending = True, []
        elif "Validation PASSED" in text or "[V:onnxruntime" in text or "[I:onnxruntime" in text:
            collecting, pending = False, []
        elif collecting:
            match = _NODE_LINE.search(text)
            if match:
                pending.append(match.group(2).strip())
            elif text.startswith("REASON"):
                reason = text.split(":", 1)[1].strip() if ":" in text else text
                for name in pending:
                    reasons.setdefault(name, reason)
                collecting, pending = False, []
    return reasons


def _io_quant_names(model_path: Path) -> tuple[set[str], dict[str, str]]:
    """Names of graph-input Q / graph-output DQ nodes, and name -> op_type of all model nodes."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name for i in model.graph.input} - inits
    outputs = {o.name for o in model.graph.output}
    io_nodes = set()
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input and node.input[0] in inputs:
            io_nodes.add(node.name)
        if node.op_type == "DequantizeLinear" and any(o in outputs for o in node.output):
            io_nodes.add(node.name)
    return io_nodes, {n.name: n.op_type for n in model.graph.node if n.name}


def offload_report(
    model_path: str | Path,
    backend: str = "htp",
    *,
    provider_options: dict[str, Any] | None = None,
    session_config: dict[str, Any] | None = None,
    reasons: bool = True,
) -> OffloadReport:
    """Create a session with CPU fallback allowed and report where every node went.

    Runs native code: call it in the worker (``engine.jobs.offload``) when a crash must not take
    the caller down. ``reasons`` turns on ORT verbose logging to explain each rejected node.
    """
    from studio.core.engine.registry import get_spec, pick_reason
    from studio.core.engine.sessions import make_session
    from studio.core.jobs.native_log import capture_fd2

    spec = get_spec(backend)
    if spec.qnn_backend_type is None:
        raise BadInputError(f"the offload report is for QNN backends, not '{backend}'")
    path = Path(model_path)
    config = {str(k): str(v) for k, v in (session_config or {}).items()}
    config["session.record_ep_graph_assignment_info"] = "1"
    report = OffloadReport(model=str(path), backend=backend, full_offload=False)
    log = None
    try:
        with capture_fd2(echo=False) as log:
            sess, _ = make_session(
                path,
                backend,
                provider_options=provider_options,
                session_config=config,
                log_severity_level=0 if reasons else 3,
            )
            assignment = sess.get_provider_graph_assignment_info()
    except StudioError as exc:
        report.error = pick_reason(str(exc), log.ort_messages() if log else [])
        return report
    except Exception as exc:  # ORT's own exception types
        report.error = pick_reason(
            f"{type(exc).__name__}: {exc}", log.ort_messages() if log else []
        )
        return report
    return report_from_session(
        sess, path, backend, parse_rejections(log.lines) if log and reasons else {}, assignment
    )


def report_from_session(
    sess: Any,
    model_path: str | Path,
    backend: str,
    reasons: dict[str, str] | None = None,
    assignment: Any = None,
) -> OffloadReport:
    """Build the report from a session created with ``session.record_ep_graph_assignment_info=1``.

    Lets a caller that needs the session anyway (``run``) check offload without a second session.
    """
    from studio.core.engine.registry import get_spec

    spec = get_spec(backend)
    path = Path(model_path)
    io_nodes, model_nodes = _io_quant_names(path)
    if assignment is None:
        assignment = sess.get_provider_graph_assignment_info()
    report = OffloadReport(model=str(path), backend=backend, full_offload=False)
    report.reasons = dict(reasons or {})
    for subgraph in assignment:
        nodes = list(subgraph.get_nodes())
        report.total_nodes += len(nodes)
        if subgraph.ep_name == spec.ep:
            report.partitions += 1
            report.qnn_node_count += len(nodes)
            continue
        for node in nodes:
            placement = NodePlacement(
                name=node.name,
                op_type=node.op_type,
                ep=subgraph.ep_name,
                in_model=node.name in model_nodes,
                io_quantization=node.name in io_nodes,
                reason=report.reasons.get(node.name),
            )
            (report.io_quant_nodes if placement.io_quantization else report.cpu_nodes).append(
                placement
            )
    report.full_offload = not report.cpu_nodes and report.qnn_node_count > 0
    return report
