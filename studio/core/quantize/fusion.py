"""Graph rewrites the QDQ build makes so that QNN HTP takes the whole quantised model.

Why before quantising: exporters write GELU as five nodes (``x * 0.5 * (1 + erf(x / sqrt 2))``).
On a float model the QNN EP matches those five nodes into one QNN Gelu, but in a QDQ model every
intermediate has its own Q/DQ pair, the match fails and the lone ``Erf`` has no quantised HTP
kernel: each GELU then splits the HTP graph in two around a CPU node (vit_b_16's studio QDQ
model: 12 such splits, measured with ``bench/qnn_graph_ops.py``). Fusing the five nodes into one
``com.microsoft`` Gelu first, as onnxruntime's own QNN pre-processing
(``qnn_preprocess_model``) does, gives the quantiser one op with one input and one output
encoding, which the QNN EP builds as a QNN Gelu. It also removes four 8-bit requantisations of
the intermediates, so the fused model is at least as accurate.

The match is onnxruntime's (``FusionGelu``: the three exporter patterns), so it agrees with what
the QNN EP and ORT's own recipe fuse. What we add: the fused node takes a name from the ``Erf``
it replaces (the editor and the offload reports keep a recognisable node name), and a GELU is
left as written when the plan pins one of its intermediate tensors (a float fallback or an
edited encoding the user set on it would otherwise silently vanish).
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx


def fuse_erf_gelu(proto: onnx.ModelProto, keep: Iterable[str] = ()) -> list[str]:
    """Fuse every exported erf-GELU of ``proto`` (in place) into one ``com.microsoft`` Gelu.

    ``keep``: tensors that must survive (the plan's overrides and float tensors); a GELU with
    one of them as an intermediate or a constant, or with an intermediate that is a graph
    output, is not fused. Returns the tensors the fusion removed, in graph order: the intermediates and the
    constants (0.5, 1, sqrt 2) only the removed nodes used.
    """
    from onnxruntime.quantization.fusions import FusionGelu
    from onnxruntime.quantization.onnx_model import ONNXModel

    kept = set(keep) | {o.name for o in proto.graph.output}
    kept_constants = kept & {t.name for t in proto.graph.initializer}
    before = [t.name for t in proto.graph.initializer]
    before += [o for node in proto.graph.node for o in node.output]

    class _Fusion(FusionGelu):
        """ORT's match, with the node names and the pinned tensors described above."""

        def __init__(self, model: ONNXModel) -> None:
            super().__init__(model)
            self._erf_name = ""
            self._used = {n.name for n in model.nodes() if n.name}

        def fuse(
            self, erf_node: onnx.NodeProto, input_name_to_nodes: dict, output_name_to_node: dict
        ) -> None:
            self._erf_name = erf_node.name
            super().fuse(erf_node, input_name_to_nodes, output_name_to_node)

        def is_safe_to_fuse_nodes(
            self,
            nodes_to_remove: list[onnx.NodeProto],
            keep_outputs: list[str],
            input_name_to_nodes: dict,
            output_name_to_node: dict,
        ) -> bool:
            for node in nodes_to_remove:
                if any(o in kept and o not in keep_outputs for o in node.output):
                    return False
                if any(i in kept_constants for i in node.input):
                    return False
            return FusionGelu.is_safe_to_fuse_nodes(
                nodes_to_remove, keep_outputs, input_name_to_nodes, output_name_to_node
            )

        def create_unique_node_name(self) -> str:
            name = self._erf_name
            base = f"{name[:-3]}Gelu" if name.endswith("Erf") else f"{name or 'Erf'}_Gelu"
            unique, index = base, 1
            while unique in self._used:
                unique, index = f"{base}_{index}", index + 1
            self._used.add(unique)
            return unique

    model = ONNXModel(proto)
    if not _Fusion(model).apply():
        return []
    model.topological_sort()
    after = {t.name for t in proto.graph.initializer}
    after |= {o for node in proto.graph.node for o in node.output}
    return [name for name in before if name not in after]
