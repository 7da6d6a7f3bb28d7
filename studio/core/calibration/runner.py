"""Runs calibration samples through the instrumented model, batched when that is provably safe.

Why batch: ORT runs 16 stacked images faster than 16 single ones (bigger GEMMs, one Python call),
and the outputs arrive already stacked for one histogram pass. Why "provably": a model may
hard-code its batch (``Reshape`` to ``[1, -1]``) or mix samples (a reduction over axis 0). So
batching is used only when every input and every exposed tensor has a static shape starting
with 1, and every run is checked: each exposed tensor must come back as ``[B, *rest]`` with the
single-sample ``rest``. On the first mismatch, or a batched run that fails, the runner switches to
one sample per run (re-running that batch), so results never depend on the choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import onnx
import onnxruntime as ort

from studio.core.errors import BadInputError
from studio.core.model.expose import with_outputs
from studio.core.model.normalise import fixed_batch_nodes

MAX_BATCH = 16
MAX_BATCH_BYTES = 256 << 20  # exposed activations of one batch


def build_session(
    proto: onnx.ModelProto, tensors: list[str], threads: int | None, *, batched: bool
) -> ort.InferenceSession:
    """A CPU session whose outputs are the model's outputs plus every tensor in ``tensors``."""
    aug = with_outputs(proto, tensors, batched=batched, keep_types=True, skip_inputs=True)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    # full optimisation still pays with every tensor exposed (NCHWc convs: ~2.5x on CPU)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = int(threads)
    # no spin-waiting between ops: numpy bins the previous batch on this core between runs, and
    # on a shared 2-core machine spinning pool threads doubled the CPU time of the pass
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(aug.SerializeToString(), so, providers=["CPUExecutionProvider"])


class SampleRunner:
    """Yields ``(first_index, count, {tensor: array})`` for the exposed float tensors."""

    def __init__(
        self,
        proto: onnx.ModelProto,
        tensors: list[str],
        shapes: dict[str, list[int]],
        input_names: list[str],
        *,
        threads: int | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.proto = proto
        self.input_names = input_names
        self.exposed = [t for t in tensors if t not in set(input_names)]
        self.shapes = shapes
        self.threads = threads
        # a constant Reshape to [1, ...] pins the batch: known before any run fails
        self.fixed_batch = fixed_batch_nodes(proto)
        self.batch = max_batch if max_batch > 1 and self._batchable(tensors) else 1
        if self.batch > 1:
            per_sample = sum(4 * int(np.prod(self.shapes[t])) for t in tensors)
            self.batch = max(1, min(self.batch, MAX_BATCH_BYTES // max(per_sample, 1)))
        self.fell_back = bool(self.fixed_batch) and max_batch > 1
        self._sess: ort.InferenceSession | None = None
        self._fetch: list[str] = []

    def _batchable(self, tensors: list[str]) -> bool:
        if self.fixed_batch:
            return False
        for name in tensors:
            shape = self.shapes.get(name)
            if not shape or shape[0] != 1 or any(d <= 0 for d in shape):
                return False
        return True

    def _session(self) -> ort.InferenceSession:
        if self._sess is None:
            self._sess = build_session(
                self.proto, self.exposed, self.threads, batched=self.batch > 1
            )
            wanted = set(self.exposed)
            self._fetch = [o.name for o in self._sess.get_outputs() if o.name in wanted]
            if not self._fetch:  # everything is derived from the inputs: still run (and check)
                self._fetch = [self._sess.get_outputs()[0].name]
        return self._sess

    def run(
        self, feeds: Iterable[dict[str, np.ndarray]], source_name: str
    ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        group: list[dict[str, np.ndarray]] = []
        index = 0
        for feed in feeds:
            group.append(feed)
            if len(group) == self.batch:
                yield from self._run_group(group, index, source_name)
                index += len(group)
                group = []
        if group:
            yield from self._run_group(group, index, source_name)

    def _run_group(self, group, index, source_name):
        if self.batch > 1:
            stacked = {k: np.concatenate([f[k] for f in group]) for k in group[0]}
            try:
                values = self._call(stacked, index, source_name)
            except BadInputError:
                values = None  # e.g. a MatMul after a Reshape to [1, -1]: retried one by one
            if values is not None and self._consistent(values, len(group)):
                yield index, len(group), {**stacked, **values}
                return
            # batch dim not carried through cleanly: never batch this model again
            self.batch, self._sess, self.fell_back = 1, None, True
        for offset, feed in enumerate(group):
            values = self._call(feed, index + offset, source_name)
            yield index + offset, 1, {**feed, **values}

    def _call(self, feed, index, source_name) -> dict[str, np.ndarray]:
        sess = self._session()
        try:
            out = sess.run(self._fetch, feed)
        except Exception as exc:  # ORT reports shape/type mismatches as plain exceptions
            raise BadInputError(
                f"the model rejected calibration sample {index}: "
                f"{' '.join(str(exc).split())[:300]}",
                path=source_name,
            ) from exc
        return dict(zip(self._fetch, out, strict=True))

    def _consistent(self, values: dict[str, np.ndarray], count: int) -> bool:
        for name, arr in values.items():
            expected = self.shapes.get(name)
            if expected is None or list(arr.shape) != [count, *expected[1:]]:
                return False
        return True
