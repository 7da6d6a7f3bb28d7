"""Single-node probe models and the worker job that compiles them on a QNN backend.

Why single-node models: a backend's verdict depends on the op *and* its shapes, dtypes, attributes
and quantisation, which only the real compiler knows. Each probe is the node itself, fed by the
DequantizeLinear nodes that feed it in the model and followed by the QuantizeLinear that consumes
its output (so a QDQ Conv is probed as the int8 Conv HTP would run), with the real shapes and
dtypes as graph inputs and outputs. Tensors are renamed canonically so that identical signatures
produce identical probes: large weights are left out of the signature (their values do not change
support), small constant inputs such as Reshape shapes are kept (they do).

The job (run in the worker process) compiles each probe with CPU fallback disabled and ORT's
verbose log captured from fd 2; the QNN EP writes "Validation FAILED ... REASON : ..." there. It
appends each result to a JSON-lines file as it goes, so a crash loses only the probe in progress.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from studio.core.jobs.protocol import JobContext, job
from studio.core.model.ops import QDQ_OPS

SMALL_INIT = 64  # constant inputs with at most this many elements are part of the signature


def load_full_model(graph: Any) -> onnx.ModelProto:
    """The shape-inferred proto with every weight in memory (external data read once, here)."""
    model = copy.deepcopy(graph.proto)
    if graph.external_refs:
        for t in model.graph.initializer:
            if t.name in graph.external_refs:
                arr = graph.initializer_array(t.name)
                t.CopyFrom(onnx.numpy_helper.from_array(arr, t.name))
    return model


def write_named_model(graph: Any, full_model: onnx.ModelProto, path: Path) -> None:
    """The whole model with every node named by its studio id, so the EP's log names our nodes."""
    model = copy.deepcopy(full_model)
    for info, node in zip(graph.nodes, model.graph.node, strict=True):
        node.name = info.id
    onnx.save(model, str(path))


def _producer(graph: Any, tensor: str) -> Any:
    info = graph.tensors.get(tensor)
    return graph.node_by_id.get(info.producer) if info is not None and info.producer else None


def _value_info(graph: Any, name: str, new_name: str) -> onnx.ValueInfoProto:
    info = graph.tensors.get(name)
    elem = info.elem_type if info is not None else None
    if not elem:
        return helper.make_empty_tensor_value_info(new_name)
    shape = info.shape
    dims = None if shape is None else [d if isinstance(d, int) and d > 0 else "dyn" for d in shape]
    return helper.make_tensor_value_info(new_name, elem, dims)


def build_probe(graph: Any, node: Any, protos: dict[str, onnx.NodeProto], inits: dict[str, Any]):
    """The single-node model for ``node`` (plus its Q/DQ neighbours) and its signature key."""
    nodes: list[onnx.NodeProto] = []
    used_inits: list[str] = []
    inputs: list[str] = []
    if node.op_type not in QDQ_OPS:
        for t in node.inputs:
            producer = _producer(graph, t) if t else None
            if producer is not None and producer.op_type == "DequantizeLinear":
                nodes.append(protos[producer.id])
    nodes.append(protos[node.id])
    outputs = list(node.outputs)
    if node.op_type not in QDQ_OPS:
        outputs = []
        for t in node.outputs:
            info = graph.tensors.get(t)
            quant = [
                graph.node_by_id[c]
                for c in (info.consumers if info is not None else [])
                if graph.node_by_id[c].op_type == "QuantizeLinear"
            ]
            if quant:
                nodes.append(protos[quant[0].id])
                outputs.extend(quant[0].outputs[:1])
            elif t:
                outputs.append(t)
    produced = {o for n in nodes for o in n.output if o}
    for n in nodes:
        for t in n.input:
            if not t or t in produced or t in inputs or t in used_inits:
                continue
            (used_inits if t in inits else inputs).append(t)
    # Canonical names: identical signatures must give byte-identical probes.
    rename: dict[str, str] = {"": ""}
    for t in inputs + used_inits:
        rename.setdefault(t, f"t{len(rename) - 1}")
    for n in nodes:
        for t in n.output:
            rename.setdefault(t, f"t{len(rename) - 1}")
    new_nodes = []
    for i, n in enumerate(nodes):
        clone = copy.deepcopy(n)
        clone.name = "probe" if n is protos[node.id] else f"ctx{i}"
        clone.input[:] = [rename[t] for t in n.input]
        clone.output[:] = [rename[t] if t in outputs or t in produced else "" for t in n.output]
        new_nodes.append(clone)
    new_inits = []
    for t in used_inits:
        tensor = copy.deepcopy(inits[t])
        tensor.name = rename[t]
        new_inits.append(tensor)
    model_graph = helper.make_graph(
        new_nodes,
        "probe",
        [_value_info(graph, t, rename[t]) for t in inputs],
        [_value_info(graph, t, rename[t]) for t in outputs],
        new_inits,
    )
    model = helper.make_model(model_graph, opset_imports=list(graph.proto.opset_import))
    model.ir_version = graph.proto.ir_version
    return model, _signature(model)


