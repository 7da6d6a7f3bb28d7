"""Per-layer SQNR: the float model against its QDQ model, tensor by tensor, on CPU or QNN HTP.

How (as ``onnxruntime.quantization.qdq_loss_debug`` does, but tapping the QuantizeLinear codes
so the integer kernels stay fused): every quantised activation of the QDQ model and the float
tensor of the same name in the float model are exposed as graph outputs; both models run over
the samples; the pairs are reduced on the fly to ``sum(x^2)`` and ``sum((x-y)^2)`` per tensor,
pooled over samples, so memory stays flat. On CPU, samples run in stacked batches when every
compared tensor provably carries the batch dim (checked on every run, else one at a time).

A layer's SQNR is cumulative: it includes the error of everything upstream. ``added_db`` is the
part a tensor adds itself (its worst input's SQNR minus its own), which is what mixed precision
should rank by.

On HTP the instrumented QDQ model is tried first (with CPU fallback disabled); if QNN cannot take
it whole, or its outputs differ from the plain model's on HTP, only the model outputs are
compared there and the report says so (``htp_intermediates``). Weight SQNR compares each float
weight with the dequantised initializer actually stored in the QDQ model.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from studio.core.accuracy.report import LayerSqnr, SqnrReport, sqnr_db
from studio.core.accuracy.taps import (
    FusedActivation,
    QuantTap,
    _layers,
    fused_activations,
    qdq_pairs,
    weight_sqnr,
)
from studio.core.engine.sessions import make_session, simulation_session
from studio.core.errors import BadInputError
from studio.core.jobs.protocol import JobContext
from studio.core.model.expose import with_outputs
from studio.core.model.normalise import fixed_batch_nodes

_BATCH = 8  # samples stacked per CPU run (and per float/QDQ phase)

__all__ = ["Analyser", "LayerSqnr", "QuantTap", "SqnrReport", "qdq_pairs", "sqnr_db", "weight_sqnr"]


def _expose(model: onnx.ModelProto, names: Iterable[str], *, batched: bool = False) -> bytes:
    """The model with ``names`` added as outputs; ``batched`` frees the inputs' leading dim."""
    return with_outputs(model, names, batched=batched).SerializeToString()


def _static_shapes(proto: onnx.ModelProto) -> dict[str, list[int]]:
    shapes = {}
    for vi in list(proto.graph.input) + list(proto.graph.value_info) + list(proto.graph.output):
        dims = vi.type.tensor_type.shape.dim
        values = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        if values and all(v > 0 for v in values):
            shapes[vi.name] = values
    return shapes


def _short(exc: Exception, limit: int = 300) -> str:
    return " ".join(str(exc).split())[:limit]


