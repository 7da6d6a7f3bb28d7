"""Give the prepared (folded) model's weights the names they have in the user's model.

Why: ORT's basic optimiser folds BatchNorm into the Conv before it and writes the folded weight and
bias as new initializers (``ConvBnFusion_W_<weight>``, ``ConvBnFusion_BN_B_<bn bias>``). Every
encoding, edit and exported file is keyed by the prepared model's names, so without this step an
exported QNN/AIMET file would not match the user's ONNX, and an AIMET file (AIMET folds BN in
place and exports under the conv's names) would name "unknown" weights on import. The fused
Conv's output already carries the BatchNorm's output name, which exists in the original model.
"""

from __future__ import annotations

import onnx

# ops whose input 1 / input 2 are the weight / bias that an optimiser may fold into
_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
# nodes ORT fuses into the weighted node before them (the fused output takes their output name)
_FUSED_AFTER = {"BatchNormalization", "Add", "Mul"}


def restore_weight_names(original: onnx.ModelProto, prepared: onnx.ModelProto) -> dict[str, str]:
    """Rename, in place, folded weight/bias initializers of ``prepared`` back to the names of the
    original node's weight/bias; returns ``{new name in prepared: original name}``.

    A name is only taken when nothing in the prepared model already uses it (a weight shared by
    two folded convs keeps ORT's name for the second copy rather than clash).
    """
    orig_inits = {t.name for t in original.graph.initializer}
    orig_producer = {o: n for n in original.graph.node for o in n.output}
    used = {t.name for t in prepared.graph.initializer}
    used |= {name for n in prepared.graph.node for name in (*n.input, *n.output)}
    used |= {v.name for v in prepared.graph.input} | {v.name for v in prepared.graph.output}
    renames: dict[str, str] = {}
    for node in prepared.graph.node:
        if node.op_type not in _WEIGHTED or len(node.input) < 2:
            continue
        source = _original_weighted(node, orig_producer)
        if source is None:
            continue
        conv, after = source
        targets = [conv.input[1]]
        if len(conv.input) > 2 and conv.input[2]:
            targets.append(conv.input[2])
        elif after is not None and after.op_type == "BatchNormalization" and len(after.input) > 2:
            targets.append(after.input[2])  # the conv had no bias: the BN's bias carries it
        else:
            targets.append("")
        for have, want in zip(node.input[1:3], targets, strict=False):
            if not have or not want or have == want or have in orig_inits:
                continue
            if want in used or want in renames.values() or want not in orig_inits:
                continue
            renames[have] = want
    if renames:
        _apply(prepared, renames)
    return renames


def _original_weighted(
    node: onnx.NodeProto, orig_producer: dict[str, onnx.NodeProto]
) -> tuple[onnx.NodeProto, onnx.NodeProto | None] | None:
    """The original weighted node a prepared one came from, and the node fused after it."""
    if not node.output:
        return None
    orig = orig_producer.get(node.output[0])
    after = None
    if orig is not None and orig.op_type in _FUSED_AFTER and orig.op_type != node.op_type:
        after = orig
        orig = orig_producer.get(orig.input[0]) if orig.input else None
    if orig is None or orig.op_type != node.op_type or len(orig.input) < 2:
        return None
    return orig, after


def _apply(proto: onnx.ModelProto, renames: dict[str, str]) -> None:
    graph = proto.graph
    for init in graph.initializer:
        if init.name in renames:
            init.name = renames[init.name]
    for vi in list(graph.input) + list(graph.value_info):
        if vi.name in renames:
            vi.name = renames[vi.name]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
