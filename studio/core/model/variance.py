"""Stable variance: rewrite ``Var = E[x²] - E[x]²`` into ``Var = E[(x - E[x])²]`` on the graph.

Why: exporters that decompose LayerNorm (jax2tf, some TF/Keras converters) compute the variance
as the difference of two large, nearly equal terms. In float that is fine; quantised it is not:
each term gets its own 8-bit grid over its own range, and the difference is smaller than one step
of either grid. On magika (PyPI ``magika==1.0.3``) ``E[x²]`` spans 0..0.66 (step 0.0026 at 8 bits)
while the variance it feeds is 6e-5..0.017, so the variance is mostly rounding noise; the
reciprocal square root after it then amplifies that noise into the whole normalised activation.
The rewritten form quantises ``x - E[x]`` and its square, both on ranges of their own, so the
variance keeps its relative precision. The function is unchanged in float (the two forms are
equal algebraically; the test checks it numerically), the tensors between are not, so the model
is calibrated again, as after cross-layer equalisation.

The calibration's preparation (``calibration.collect.prepare_model``) applies it to every model,
as it folds BatchNorm: it is a float-equal rewrite that every quantised form of the graph needs,
not a per-model choice (on magika the default W8A8 goes from 3.5 to 46.6 dB of output SQNR,
measured by ``bench/quant_quality.py``). The ``stable-variance`` technique remains, for models
prepared without optimisation.

The pattern, with ``R`` a ReduceMean, or a ReduceSum followed by ``Mul`` by a constant (the same
``R`` on both sides, same axes and keepdims):
``Sub(R(Mul(x, x)) | R(Pow(x, 2)), Mul(R(x), R(x)) | Pow(R(x), 2))``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from studio.core.model.normalise import constant_value
from studio.core.model.prepare import sort_nodes


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _square_of(node: onnx.NodeProto | None, graph: onnx.GraphProto) -> str | None:
    """``x`` when ``node`` computes ``x * x`` or ``x ** 2``."""
    if node is None:
        return None
    if node.op_type == "Mul" and node.input[0] == node.input[1]:
        return node.input[0]
    if node.op_type == "Pow":
        exponent = constant_value(graph, node.input[1])
        if exponent is not None and exponent.size == 1 and float(exponent.reshape(-1)[0]) == 2.0:
            return node.input[0]
    return None


def _mean_of(name: str, graph: onnx.GraphProto, producers: dict) -> tuple | None:
    """``(x, reduce node, scale constant name or None)`` when ``name`` is a mean of ``x``:
    ReduceMean(x), or Mul(ReduceSum(x), c) / Mul(c, ReduceSum(x)) with a constant scalar c."""
    node = producers.get(name)
    if node is None:
        return None
    if node.op_type == "ReduceMean":
        return node.input[0], node, None
    if node.op_type == "Mul":
        for a, b in ((0, 1), (1, 0)):
            reduce = producers.get(node.input[a])
            c = constant_value(graph, node.input[b])
            if reduce is not None and reduce.op_type == "ReduceSum" and c is not None:
                if c.size == 1:
                    return reduce.input[0], reduce, node.input[b]
    return None


def _same_reduction(r1: onnx.NodeProto, r2: onnx.NodeProto) -> bool:
    if r1.op_type != r2.op_type or list(r1.input[1:]) != list(r2.input[1:]):
        return False
    attrs = lambda n: {a.name: helper.get_attribute_value(a) for a in n.attribute}  # noqa: E731
    return attrs(r1) == attrs(r2)


def has_unstable_variance(proto: onnx.ModelProto) -> bool:
    """Whether :func:`stabilise_variance` would rewrite anything (on a copy)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return bool(stabilise_variance(copy))


def stabilise_variance(proto: onnx.ModelProto) -> list[str]:
    """Rewrite every ``E[x²] - E[x]²`` in place (see module); one note per rewrite."""
    graph = proto.graph
    producers = _producers(graph)
    notes = []
    for sub in list(graph.node):
        if sub.op_type != "Sub":
            continue
        second = _mean_of(sub.input[0], graph, producers)  # E[x²]
        m_sq = producers.get(sub.input[1])  # E[x]²
        mean_name = _square_of(m_sq, graph)
        if second is None or mean_name is None:
            continue
        first = _mean_of(mean_name, graph, producers)  # E[x]
        if first is None:
            continue
        sq_input, r2, c2 = second
        x = _square_of(producers.get(sq_input), graph)
        x1, r1, c1 = first
        if x is None or x1 != x or not _same_reduction(r1, r2):
            continue
        if (c1 is None) != (c2 is None):
            continue
        if c1 is not None and not np.allclose(constant_value(graph, c1), constant_value(graph, c2)):
            continue
        tag = f"{sub.name or sub.output[0]}.stable_var"
        keepdims = next((a.i for a in r1.attribute if a.name == "keepdims"), 1)
        mean = mean_name
        nodes = []
        if not keepdims:
            # put the reduced axes back so the mean broadcasts against x
            axes = _axes(r1, graph)
            if axes is None:
                continue
            axes_name = f"{tag}.axes"
            graph.initializer.append(numpy_helper.from_array(np.asarray(axes, np.int64), axes_name))
            nodes.append(helper.make_node("Unsqueeze", [mean, axes_name], [f"{tag}.mean"]))
            mean = f"{tag}.mean"
        nodes.append(helper.make_node("Sub", [x, mean], [f"{tag}.centred"]))
        nodes.append(
            helper.make_node("Mul", [f"{tag}.centred", f"{tag}.centred"], [f"{tag}.squared"])
        )
        reduce = onnx.NodeProto()
        reduce.CopyFrom(r2)
        reduce.name = f"{tag}.reduce"
        reduce.input[0] = f"{tag}.squared"
        reduce.output[0] = f"{tag}.sum" if c1 is not None else sub.output[0]
        nodes.append(reduce)
        if c1 is not None:
            nodes.append(helper.make_node("Mul", [f"{tag}.sum", c1], [sub.output[0]]))
        # the old Sub's output is now written by the new chain; drop the Sub itself
        graph.node.remove(sub)
        graph.node.extend(nodes)
        notes.append(
            f"stable variance at {sub.name or sub.output[0]}: E[x²] - E[x]² -> E[(x - E[x])²]"
        )
    if notes:
        _prune(graph)
        sort_nodes(graph)
    return notes


def _axes(reduce: onnx.NodeProto, graph: onnx.GraphProto) -> list[int] | None:
    for a in reduce.attribute:
        if a.name == "axes":
            return list(a.ints)
    if len(reduce.input) > 1 and reduce.input[1]:
        value = constant_value(graph, reduce.input[1])
        return None if value is None else [int(v) for v in value.reshape(-1)]
    return None


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nobody reads any more (the old E[x²] side, when private); not in
    graphs with subgraphs (an If/Loop body may read an outer name)."""
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):  # fmt: skip
        return
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            graph.node.remove(n)
