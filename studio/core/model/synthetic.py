"""Generator of large transformer-like ONNX models for the graph benchmark, tests and demos.

Real exported transformers have tens of thousands of nodes, deep name scopes
(``/encoder/layer.3/attention/self/MatMul``), residual adds and fan-outs (one LayerNorm output feeds
Q, K and V). Shipping such files would be heavy, so we generate them: the structure is realistic
(decomposed LayerNorm and GELU as exporters write them) while the weights are tiny (hidden size 8),
so a 20,000-node model stays about 2 MB and passes onnx's checker and shape inference.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from studio.core.errors import BadInputError

OPSET = 17
HIDDEN = 8
HEADS = 2
FFN = 32
SEQ = 16

# Nodes outside the encoder layers: embeddings (Gather, Add, LayerNorm=9) + pooler (Gather, MatMul,
# Add, Tanh) + classifier (MatMul, Add).
_LAYERNORM_NODES = 9
_EMBED_NODES = 2 + _LAYERNORM_NODES
_HEAD_NODES = 6


class _Builder:
    """Accumulates nodes and initializers with exporter-style names."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._consts: dict[tuple, str] = {}
        self._used: set[str] = set()

    def weight(self, name: str, shape: tuple[int, ...], std: float = 0.05) -> str:
        arr = self.rng.normal(0.0, std, shape).astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def const(self, value: np.ndarray) -> str:
        """Shared small constants (shapes, scalars), as exporters deduplicate them."""
        key = (value.dtype.str, value.shape, value.tobytes())
        if key not in self._consts:
            name = f"onnx::Const_{len(self._consts)}"
            self.inits.append(numpy_helper.from_array(value, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, scope: str, inputs: list[str], **attrs) -> str:
        """Add one node named ``{scope}/{op_type}[_k]`` with a single output; return its output."""
        base = f"{scope}/{op_type}"
        name = base
        k = 0
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        self._used.add(name)
        return out


def _layernorm(b: _Builder, scope: str, x: str) -> str:
    """LayerNorm decomposed the way torch.onnx writes it for opset < 17 (9 nodes)."""
    mean = b.op("ReduceMean", scope, [x], axes=[-1])
    centred = b.op("Sub", scope, [x, mean])
    sq = b.op("Pow", scope, [centred, b.const(np.array(2.0, dtype=np.float32))])
    var = b.op("ReduceMean", scope, [sq], axes=[-1])
    var_eps = b.op("Add", scope, [var, b.const(np.array(1e-5, dtype=np.float32))])
    std = b.op("Sqrt", scope, [var_eps])
    normed = b.op("Div", scope, [centred, std])
    gamma = b.weight(f"{scope}.weight".lstrip("/"), (HIDDEN,), 0.1)
    scaled = b.op("Mul", scope, [normed, gamma])
    return b.op("Add", scope, [scaled, b.weight(f"{scope}.bias".lstrip("/"), (HIDDEN,), 0.02)])


def _linear(b: _Builder, scope: str, x: str, n_in: int, n_out: int) -> str:
    w = b.weight(f"{scope}.weight".lstrip("/").replace("/", "."), (n_in, n_out))
    y = b.op("MatMul", scope, [x, w])
    return b.op(
        "Add", scope, [y, b.weight(f"{scope}.bias".lstrip("/").replace("/", "."), (n_out,))]
    )


def _heads(b: _Builder, scope: str, x: str) -> str:
    """[1, S, H] -> [1, heads, S, H/heads]."""
    shape = b.const(np.array([1, SEQ, HEADS, HIDDEN // HEADS], dtype=np.int64))
    r = b.op("Reshape", scope, [x, shape])
    return b.op("Transpose", scope, [r], perm=[0, 2, 1, 3])


def _encoder_layer(b: _Builder, i: int, x: str, mask: str) -> str:
    """One BERT-style layer: self-attention + residual + LN, FFN with GELU + residual + LN."""
    root = f"/encoder/layer.{i}"
    att = f"{root}/attention/self"
    q = _heads(b, f"{att}/query", _linear(b, f"{att}/query", x, HIDDEN, HIDDEN))
    k = _heads(b, f"{att}/key", _linear(b, f"{att}/key", x, HIDDEN, HIDDEN))
    v = _heads(b, f"{att}/value", _linear(b, f"{att}/value", x, HIDDEN, HIDDEN))
    kt = b.op("Transpose", att, [k], perm=[0, 1, 3, 2])
    scores = b.op("MatMul", att, [q, kt])
    scale = b.const(np.array(np.sqrt(HIDDEN // HEADS), dtype=np.float32))
    scores = b.op("Div", att, [scores, scale])
    scores = b.op("Add", att, [scores, mask])
    probs = b.op("Softmax", att, [scores], axis=-1)
    ctx = b.op("MatMul", att, [probs, v])
    ctx = b.op("Transpose", att, [ctx], perm=[0, 2, 1, 3])
    ctx = b.op("Reshape", att, [ctx, b.const(np.array([1, SEQ, HIDDEN], dtype=np.int64))])
    out_scope = f"{root}/attention/output"
    proj = _linear(b, f"{out_scope}/dense", ctx, HIDDEN, HIDDEN)
    res = b.op("Add", out_scope, [proj, x])
    h = _layernorm(b, f"{out_scope}/LayerNorm", res)
    inter = f"{root}/intermediate"
    f = _linear(b, f"{inter}/dense", h, HIDDEN, FFN)
    # GELU, erf form: 0.5 * x * (1 + erf(x / sqrt(2)))
    g = b.op("Div", f"{inter}/intermediate_act_fn", [f, b.const(np.array(1.4142135, np.float32))])
    g = b.op("Erf", f"{inter}/intermediate_act_fn", [g])
    g = b.op("Add", f"{inter}/intermediate_act_fn", [g, b.const(np.array(1.0, np.float32))])
    g = b.op("Mul", f"{inter}/intermediate_act_fn", [f, g])
    g = b.op("Mul", f"{inter}/intermediate_act_fn", [g, b.const(np.array(0.5, np.float32))])
    out = f"{root}/output"
    y = _linear(b, f"{out}/dense", g, FFN, HIDDEN)
    y = b.op("Add", out, [y, h])
    return _layernorm(b, f"{out}/LayerNorm", y)


def _layer_node_count() -> int:
    b = _Builder(np.random.default_rng(0))
    _encoder_layer(b, 0, "x", "mask")
    return len(b.nodes)


NODES_PER_LAYER = _layer_node_count()


def transformer_like(num_nodes: int, seed: int = 0) -> onnx.ModelProto:
    """A BERT-like encoder with about ``num_nodes`` nodes (exactly, for num_nodes >= 100).

    The layer count is chosen to fit; the remainder becomes a chain of small elementwise ops in the
    classifier head, so benchmarks and tests get the node count they ask for.
    """
    if not isinstance(num_nodes, int) or num_nodes < 1:
        raise BadInputError(
            f"transformer_like: num_nodes must be a positive int, got {num_nodes!r}"
        )
    fixed = _EMBED_NODES + _HEAD_NODES
    layers = max(1, (num_nodes - fixed) // NODES_PER_LAYER)
    pad = max(0, num_nodes - fixed - layers * NODES_PER_LAYER)

    b = _Builder(np.random.default_rng(seed))
    # Embeddings: token gather + position add + LayerNorm.
    table = b.weight("embeddings.word_embeddings.weight", (64, HIDDEN), 0.5)
    pos = b.weight("embeddings.position_embeddings.weight", (1, SEQ, HIDDEN), 0.1)
    e = b.op("Gather", "/embeddings/word_embeddings", [table, "input_ids"], axis=0)
    e = b.op("Add", "/embeddings", [e, pos])
    x = _layernorm(b, "/embeddings/LayerNorm", e)
    mask = b.const(np.zeros((1, 1, 1, SEQ), dtype=np.float32))
    for i in range(layers):
        x = _encoder_layer(b, i, x, mask)
    # Pooler and classifier.
    first = b.op("Gather", "/pooler", [x, b.const(np.array(0, dtype=np.int64))], axis=1)
    pooled = _linear(b, "/pooler/dense", first, HIDDEN, HIDDEN)
    pooled = b.op("Tanh", "/pooler/activation", [pooled])
    logits = _linear(b, "/classifier", pooled, HIDDEN, 2)
    for j in range(pad):
        op = ("Mul", "Add")[j % 2]
        logits = b.op(op, "/classifier/calibration", [logits, b.const(np.array(1.0, np.float32))])
    final = b.nodes[-1]
    final.output[0] = "logits"
    graph = helper.make_graph(
        b.nodes,
        "transformer_like",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, SEQ])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.producer_name = "npu-studio synthetic"
    return model