def _signature(model: onnx.ModelProto) -> str:
    """Hash of the probe with large weights reduced to dtype+shape (their values do not matter)."""
    light = copy.deepcopy(model)
    for t in light.graph.initializer:
        count = 1
        for d in t.dims:
            count *= d
        if count > SMALL_INIT:
            dims, dtype, name = list(t.dims), t.data_type, t.name
            t.Clear()
            t.name, t.data_type = name, dtype
            t.dims.extend(dims)
    return hashlib.sha256(light.SerializeToString(deterministic=True)).hexdigest()[:24]


def write_probes(
    graph: Any, full_model: onnx.ModelProto, folder: Path
) -> tuple[dict[str, tuple[Path, list[str]]], dict[str, str]]:
    """Write one probe per distinct signature; returns key -> (path, node ids) and build failures.

    Constant nodes are not probed: they carry no computation and are folded into whatever
    segment consumes them. Q/DQ nodes that belong to a compute node's QDQ unit are not probed
    either: they are part of that node's probe and share its verdict.
    """
    protos = {info.id: n for info, n in zip(graph.nodes, full_model.graph.node, strict=True)}
    inits = {t.name: t for t in full_model.graph.initializer}
    for info in graph.nodes:  # Constant outputs behave like initializers in a probe
        if info.op_type == "Constant" and not info.inputs:
            value = next((a for a in protos[info.id].attribute if a.name == "value"), None)
            if value is not None:
                inits.setdefault(info.outputs[0], value.t)
    groups: dict[str, tuple[Path, list[str]]] = {}
    failures: dict[str, str] = {}
    for info in graph.nodes:
        if (info.op_type == "Constant" and not info.inputs) or qdq_owner(graph, info):
            continue
        try:
            model, key = build_probe(graph, info, protos, inits)
        except Exception as exc:  # an odd node must not stop the other probes
            failures[info.id] = f"could not build a probe model: {type(exc).__name__}: {exc}"
            continue
        if key not in groups:
            path = folder / f"probe_{len(groups):04d}_{info.op_type}.onnx"
            onnx.save(model, str(path))
            groups[key] = (path, [])
        groups[key][1].append(info.id)
    return groups, failures


# ----- log parsing ----------------------------------------------------------------------------
_UNIT = re.compile(r"Validation (PASSED|FAILED) for \d+ nodes in \w*NodeUnit \(([^)]*)\)")
_MEMBER = re.compile(r"Operator type: (\S+) Node name: (.*?) Node index:")
_REASON = re.compile(r"REASON\s*:\s*(.*)")


def parse_units(log: str) -> dict[str, tuple[bool, str]]:
    """Node name -> (passed, reason) from the QNN EP's LogNodeSupport lines (last verdict wins)."""
    verdicts: dict[str, tuple[bool, str]] = {}
    members: list[str] = []
    passed = True
    for line in log.splitlines():
        unit = _UNIT.search(line)
        if unit:
            members, passed = [], unit.group(1) == "PASSED"
            continue
        member = _MEMBER.search(line)
        if member:
            name = member.group(2).strip().removesuffix("/duplicated")
            members.append(name)
            verdicts[name] = (passed, "")
            continue
        reason = _REASON.search(line)
        if reason and members:
            text = _clean_reason(reason.group(1))
            for name in members:
                verdicts[name] = (passed, text)
    return verdicts


