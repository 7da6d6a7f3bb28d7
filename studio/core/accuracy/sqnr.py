"""Per-layer SQNR: the float model against its QDQ model, tensor by tensor, on CPU or QNN HTP.

How (as ``onnxruntime.quantization.qdq_loss_debug`` does, but tapping the QuantizeLinear codes
so the integer kernels stay fused): every quantised activation of the QDQ model and the float
tensor of the same name in the float model are exposed as graph outputs; both models run once per sample; the pairs are reduced on the fly to ``sum(x^2)`` and
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
_PHASE = 8  # samples per float/QDQ phase
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
@dataclass
class QuantTap:
    """Where a float tensor's quantised value can be read in the QDQ model: the QuantizeLinear
    output (integer codes) and its per-tensor scale and zero point."""

    output: str
    scale: float
    zero_point: float

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        x = codes.astype(np.float32)
        x -= np.float32(self.zero_point)
        x *= np.float32(self.scale)
        return x


def qdq_pairs(qdq: onnx.ModelProto) -> dict[str, QuantTap]:
    """Float tensor name -> the QuantizeLinear that quantises it (ORT's QDQ layout).

    The Q output, not the DequantizeLinear output, is exposed: ORT (and QNN) fuse DQ -> op -> Q
    into integer kernels only while a DQ output is not a graph output, so tapping the codes
    keeps the measured model the model that ships, and it runs at full speed.
    """
    inits = {t.name: t for t in qdq.graph.initializer}
    producers = {o: n for n in qdq.graph.node for o in n.output}
    pairs: dict[str, QuantTap] = {}
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        prod = producers.get(node.input[0])
        if prod is not None and prod.op_type == "DequantizeLinear":
            continue  # an 8<->16-bit convert of a tensor already tapped
        src = node.input[0].removesuffix("_QuantizeLinear_Input")
        scale = inits.get(node.input[1])
        zp = inits.get(node.input[2]) if len(node.input) > 2 else None
        if src in pairs or scale is None:
            continue
        scale_v = numpy_helper.to_array(scale).reshape(-1)
        zp_v = numpy_helper.to_array(zp).reshape(-1) if zp is not None else np.zeros(1)
        if scale_v.size != 1:
            continue  # per-channel activations: not produced by our builder
        pairs[src] = QuantTap(node.output[0], float(scale_v[0]), float(zp_v[0]))
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
    # two sessions take turns here: idle pool threads spinning would steal the other's cores
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


class Analyser:
    """Holds the two instrumented sessions, so repeated analyses (auto mixed precision) only pay
    for the QDQ side: the float side's per-sample tensors can be kept (``cache_float``)."""

    def __init__(self, float_model: str | Path | onnx.ModelProto, *, cache_float: bool = True):
        self.float_proto = (
            float_model if isinstance(float_model, onnx.ModelProto) else onnx.load(str(float_model))
        )
        self.float_names = {i.name for i in self.float_proto.graph.input} | {
            o for n in self.float_proto.graph.node for o in n.output if o
        }
        self.cache_float = cache_float
        self._float_sess: ort.InferenceSession | None = None
        self._float_fetch: list[str] = []
        self._float_exposed: frozenset[str] = frozenset()
        self._float_cache: list[dict[str, np.ndarray]] | None = None
        self._cached_feeds: list[dict[str, np.ndarray]] | None = None
        self._probe_feed: dict[str, np.ndarray] | None = None

    def _float_values(self, feeds: list[dict[str, np.ndarray]], wanted: set[str]):
        """Float tensors per sample; only ``wanted`` ones are exposed (fewer copies, and ORT
        keeps fusing everything else). A wider request later re-instruments the session."""
        if not wanted <= self._float_exposed:
            self._float_cache = None
            self._float_exposed = frozenset(wanted | set(self._float_exposed))
            self._float_sess = _cpu_session(_expose(self.float_proto, sorted(self._float_exposed)))
            self._float_fetch = [o.name for o in self._float_sess.get_outputs()]
        if self._float_cache is not None and self._cached_feeds is feeds:
            yield from self._float_cache
            return
        assert self._float_sess is not None
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
        pairs = {f: tap for f, tap in qdq_pairs(qproto).items() if f in self.float_names}
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
        float_iter = self._float_values(feeds, set(pairs) | set(outputs))
        done = 0
        # Run the two models in phases of a few samples, not alternately: two ORT thread pools
        # taking turns sample by sample slow each other down several times on a small machine.
        for begin in range(0, len(feeds), _PHASE):
            chunk = feeds[begin : begin + _PHASE]
            fchunk = [next(float_iter) for _ in chunk]
            for feed, fvals in zip(chunk, fchunk, strict=True):
                ctx.check_cancelled()
                qvals = dict(zip(fetch, qsess.run(fetch, feed), strict=True))
                for name in outputs:
                    _accumulate(sums[name], fvals[name], qvals[name])
                if intermediates:
                    for fname, tap in pairs.items():
                        if fname in fvals and tap.output in qvals:
                            _accumulate(
                                sums[fname], fvals[fname], tap.dequantize(qvals[tap.output])
                            )
                done += 1
                ctx.progress(done / len(feeds), f"SQNR {done}/{len(feeds)} samples")
        for _rest in float_iter:  # let the generator finish (it fills the float cache)
            pass
        report.outputs = {name: sqnr_db(*sums[name]) for name in outputs}
        if intermediates:
            report.layers = _layers(self.float_proto, pairs, sums, qproto)
        report.weights = weight_sqnr(self.float_proto, qproto)
        report.elapsed_s = time.perf_counter() - start
        return report

    def _qdq_session(self, path, qproto, pairs, outputs, backend, report):
        names = [tap.output for tap in pairs.values()]
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
    x = np.asarray(ref, dtype=np.float32).reshape(-1)
    y = np.asarray(test, dtype=np.float32).reshape(-1)
    if x.shape != y.shape:
        return
    acc[0] += float(np.dot(x, x))
    d = np.subtract(x, y)
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
