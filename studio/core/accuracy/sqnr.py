"""Per-layer SQNR: the float model against its QDQ model, tensor by tensor, on CPU or QNN HTP.

How (as ``onnxruntime.quantization.qdq_loss_debug`` does): every float activation of the float
model and the DequantizeLinear output that stands for it in the QDQ model are exposed as graph
outputs; both models run once per sample; the pairs are reduced on the fly to ``sum(x^2)`` and
``sum((x-y)^2)`` per tensor, pooled over samples, so memory stays flat:

    SQNR = 20 log10(||x|| / ||x - y||) = 10 log10(sum x^2 / sum (x - y)^2)

A layer's SQNR is cumulative: it includes the error of everything upstream. ``added_db`` is the
part a tensor adds itself (its worst input's SQNR minus its own), which is what mixed precision
should rank by.

On HTP the instrumented QDQ model is tried first (with CPU fallback disabled); if QNN cannot take
it whole, or its outputs differ from the plain model's on HTP, only the model outputs are
compared there and the report says so (``htp_intermediates``). Weight SQNR compares each float
weight with the dequantised initializer actually stored in the QDQ model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from studio.core.errors import BadInputError
from studio.core.jobs import JobContext
from studio.core.runtime import make_session

SCHEMA_VERSION = 1
_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}


def sqnr_db(signal_sq: float, noise_sq: float) -> float:
    """SQNR in dB from summed squares; +inf when the copy is exact."""
    if noise_sq <= 0.0:
        return math.inf
    if signal_sq <= 0.0:
        return -math.inf
    return 10.0 * math.log10(signal_sq / noise_sq)


@dataclass
class LayerSqnr:
    """One quantised activation: cumulative SQNR and the part this tensor adds itself."""

    tensor: str
    op_type: str
    node: str
    sqnr_db: float
    added_db: float = 0.0
    bitwidth: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "op_type": self.op_type,
            "node": self.node,
            "sqnr_db": _num(self.sqnr_db),
            "added_db": _num(self.added_db),
            "bitwidth": self.bitwidth,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LayerSqnr:
        return cls(
            tensor=data["tensor"],
            op_type=data.get("op_type", ""),
            node=data.get("node", ""),
            sqnr_db=_unnum(data["sqnr_db"]),
            added_db=_unnum(data.get("added_db", 0.0)),
            bitwidth=data.get("bitwidth"),
        )


@dataclass
class SqnrReport:
    """What ``analyse`` measured, and on what."""

    backend: str
    samples: int
    layers: list[LayerSqnr] = field(default_factory=list)
    outputs: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    htp_intermediates: bool = False
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def output_sqnr_db(self) -> float:
        """The worst output's SQNR (what a target is checked against)."""
        return min(self.outputs.values()) if self.outputs else math.nan

    def layer(self, tensor: str) -> LayerSqnr | None:
        return next((item for item in self.layers if item.tensor == tensor), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "backend": self.backend,
            "samples": self.samples,
            "output_sqnr_db": _num(self.output_sqnr_db),
            "outputs": {k: _num(v) for k, v in self.outputs.items()},
            "layers": [item.to_json() for item in self.layers],
            "weights": {k: _num(v) for k, v in self.weights.items()},
            "htp_intermediates": self.htp_intermediates,
            "notes": list(self.notes),
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SqnrReport:
        return cls(
            backend=data["backend"],
            samples=int(data["samples"]),
            layers=[LayerSqnr.from_json(d) for d in data.get("layers", [])],
            outputs={k: _unnum(v) for k, v in data.get("outputs", {}).items()},
            weights={k: _unnum(v) for k, v in data.get("weights", {}).items()},
            htp_intermediates=bool(data.get("htp_intermediates", False)),
            notes=list(data.get("notes", [])),
            elapsed_s=float(data.get("elapsed_s", 0.0)),
        )


def _num(value: float) -> float | str:
    """JSON has no infinities: an exact match is written as the string "inf"."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return None if math.isnan(value) else float(value)  # type: ignore[return-value]


def _unnum(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)


# ----- pairing float tensors with their QDQ stand-ins -----------------------------------------
def qdq_pairs(qdq: onnx.ModelProto) -> dict[str, str]:
    """Float tensor name -> the DequantizeLinear output that carries its quantised value."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in qdq.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inits = {t.name for t in qdq.graph.initializer}
    pairs: dict[str, str] = {}
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        src = node.input[0].removesuffix("_QuantizeLinear_Input")
        if src in pairs:
            continue
        dq = next(
            (c for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"), None
        )
        if dq is not None:
            pairs[src] = dq.output[0]
    return pairs


def _expose(model: onnx.ModelProto, names: Iterable[str]) -> bytes:
    aug = onnx.ModelProto()
    aug.CopyFrom(model)
    have = {o.name for o in aug.graph.output}
    for name in names:
        if name not in have:
            vi = onnx.ValueInfoProto()
            vi.name = name
            aug.graph.output.append(vi)
            have.add(name)
    return aug.SerializeToString()


def _cpu_session(data: bytes | str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _float_activations(model: onnx.ModelProto) -> set[str]:
    inits = {t.name for t in model.graph.initializer}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # types come from ORT at run time then
        inferred = model
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in list(inferred.graph.value_info)
        + list(inferred.graph.output)
        + list(inferred.graph.input)
    }
    names = {i.name for i in model.graph.input if i.name not in inits}
    names |= {o for n in model.graph.node for o in n.output if o}
    return {n for n in names if types.get(n, onnx.TensorProto.FLOAT) in _FLOAT}


class Analyser:
    """Holds the two instrumented sessions, so repeated analyses (auto mixed precision) only pay
    for the QDQ side: the float side's per-sample tensors can be kept (``cache_float``)."""

    def __init__(self, float_model: str | Path | onnx.ModelProto, *, cache_float: bool = True):
        self.float_proto = (
            float_model if isinstance(float_model, onnx.ModelProto) else onnx.load(str(float_model))
        )
        self.float_names = _float_activations(self.float_proto)
        self.cache_float = cache_float
        self._float_sess: ort.InferenceSession | None = None
        self._float_fetch: list[str] = []
        self._float_cache: list[dict[str, np.ndarray]] | None = None
        self._cached_feeds: list[dict[str, np.ndarray]] | None = None
        self._probe_feed: dict[str, np.ndarray] | None = None

    def _float_values(self, feeds: list[dict[str, np.ndarray]], wanted: set[str]):
        if self._float_cache is not None and self._cached_feeds is feeds:
            yield from self._float_cache
            return
        if self._float_sess is None:
            self._float_sess = _cpu_session(_expose(self.float_proto, sorted(self.float_names)))
            self._float_fetch = [o.name for o in self._float_sess.get_outputs()]
        cache: list[dict[str, np.ndarray]] = []
        fetch = self._float_fetch
        for feed in feeds:
            values = dict(zip(fetch, self._float_sess.run(fetch, feed), strict=True))
            values.update({k: v for k, v in feed.items()})
            if self.cache_float:
                cache.append(values)
            yield values
        if self.cache_float:
            self._float_cache, self._cached_feeds = cache, feeds

    def analyse(
        self,
        qdq_model: str | Path,
        feeds: list[dict[str, np.ndarray]],
        *,
        backend: str = "cpu",
        ctx: JobContext | None = None,
    ) -> SqnrReport:
        """Per-layer, weight and output SQNR of ``qdq_model`` against the float model."""
        ctx = ctx or JobContext()
        start = time.perf_counter()
        if not feeds:
            raise BadInputError("SQNR needs at least one input sample")
        qproto = onnx.load(str(qdq_model))
        pairs = {f: q for f, q in qdq_pairs(qproto).items() if f in self.float_names}
        outputs = [o.name for o in self.float_proto.graph.output]
        q_outputs = {o.name for o in qproto.graph.output}
        missing = [o for o in outputs if o not in q_outputs]
        if missing:
            raise BadInputError(
                f"the quantised model has no output '{missing[0]}' (float and QDQ models differ)",
                path=str(qdq_model),
            )
        report = SqnrReport(backend=backend, samples=len(feeds))
        self._probe_feed = feeds[0]
        qsess, fetch, intermediates = self._qdq_session(
            qdq_model, qproto, pairs, outputs, backend, report
        )
        report.htp_intermediates = backend != "cpu" and intermediates
        sums = {name: [0.0, 0.0] for name in list(pairs) + outputs}
        for i, fvals in enumerate(self._float_values(feeds, set(pairs))):
            ctx.check_cancelled()
            qvals = dict(zip(fetch, qsess.run(fetch, feeds[i]), strict=True))
            for name in outputs:
                _accumulate(sums[name], fvals[name], qvals[name])
            if intermediates:
                for fname, qname in pairs.items():
                    if fname in fvals and qname in qvals:
                        _accumulate(sums[fname], fvals[fname], qvals[qname])
            ctx.progress((i + 1) / len(feeds), f"SQNR {i + 1}/{len(feeds)} samples")
        report.outputs = {name: sqnr_db(*sums[name]) for name in outputs}
        if intermediates:
            report.layers = _layers(self.float_proto, pairs, sums, qproto)
        report.weights = weight_sqnr(self.float_proto, qproto)
        report.elapsed_s = time.perf_counter() - start
        return report

    def _qdq_session(self, path, qproto, pairs, outputs, backend, report):
        names = list(pairs.values())
        if backend == "cpu":
            sess = _cpu_session(_expose(qproto, names))
            return sess, [o.name for o in sess.get_outputs()], True
        # HTP: instrumented model first, whole-graph on QNN or not at all
        import tempfile

        with tempfile.TemporaryDirectory(prefix="npu-studio-sqnr-") as tmp:
            inst = Path(tmp) / "instrumented.onnx"
            inst.write_bytes(_expose(qproto, names))
            plain, _ = make_session(path, backend, disable_cpu_fallback=True)
            try:
                sess, _ = make_session(inst, backend, disable_cpu_fallback=True)
            except Exception as exc:  # QNN refuses some instrumented graphs: fall back
                report.notes.append(
                    f"QNN {backend.upper()} could not run the instrumented model whole "
                    f"({str(exc)[:160]}); only model outputs were compared on {backend.upper()}"
                )
                return plain, list(outputs), False
        fetch = [o.name for o in sess.get_outputs()]
        # exposing intermediates must not change what the backend computes: check on a sample
        probe = self._probe_feed
        if probe is not None:
            got = dict(zip(fetch, sess.run(fetch, probe), strict=True))
            ref = plain.run(list(outputs), probe)
            for name, value in zip(outputs, ref, strict=True):
                if not np.array_equal(np.asarray(got[name]), np.asarray(value)):
                    report.notes.append(
                        f"exposing intermediates changed '{name}' on {backend.upper()}: "
                        "only model outputs were compared there"
                    )
                    return plain, list(outputs), False
        report.notes.append(
            f"per-layer values on {backend.upper()} come from the model with every quantised "
            "tensor exposed as an output; its outputs equal the plain model's on a probe sample"
        )
        return sess, fetch, True


def _accumulate(acc: list[float], ref: np.ndarray, test: np.ndarray) -> None:
    x = np.asarray(ref, dtype=np.float32).ravel()
    y = np.asarray(test, dtype=np.float32).ravel()
    if x.shape != y.shape:
        return
    acc[0] += float(np.dot(x, x))
    d = x - y
    acc[1] += float(np.dot(d, d))


def _layers(float_proto, pairs, sums, qproto) -> list[LayerSqnr]:
    producers = {o: n for n in float_proto.graph.node for o in n.output}
    bits = _activation_bits(qproto)
    sqnr = {name: sqnr_db(*sums[name]) for name in pairs}

    def paired_inputs(node: onnx.NodeProto) -> list[str]:
        """Nearest measured tensors upstream (through tensors folded away, e.g. Conv->Relu)."""
        found, stack, seen = [], list(node.input), set()
        while stack:
            name = stack.pop()
            if not name or name in seen:
                continue
            seen.add(name)
            if name in sqnr:
                found.append(name)
            elif name in producers:
                stack.extend(producers[name].input)
        return found

    layers = []
    order = [i.name for i in float_proto.graph.input] + [
        o for n in float_proto.graph.node for o in n.output
    ]
    for name in order:
        if name not in pairs:
            continue
        node = producers.get(name)
        upstream = [sqnr[i] for i in paired_inputs(node)] if node is not None else []
        own = sqnr[name]
        if not upstream or math.isinf(own):
            added = 0.0 if math.isinf(own) else own
        else:
            # input noise carries through (and adds, for Add/Mul): what this tensor loses
            # beyond its worst input is its own contribution
            worst = min(upstream)
            added = 0.0 if math.isinf(worst) else max(worst - own, 0.0)
        layers.append(
            LayerSqnr(
                tensor=name,
                op_type=node.op_type if node is not None else "Input",
                node=(node.name or node.op_type) if node is not None else "",
                sqnr_db=own,
                added_db=added,
                bitwidth=bits.get(name),
            )
        )
    return layers


def _activation_bits(qproto: onnx.ModelProto) -> dict[str, int]:
    sizes = {
        onnx.TensorProto.UINT8: 8,
        onnx.TensorProto.INT8: 8,
        onnx.TensorProto.UINT16: 16,
        onnx.TensorProto.INT16: 16,
    }
    inits = {t.name: t for t in qproto.graph.initializer}
    out = {}
    for node in qproto.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is not None:
                name = node.input[0].removesuffix("_QuantizeLinear_Input")
                out.setdefault(name, sizes.get(zp.data_type, 8))
    return out


def weight_sqnr(float_proto: onnx.ModelProto, qproto: onnx.ModelProto) -> dict[str, float]:
    """SQNR of each quantised weight: float initializer vs the dequantised stored one."""
    float_inits = {t.name: t for t in float_proto.graph.initializer}
    q_inits = {t.name: t for t in qproto.graph.initializer}
    out: dict[str, float] = {}
    for node in qproto.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in q_inits:
            continue
        name = node.input[0].removesuffix("_quantized")
        if name not in float_inits or float_inits[name].data_type not in _FLOAT:
            continue
        q = numpy_helper.to_array(q_inits[node.input[0]]).astype(np.float64)
        if q_inits[node.input[0]].data_type == onnx.TensorProto.INT32:
            continue  # biases: int32 at input*weight scale, error negligible by construction
        scale = numpy_helper.to_array(q_inits[node.input[1]]).astype(np.float64)
        zp_name = node.input[2] if len(node.input) > 2 else ""
        zp = (
            numpy_helper.to_array(q_inits[zp_name]).astype(np.float64)
            if zp_name in q_inits
            else np.zeros_like(scale)
        )
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.size > 1:
            shape = [1] * q.ndim
            shape[axis] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        deq = (q - zp) * scale
        ref = numpy_helper.to_array(float_inits[name]).astype(np.float64)
        if ref.shape != deq.shape:
            continue
        out[name] = sqnr_db(float(np.sum(ref * ref)), float(np.sum((ref - deq) ** 2)))
    return out
