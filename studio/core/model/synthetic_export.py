"""Transformer models that look like a real exporter's output, with real-sized weights.

Why a second generator beside ``synthetic.transformer_like``: that one is tuned for the graph
(hidden size 8, every shape static, constants as shared initializers), so a 20,000-node model is
2 MB and opens faster than any real export. Models that torch.onnx writes differ in ways that cost
time and memory when they are opened:

* weights are real-sized (hidden 128 here: a 20,000-node model holds ~150 MB of float32), stored
  inside the protobuf or, for large models, as external data;
* dims are symbolic (``batch_size``, ``sequence_length``), and every reshape is computed from the
  input's shape: ``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``, so shapes only follow with
  data propagation;
* small values are ``Constant`` nodes named ``{scope}/Constant_output_0``, weights of MatMuls are
  ``onnx::MatMul_<n>`` and biases and norms carry the module path
  (``encoder.layer.3.attention.self.query.bias``).

The result passes onnx's checker and shape inference, so the benchmarks measure the studio, not a
broken file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from studio.core.errors import BadInputError

OPSET = 14
VOCAB = 30522
MAX_POSITIONS = 512
TYPE_VOCAB = 2


class _Exporter:
    """Accumulates nodes and weights with torch.onnx's names."""

    def __init__(self, hidden: int, heads: int, ffn: int, seed: int) -> None:
        self.hidden, self.heads, self.ffn = hidden, heads, ffn
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._used: set[str] = set()
        self._onnx_id = 1000

    def _name(self, scope: str, op_type: str) -> str:
        base = f"{scope}/{op_type}"
        name, k = base, 0
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def op(self, op_type: str, scope: str, inputs: list[str], n_out: int = 1, **attrs) -> str:
        name = self._name(scope, op_type)
        outs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0]

    def const(self, scope: str, value: np.ndarray) -> str:
        """A Constant node, as torch.onnx writes small values (scalars, axes, shape parts)."""
        name = self._name(scope, "Constant")
        out = f"{name}_output_0"
        tensor = numpy_helper.from_array(np.asarray(value), "")
        self.nodes.append(helper.make_node("Constant", [], [out], name=name, value=tensor))
        return out

    def weight(self, name: str, shape: tuple[int, ...], std: float = 0.02) -> str:
        arr = (self.rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(
            np.float32
        )
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def matmul_weight(self, n_in: int, n_out: int) -> str:
        self._onnx_id += 1
        return self.weight(f"onnx::MatMul_{self._onnx_id}", (n_in, n_out))

    # ----- building blocks -------------------------------------------------------------------
    def linear(self, scope: str, module: str, x: str, n_in: int, n_out: int) -> str:
        y = self.op("MatMul", scope, [x, self.matmul_weight(n_in, n_out)])
        return self.op("Add", scope, [self.weight(f"{module}.bias", (n_out,)), y])

    def layernorm(self, scope: str, module: str, x: str) -> str:
        mean = self.op("ReduceMean", scope, [x], axes=[-1])
        centred = self.op("Sub", scope, [x, mean])
        sq = self.op("Pow", scope, [centred, self.const(scope, np.array(2.0, np.float32))])
        var = self.op("ReduceMean", scope, [sq], axes=[-1])
        eps = self.op("Add", scope, [var, self.const(scope, np.array(1e-12, np.float32))])
        std = self.op("Sqrt", scope, [eps])
        normed = self.op("Div", scope, [centred, std])
        h = self.hidden
        scaled = self.op("Mul", scope, [normed, self.weight(f"{module}.weight", (h,), 1.0)])
        return self.op("Add", scope, [scaled, self.weight(f"{module}.bias", (h,))])

    def dynamic_reshape(self, scope: str, x: str, shape_of: str, tail: list[int]) -> str:
        """``x.view(shape_of.size(0), shape_of.size(1), *tail)``, written the exporter's way."""
        parts = []
        for axis in (0, 1):
            shape = self.op("Shape", scope, [shape_of])
            dim = self.op("Gather", scope, [shape, self.const(scope, np.array(axis, np.int64))])
            parts.append(
                self.op("Unsqueeze", scope, [dim, self.const(scope, np.array([0], np.int64))])
            )
        parts += [self.const(scope, np.array([t], np.int64)) for t in tail]
        target = self.op("Concat", scope, parts, axis=0)
        return self.op("Reshape", scope, [x, target])

    def heads_split(self, scope: str, x: str) -> str:
        r = self.dynamic_reshape(scope, x, x, [self.heads, self.hidden // self.heads])
        return self.op("Transpose", scope, [r], perm=[0, 2, 1, 3])

    def layer(self, i: int, x: str, mask: str) -> str:
        h, root, mod = self.hidden, f"/encoder/layer.{i}", f"encoder.layer.{i}"
        att, amod = f"{root}/attention/self", f"{mod}.attention.self"
        q = self.heads_split(att, self.linear(f"{att}/query", f"{amod}.query", x, h, h))
        k = self.heads_split(att, self.linear(f"{att}/key", f"{amod}.key", x, h, h))
        v = self.heads_split(att, self.linear(f"{att}/value", f"{amod}.value", x, h, h))
        kt = self.op("Transpose", att, [k], perm=[0, 1, 3, 2])
        scores = self.op("MatMul", att, [q, kt])
        scale = self.const(att, np.array(np.sqrt(h // self.heads), np.float32))
        scores = self.op("Div", att, [scores, scale])
        scores = self.op("Add", att, [scores, mask])
        probs = self.op("Softmax", att, [scores], axis=-1)
        ctx = self.op("MatMul", att, [probs, v])
        ctx = self.op("Transpose", att, [ctx], perm=[0, 2, 1, 3])
        ctx = self.dynamic_reshape(att, ctx, ctx, [h])
        out, omod = f"{root}/attention/output", f"{mod}.attention.output"
        proj = self.linear(f"{out}/dense", f"{omod}.dense", ctx, h, h)
        res = self.op("Add", out, [proj, x])
        y = self.layernorm(f"{out}/LayerNorm", f"{omod}.LayerNorm", res)
        inter = f"{root}/intermediate"
        f = self.linear(f"{inter}/dense", f"{mod}.intermediate.dense", y, h, self.ffn)
        act = f"{inter}/intermediate_act_fn"
        g = self.op("Div", act, [f, self.const(act, np.array(1.4142135, np.float32))])
        g = self.op("Erf", act, [g])
        g = self.op("Add", act, [g, self.const(act, np.array(1.0, np.float32))])
        g = self.op("Mul", act, [f, g])
        g = self.op("Mul", act, [g, self.const(act, np.array(0.5, np.float32))])
        o = f"{root}/output"
        z = self.linear(f"{o}/dense", f"{mod}.output.dense", g, self.ffn, h)
        z = self.op("Add", o, [z, y])
        return self.layernorm(f"{o}/LayerNorm", f"{mod}.output.LayerNorm", z)


def _count_layer_nodes(hidden: int, heads: int, ffn: int) -> int:
    e = _Exporter(hidden, heads, ffn, 0)
    e.weight = lambda name, shape, std=0.02: name  # no data needed to count
    e.layer(0, "x", "mask")
    return len(e.nodes)


def exported_transformer(
    num_nodes: int,
    *,
    hidden: int = 128,
    heads: int = 4,
    ffn: int = 512,
    seed: int = 0,
    static: tuple[int, int] | None = None,
    type_vocab: int = TYPE_VOCAB,
) -> onnx.ModelProto:
    """A BERT encoder as torch.onnx exports it, with exactly ``num_nodes`` nodes (>= 300).

    ``static`` (batch, sequence) fixes the input dims, as an export without ``dynamic_axes``
    does (the Shape/Gather/Concat chains stay); by default they are symbolic. ``type_vocab``:
    rows of the token-type table (BERT has 2; more lets random integer data run the model).
    """
    if not isinstance(num_nodes, int) or num_nodes < 300:
        raise BadInputError(
            f"exported_transformer: num_nodes must be an int >= 300, got {num_nodes!r}"
        )
    if hidden % heads:
        raise BadInputError(f"exported_transformer: hidden {hidden} not divisible by heads {heads}")
    e = _Exporter(hidden, heads, ffn, seed)
    h = hidden
    # attention mask: (1 - mask[:, None, None, :].float()) * finfo.min
    m = e.op("Unsqueeze", "", ["attention_mask", e.const("", np.array([1], np.int64))])
    m = e.op("Unsqueeze", "", [m, e.const("", np.array([2], np.int64))])
    m = e.op("Cast", "", [m], to=TensorProto.FLOAT)
    m = e.op("Sub", "", [e.const("", np.array(1.0, np.float32)), m])
    mask = e.op("Mul", "", [m, e.const("", np.array(-3.4028234663852886e38, np.float32))])
    # embeddings: word + token type + position, then LayerNorm
    emb = "/embeddings"
    pos_ids = "embeddings.position_ids"
    e.inits.append(numpy_helper.from_array(np.arange(MAX_POSITIONS, dtype=np.int64)[None], pos_ids))
    shape = e.op("Shape", emb, ["input_ids"])
    seq = e.op("Gather", emb, [shape, e.const(emb, np.array(1, np.int64))])
    seq = e.op("Unsqueeze", emb, [seq, e.const(emb, np.array([0], np.int64))])
    sliced = e.op(
        "Slice",
        emb,
        [pos_ids, e.const(emb, np.array([0], np.int64)), seq,
         e.const(emb, np.array([1], np.int64)), e.const(emb, np.array([1], np.int64))],
    )  # fmt: skip
    words = e.weight("embeddings.word_embeddings.weight", (VOCAB, h))
    types = e.weight("embeddings.token_type_embeddings.weight", (type_vocab, h))
    positions = e.weight("embeddings.position_embeddings.weight", (MAX_POSITIONS, h))
    x = e.op("Gather", f"{emb}/word_embeddings", [words, "input_ids"])
    t = e.op("Gather", f"{emb}/token_type_embeddings", [types, "token_type_ids"])
    x = e.op("Add", emb, [x, t])
    p = e.op("Gather", f"{emb}/position_embeddings", [positions, sliced])
    x = e.op("Add", emb, [x, p])
    x = e.layernorm(f"{emb}/LayerNorm", "embeddings.LayerNorm", x)
    head_nodes = 6  # pooler: Constant, Gather, MatMul, Add, Tanh; + final Identity
    per_layer = _count_layer_nodes(hidden, heads, ffn)
    fixed = len(e.nodes) + head_nodes
    layers = max(1, (num_nodes - fixed) // per_layer)
    pad = num_nodes - fixed - layers * per_layer
    for i in range(layers):
        x = e.layer(i, x, mask)
    for _ in range(max(0, pad)):  # a few Identity nodes so the count is exact
        x = e.op("Identity", "/encoder", [x])
    last = e.op("Identity", "/encoder", [x])
    e.nodes[-1].output[0] = "last_hidden_state"
    first = e.op(
        "Gather",
        "/pooler",
        ["last_hidden_state", e.const("/pooler", np.array(0, np.int64))],
        axis=1,
    )
    pooled = e.linear("/pooler/dense", "pooler.dense", first, h, h)
    e.op("Tanh", "/pooler/activation", [pooled])
    e.nodes[-1].output[0] = "pooler_output"
    del last
    dims: list[int | str] = list(static) if static else ["batch_size", "sequence_length"]
    graph = helper.make_graph(
        e.nodes,
        "main_graph",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims),
            helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, dims),
        ],
        [
            helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*dims, h]),
            helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, [dims[0], h]),
        ],
        e.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    model.producer_name = "pytorch"
    model.producer_version = "2.1.0"
    return model


def save_exported(model: onnx.ModelProto, path: str | Path, external: bool = False) -> Path:
    """Write ``model``; ``external`` puts weights over 1 KB in ``<name>.data`` beside it."""
    path = Path(path)
    if external:
        onnx.save(
            model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
            location=path.name + ".data", size_threshold=1024,
        )  # fmt: skip
    else:
        onnx.save(model, str(path))
    return path