def _stack(group: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(group) == 1:
        return group[0]
    return {k: np.concatenate([f[k] for f in group]) for k in group[0]}


def _cpu_session(data: bytes | str) -> ort.InferenceSession:
    # two sessions take turns here (float and QDQ); QDQ runs unfused (see simulation_session)
    return simulation_session(data, spin=False)


class Analyser:
    """Holds the instrumented float session (and, with ``cache_float``, its outputs), so repeated
    analyses of QDQ variants (auto mixed precision) only pay for the QDQ side."""

    def __init__(self, float_model: str | Path | onnx.ModelProto, *, cache_float: bool = True):
        self.float_proto = (
            float_model if isinstance(float_model, onnx.ModelProto) else onnx.load(str(float_model))
        )
        self.float_names = {i.name for i in self.float_proto.graph.input} | {
            o for n in self.float_proto.graph.node for o in n.output if o
        }
        self.shapes = _static_shapes(self.float_proto)
        # a constant Reshape to [1, ...] pins the batch: such models run one sample at a time
        self.fixed_batch = fixed_batch_nodes(self.float_proto)
        self.cache_float = cache_float
        self._device: Any = None
        self._float_sess: ort.InferenceSession | None = None
        self._float_key: tuple[frozenset[str], bool] = (frozenset(), False)
        self._float_fetch: list[str] = []
        self._float_cache: list[dict[str, np.ndarray]] | None = None
        self._cached_for: tuple[int, int] | None = None

    # ----- float side ---------------------------------------------------------------------
    def _float_session(self, wanted: set[str], batched: bool) -> None:
        """Expose only ``wanted`` (fewer copies, ORT keeps fusing the rest); widen on demand."""
        # graph inputs are the feeds themselves: exposing them only adds a copy per run
        wanted = wanted - {i.name for i in self.float_proto.graph.input}
        names, was_batched = self._float_key
        if wanted <= names and batched == was_batched and self._float_sess is not None:
            return
        names = frozenset(wanted | set(names)) if batched == was_batched else frozenset(wanted)
        data = _expose(self.float_proto, sorted(names), batched=batched)
        self._float_sess = _cpu_session(data)
        self._float_fetch = [o.name for o in self._float_sess.get_outputs()]
        self._float_key = (names, batched)
        self._float_cache = None

    def _float_groups(self, groups: list[dict[str, np.ndarray]], key: tuple[int, int]):
        if self._float_cache is not None and self._cached_for == key:
            yield from self._float_cache
            return
        assert self._float_sess is not None
        cache = []
        for feed in groups:
            values = dict(
                zip(self._float_fetch, self._float_sess.run(self._float_fetch, feed), strict=True)
            )
            values.update(feed)
            if self.cache_float:
                cache.append(values)
            yield values
        if self.cache_float:
            self._float_cache, self._cached_for = cache, key

    # ----- analysis -----------------------------------------------------------------------
    def analyse(
        self,
        qdq_model: str | Path,
        feeds: list[dict[str, np.ndarray]],
        *,
        backend: str = "cpu",
        ctx: JobContext | None = None,
        device: Any = None,
        data: str = "",
    ) -> SqnrReport:
        """Per-layer, weight and output SQNR of ``qdq_model`` against the float model.

        On HTP the session targets ``device`` (a catalogue Device or name; None: the studio's
        default target), since HTP numerics depend on the architecture; the report names it.
        ``data`` says which samples these are (see ``accuracy.split``).
        """
        ctx = ctx or JobContext()
        self._device = None
        if backend != "cpu":
            from studio.core.devices.catalogue import resolve_device

            self._device = resolve_device(device)
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
        compared = set(pairs) | set(outputs)
        fused = fused_activations(self.float_proto, pairs)
        batched = backend == "cpu" and self._batchable(compared)
        report = SqnrReport(backend=backend, samples=len(feeds), data=data)
        report.target = (
            f"QNN {backend.upper()} emulator targeting {self._device.label}"
            if self._device is not None
            else "CPU QDQ reference (onnxruntime CPU kernels)"
        )
        while True:
            report.notes = []
            sums = self._run(
                qdq_model, qproto, feeds, pairs, outputs, backend, batched, report, ctx, fused
            )
            if sums is not None:
                break
            batched = False  # the batch dim did not carry through: one sample per run
        report.outputs = {name: sqnr_db(*sums[name]) for name in outputs}
        if report.htp_intermediates or backend == "cpu":
            report.layers = _layers(self.float_proto, pairs, sums, qproto, fused)
        report.weights = weight_sqnr(self.float_proto, qproto)
        report.elapsed_s = time.perf_counter() - start
        return report

    def _batchable(self, names: set[str]) -> bool:
        if self.fixed_batch:
            return False
        inputs = [i.name for i in self.float_proto.graph.input]
        return all(
            (shape := self.shapes.get(n)) is not None and shape[0] == 1
            for n in list(names) + inputs
        )

    def _run(self, qdq_model, qproto, feeds, pairs, outputs, backend, batched, report, ctx, fused):
        """Pooled sums per tensor, or None when a batched run broke the batch dim."""
        size = _BATCH if batched else 1
        groups = [_stack(feeds[i : i + size]) for i in range(0, len(feeds), size)]
        compared = set(pairs) | set(outputs)
        self._float_session(compared, batched)
        qsess, fetch, intermediates = self._qdq_session(
            qdq_model, qproto, pairs, outputs, backend, batched, report, feeds[0]
        )
        report.htp_intermediates = backend != "cpu" and intermediates
        sums = {name: [0.0, 0.0] for name in list(pairs) + outputs}
        float_iter = self._float_groups(groups, (id(feeds), size))
        scratch = _Scratch()
        done = 0
        # float and QDQ runs in phases of a few samples, never alternately: two ORT thread pools
        # taking turns sample by sample slow each other down several times on a small machine
        phase = max(1, _BATCH // size)
        for begin in range(0, len(groups), phase):
            chunk = groups[begin : begin + phase]
            try:
                fchunk = [next(float_iter) for _ in chunk]
            except Exception as exc:  # ORT raises plain exceptions on shape/type trouble
                if batched:
                    return None
                raise BadInputError(f"the float model rejected a sample: {_short(exc)}") from exc
            for feed, fvals in zip(chunk, fchunk, strict=True):
                ctx.check_cancelled()
                try:
                    qvals = dict(zip(fetch, qsess.run(fetch, feed), strict=True))
                except Exception as exc:
                    if not batched:
                        raise BadInputError(
                            f"the quantised model rejected a sample: {_short(exc)}",
                            path=str(qdq_model),
                        ) from exc
                    return None  # a batched run the model cannot take: retry one by one
                count = len(next(iter(feed.values())))
                if batched and not self._consistent(fvals, qvals, pairs, outputs, count):
                    self._float_cache = None
                    return None
                for name in outputs:
                    _accumulate(sums[name], fvals[name], qvals[name], name)
                if intermediates:
                    for fname, tap in pairs.items():
                        if fname in fvals and tap.output in qvals:
                            _accumulate_codes(
                                sums[fname],
                                fvals[fname],
                                qvals[tap.output],
                                tap,
                                fused.get(fname),
                                scratch,
                                fname,
                            )
                done += count if batched else 1
                ctx.progress(done / len(feeds), f"SQNR {done}/{len(feeds)} samples")
        for _rest in float_iter:  # let the generator finish (it fills the float cache)
            pass
        return sums

    def _consistent(self, fvals, qvals, pairs, outputs, count) -> bool:
        expected = {n: self.shapes[n] for n in list(pairs) + outputs}
        for name, shape in expected.items():
            want = [count, *shape[1:]]
            if name in fvals and list(fvals[name].shape) != want:
                return False
            got = qvals.get(pairs[name].output) if name in pairs else qvals.get(name)
            if got is not None and list(got.shape) != want:
                return False
        return True

    def _qdq_session(self, path, qproto, pairs, outputs, backend, batched, report, probe):
        names = [tap.output for tap in pairs.values()]
        if backend == "cpu":
            sess = _cpu_session(_expose(qproto, names, batched=batched))
            return sess, [o.name for o in sess.get_outputs()], True
        # HTP: instrumented model first, whole-graph on QNN or not at all
        with tempfile.TemporaryDirectory(prefix="npu-studio-sqnr-") as tmp:
            inst = Path(tmp) / "instrumented.onnx"
            inst.write_bytes(_expose(qproto, names))
            opts = self._device.provider_options() if self._device is not None else None
            plain, _ = make_session(path, backend, disable_cpu_fallback=True, provider_options=opts)
            try:
                sess, _ = make_session(
                    inst, backend, disable_cpu_fallback=True, provider_options=opts
                )
            except Exception as exc:  # QNN refuses some instrumented graphs: fall back
                report.notes.append(
                    f"QNN {backend.upper()} could not run the instrumented model whole "
                    f"({str(exc)[:160]}); only model outputs were compared on {backend.upper()}"
                )
                return plain, list(outputs), False
        fetch = [o.name for o in sess.get_outputs()]
        # exposing intermediates must not change what the backend computes: check on a sample
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


def _mismatch(name: str, ref: np.ndarray, test: np.ndarray) -> BadInputError:
    """A wrong-shaped output must not score as an exact copy (+inf): it is an error."""
    return BadInputError(
        f"tensor '{name}': the quantised model gives shape {list(np.shape(test))} "
        f"({np.size(test)} values) where the float model gives {list(np.shape(ref))} "
        f"({np.size(ref)} values); SQNR compares like with like"
    )


def _accumulate(acc: list[float], ref: np.ndarray, test: np.ndarray, name: str = "?") -> None:
    if np.shape(ref) != np.shape(test):
        raise _mismatch(name, ref, test)
    x = np.asarray(ref, dtype=np.float32).reshape(-1)
    y = np.asarray(test, dtype=np.float32).reshape(-1)
    acc[0] += float(np.dot(x, x))
    d = np.subtract(x, y)
    acc[1] += float(np.dot(d, d))


def _accumulate_codes(
    acc: list[float],
    ref: np.ndarray,
    codes: np.ndarray,
    tap: QuantTap,
    act: FusedActivation | None = None,
    scratch: _Scratch | None = None,
    name: str = "?",
) -> None:
    """Like ``_accumulate`` against ``(codes - zero_point) * scale``; with ``act``, both sides
    pass through the fused activation first (see ``fused_activations``).

    The arithmetic is the same float32 sequence as a plain ``astype``/subtract/multiply, but into
    reused buffers: fresh multi-MB temporaries per tensor per batch cost page faults and a pass.
    """
    if np.size(ref) != np.size(codes):
        raise _mismatch(name, ref, codes)
    x = np.asarray(ref, dtype=np.float32).reshape(-1)
    scratch = scratch or _Scratch()
    y = scratch.get(0, x.size)
    np.copyto(y, codes.reshape(-1), casting="unsafe")
    y -= np.float32(tap.zero_point)
    y *= np.float32(tap.scale)
    if act is not None:
        # never in place on x: the float values may be cached
        ref_out = scratch.get(1, x.size)
        np.copyto(ref_out, x)
        x = act.apply(ref_out)
        act.apply(y)
    y -= x
    acc[0] += float(np.dot(x, x))
    acc[1] += float(np.dot(y, y))


class _Scratch:
    """Two growable float32 buffers reused across tensors and batches of one analysis."""

    def __init__(self) -> None:
        self._bufs = [np.empty(0, np.float32), np.empty(0, np.float32)]

    def get(self, slot: int, size: int) -> np.ndarray:
        if self._bufs[slot].size < size:
            self._bufs[slot] = np.empty(size, np.float32)
        return self._bufs[slot][:size]