def _clean_reason(text: str) -> str:
    text = " ".join(text.split())
    # "Operators of type `Erf` are not supported by QNN EP.Erf node `n` will not be assigned..."
    return re.sub(r"(\.)\S+ node `[^`]*` will not be assigned to QNN EP\.?", r"\1", text)


_GENERIC = (
    "fallback to CPU EP has been explicitly disabled",
    "OrtEp::GetCapability()",
    "Unsupported nodes in QNN EP:",
)
_CAUSE = re.compile(r"not support|failed|error|invalid|cannot|unsupported", re.IGNORECASE)
_ORT_PREFIX = re.compile(r"^\S+ \S+ \[[VIWEF]:onnxruntime:[^\]]*\] ?")


def failure_reason(log_text: str, exc_text: str) -> str:
    """The most specific reason: the EP's REASON line, else a QNN log line naming the cause."""
    verdicts = parse_units(log_text)
    for passed, reason in verdicts.values():
        if not passed and reason:
            return reason
    for line in log_text.splitlines():
        if "qnn" not in line.lower() or not _CAUSE.search(line):
            continue
        message = " ".join(_ORT_PREFIX.sub("", line).split())
        if message and not any(g in message for g in _GENERIC):
            return message[:400]
    return " ".join(exc_text.split())[:400]


def qdq_owner(graph: Any, node: Any) -> str | None:
    """The compute node whose QDQ unit a Q/DQ node belongs to (ORT's node-unit grouping), if any.

    A DequantizeLinear belongs to the op it feeds; a QuantizeLinear to the op whose output it
    quantises. Lone Q/DQ nodes (graph-input Q, graph-output DQ) have no owner.
    """
    if node.op_type == "DequantizeLinear":
        info = graph.tensors.get(node.outputs[0]) if node.outputs else None
        for consumer in info.consumers if info is not None else []:
            if graph.node_by_id[consumer].op_type not in (*QDQ_OPS, "Constant"):
                return consumer
    elif node.op_type == "QuantizeLinear" and node.inputs:
        producer = _producer(graph, node.inputs[0])
        if producer is not None and producer.op_type not in (*QDQ_OPS, "Constant"):
            return producer.id
    return None


# ----- the worker job -------------------------------------------------------------------------
def compile_verbose(path: str, backend: str, options: dict[str, str], no_fallback: bool) -> dict:
    import onnxruntime as ort

    from studio.core.engine.sessions import QNN_EP, qnn_ep_devices
    from studio.core.jobs.native_log import capture_fd2

    so = ort.SessionOptions()
    so.log_severity_level = 0  # verbose: the QNN EP's per-node verdicts are VERBOSE lines
    so.log_verbosity_level = 0
    if no_fallback:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    so.add_provider_for_devices(qnn_ep_devices(), {"backend_type": backend, **options})
    error = ""
    providers: list[str] = []
    with capture_fd2(echo=False) as log:
        try:
            sess = ort.InferenceSession(path, sess_options=so)
            providers = list(sess.get_providers())
            del sess
        except Exception as exc:  # ORT raises Fail/RuntimeError with the generic text
            error = f"{type(exc).__name__}: {exc}"
    text = log.text
    if not error and QNN_EP not in providers:
        error = "ORT placed the node on the CPU EP"
    if error:
        return {"ok": False, "reason": failure_reason(text, error), "log": text}
    return {"ok": True, "reason": "", "log": text}


_PLACED_ON = re.compile(r"(?:Node\(s\)|All nodes) placed on \[(\w+)\]")
_PLACED_NODE = re.compile(r"VerifyEachNodeIsAssignedToAnEp\]\s+(\S+) \((.*)\)\s*$")


