"""A copy of a model whose outputs also include chosen inner tensors: how calibration, SQNR and
the post-training techniques read activations out of ONNX Runtime.

ORT returns only graph outputs, so every reader of intermediate tensors adds them as outputs on a
copy. ``batched=True`` also frees each real input's leading dim (so several samples run in one
call) and drops the single-sample shapes the copy would otherwise insist on.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

BATCH_DIM = "studio_batch"


def with_outputs(
    proto: onnx.ModelProto,
    names: Iterable[str],
    *,
    batched: bool = False,
    keep_types: bool = False,
    skip_inputs: bool = False,
) -> onnx.ModelProto:
    """``proto`` copied, with each of ``names`` that is not already an output added as an output
    (``skip_inputs``: nor a graph input, whose value the caller has already). ``keep_types``
    copies a tensor's recorded type and shape to its output (when not batched); otherwise ORT
    infers them."""
    aug = onnx.ModelProto()
    aug.CopyFrom(proto)
    have = {o.name for o in aug.graph.output}
    if skip_inputs:
        have |= {i.name for i in aug.graph.input}
    infos = {v.name: v for v in aug.graph.value_info} if keep_types and not batched else {}
    for name in names:
        if name in have:
            continue
        vi = onnx.ValueInfoProto()
        if name in infos:
            vi.CopyFrom(infos[name])
        else:
            vi.name = name
        aug.graph.output.append(vi)
        have.add(name)
    if batched:
        inits = {t.name for t in aug.graph.initializer}
        for vi in aug.graph.input:
            if vi.name not in inits:
                vi.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
        del aug.graph.value_info[:]  # single-sample shapes: ORT re-infers them
        for vi in aug.graph.output:
            if vi.type.HasField("tensor_type"):
                vi.type.tensor_type.ClearField("shape")
    return aug