def parse_placements(log: str) -> dict[str, str]:
    """Node name -> execution provider, from ORT's verbose "Node placements" block.

    QNN partitions appear as fused nodes; only nodes ORT left outside them are named, so the
    result lists what ran on the CPU EP (and any other non-QNN provider).
    """
    placed: dict[str, str] = {}
    current = ""
    for line in log.splitlines():
        header = _PLACED_ON.search(line)
        if header:
            current = header.group(1)
            continue
        node = _PLACED_NODE.search(line)
        if node and current:
            placed[node.group(2).strip()] = current
    return placed


def whole_model_verdict(path: str, backend: str, options: dict[str, str]) -> dict[str, Any]:
    """Compile the whole model with fallback allowed: per-unit verdicts and real placements."""
    whole = compile_verbose(path, backend, options, no_fallback=False)
    log = whole.pop("log", "")
    verdicts = parse_units(log)
    off_qnn = [n for n, ep in parse_placements(log).items() if ep != "QNNExecutionProvider"]
    return {**whole, "verdicts": {k: list(v) for k, v in verdicts.items()}, "off_qnn": off_qnn}


def confirmed_nodes(whole: dict[str, Any] | None) -> set[str]:
    """Nodes the full-model compile proved: validation PASSED and not left to another EP."""
    if not whole or not whole.get("ok"):
        return set()
    off = set(whole.get("off_qnn") or [])
    return {
        n for n, (passed, _) in (whole.get("verdicts") or {}).items() if passed and n not in off
    }


@job
def probe_job(request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Compile the whole model once (fallback allowed), then each needed probe (fallback off).

    With ``isolate="unconfirmed"`` (the default) a probe whose nodes the full-model compile
    already placed on QNN is skipped: that compile is stronger evidence than an isolated one.
    ``isolate="all"`` compiles every probe regardless.
    """
    backend = str(request["backend"])
    options = {str(k): str(v) for k, v in (request.get("provider_options") or {}).items()}
    probes = list(request.get("probes") or [])
    isolate = str(request.get("isolate") or "unconfirmed")
    results_file = Path(str(request["results_file"]))
    out: dict[str, Any] = {"probes": {}, "whole": request.get("whole_result")}
    with open(results_file, "a", encoding="utf-8") as sink:

        def mark(kind: str, key: str, value: Any = None) -> None:
            sink.write(json.dumps({"event": kind, "key": key, "result": value}) + "\n")
            sink.flush()

        if out["whole"] is None and request.get("whole_model"):
            mark("start", "__whole__")
            ctx.progress(0.0, "compiling the whole model")
            out["whole"] = whole_model_verdict(str(request["whole_model"]), backend, options)
            mark("done", "__whole__", out["whole"])
        confirmed = confirmed_nodes(out["whole"]) if isolate == "unconfirmed" else set()
        for i, item in enumerate(probes):
            ctx.check_cancelled()
            if item.get("node_ids") and set(item["node_ids"]) <= confirmed:
                out["probes"][item["key"]] = {"ok": True, "reason": "", "skipped": True}
                continue
            mark("start", item["key"])
            _crash_for_tests(item["path"])
            res = compile_verbose(item["path"], backend, options, no_fallback=True)
            res.pop("log", None)
            out["probes"][item["key"]] = res
            mark("done", item["key"], res)
            ctx.progress((i + 1) / max(len(probes), 1), f"probe {i + 1}/{len(probes)}")
    return out


def _crash_for_tests(path: str) -> None:
    """Die like a native crash when the probe file name contains $STUDIO_TEST_CRASH_PROBE.

    The only way to prove that one crashing probe costs only itself is to crash one; QNN offers
    no op that reliably does so. Unset (always, outside the test suite) this does nothing.
    """
    marker = os.environ.get("STUDIO_TEST_CRASH_PROBE")
    if marker and marker in Path(path).name:
        os.kill(os.getpid(), signal.SIGSEGV)


def read_partial(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """Probe results and the whole-model result written before a crash, and what was running."""
    done: dict[str, Any] = {}
    whole = None
    current = None
    if not path.is_file():
        return done, None, None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "start":
            current = event["key"]
        elif event.get("event") == "done":
            if event["key"] == "__whole__":
                whole = event["result"]
            else:
                done[event["key"]] = event["result"]
            current = None
    return done, whole, current
