"""Graphs shaped like real exported models (REFERENCE.md §7), built with onnx.helper.

Each builder reproduces what tripped the studio on a model shipped in a PyPI package:
- ``decomposed_layernorm``: a jax2tf/tf2onnx-style classifier, LayerNorm spelt out as
  ReduceMean/Sub/Pow/Sqrt/Div, and a MatMul + Add whose bias is ``[1, N]`` (ORT's pre-processing
  fuses it into a Gemm with a 2-D C, which crashed ORT's int32-bias check);
- ``lstm_seq``: a torch-exported LSTM (weights named ``onnx::LSTM_*``) with an int32
  ``sequence_lens`` graph input;
- ``paddle_fixed_reshape``: a Paddle-style classifier whose Reshapes hard-code batch 1 through
  unnamed ``Constant`` nodes (about half its nodes have no name);
- ``yolo_head``: a detector head whose output concatenates pixel-scale boxes with 0-1 scores.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _f(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _model(nodes, name, inputs, outputs, inits, opset=OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def decomposed_layernorm(seed: int = 0, tokens: int = 8, width: int = 32, classes: int = 12):
    """x [1, tokens, width] -> Dense -> LayerNorm (decomposed) -> mean pool -> Dense -> Softmax."""
    rng = np.random.default_rng(seed)
    p = "jax2tf_model/MagikaV2"
    inits = [
        _f(f"{p}/Dense_0/kernel:0", rng.normal(0, 0.3, (width, width))),
        _f(f"{p}/Dense_0/bias:0", rng.normal(0, 0.1, (width,))),
        _f(f"{p}/LayerNorm/gamma:0", 1.0 + rng.normal(0, 0.1, (width,))),
        _f(f"{p}/LayerNorm/beta:0", rng.normal(0, 0.1, (width,))),
        _f(f"{p}/LayerNorm/two:0", 2.0),
        _f(f"{p}/LayerNorm/eps:0", 1e-5),
        _f(f"{p}/Dense_1/kernel:0", rng.normal(0, 0.3, (width, classes))),
        # jax2tf writes the bias already broadcast to [1, N]
        _f(f"{p}/Dense_1/Reshape:0", rng.normal(0, 0.1, (1, classes))),
    ]
    n = helper.make_node
    ln = f"{p}/LayerNorm"
    nodes = [
        n("MatMul", ["x", f"{p}/Dense_0/kernel:0"], ["d0"], name=f"{p}/Dense_0/MatMul"),
        n("Add", ["d0", f"{p}/Dense_0/bias:0"], ["d0b"], name=f"{p}/Dense_0/Add"),
        n("Tanh", ["d0b"], ["act"], name=f"{p}/Tanh"),
        n("ReduceMean", ["act"], ["mean"], name=f"{ln}/ReduceMean", axes=[-1]),
        n("Sub", ["act", "mean"], ["centered"], name=f"{ln}/Sub"),
        n("Pow", ["centered", f"{ln}/two:0"], ["sq"], name=f"{ln}/Pow"),
        n("ReduceMean", ["sq"], ["var"], name=f"{ln}/ReduceMean_1", axes=[-1]),
        n("Add", ["var", f"{ln}/eps:0"], ["var_eps"], name=f"{ln}/Add"),
        n("Sqrt", ["var_eps"], ["std"], name=f"{ln}/Sqrt"),
        n("Div", ["centered", "std"], ["normed"], name=f"{ln}/Div"),
        n("Mul", ["normed", f"{ln}/gamma:0"], ["scaled"], name=f"{ln}/Mul"),
        n("Add", ["scaled", f"{ln}/beta:0"], ["ln_out"], name=f"{ln}/Add_1"),
        n(
            "ReduceMean",
            ["ln_out"],
            ["pooled"],
            name=f"{p}/Pool",
            axes=[1],
            keepdims=0,
        ),
        n("MatMul", ["pooled", f"{p}/Dense_1/kernel:0"], ["d1"], name=f"{p}/Dense_1/MatMul"),
        n("Add", ["d1", f"{p}/Dense_1/Reshape:0"], ["logits"], name=f"{p}/Dense_1/Add"),
        n("Softmax", ["logits"], ["target_label"], name=f"{p}/Softmax", axis=-1),
    ]
    return _model(
        nodes,
        "decomposed_layernorm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, width])],
        [helper.make_tensor_value_info("target_label", TensorProto.FLOAT, [1, classes])],
        inits,
    )


def lstm_seq(seed: int = 0, steps: int = 10, features: int = 16, hidden: int = 24):
    """x [steps, 1, features] + int32 sequence_lens [1] -> LSTM -> last step -> Gemm -> Sigmoid."""
    rng = np.random.default_rng(seed)
    inits = [
        _f("onnx::LSTM_209", rng.normal(0, 0.2, (1, 4 * hidden, features))),
        _f("onnx::LSTM_210", rng.normal(0, 0.2, (1, 4 * hidden, hidden))),
        _f("onnx::LSTM_211", rng.normal(0, 0.1, (1, 8 * hidden))),
        _f("head.weight", rng.normal(0, 0.3, (1, hidden))),
        _f("head.bias", [0.1]),
        numpy_helper.from_array(np.array([steps - 1], np.int64), "last_start"),
        numpy_helper.from_array(np.array([steps], np.int64), "last_end"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        numpy_helper.from_array(np.array([0, 1], np.int64), "squeeze_axes"),
    ]
    n = helper.make_node
    nodes = [
        n(
            "LSTM",
            ["x", "onnx::LSTM_209", "onnx::LSTM_210", "onnx::LSTM_211", "seq_lens"],
            ["/rnn/LSTM_output_0", "hn", "cn"],
            name="/rnn/LSTM",
            hidden_size=hidden,
        ),
        n(
            "Slice",
            ["/rnn/LSTM_output_0", "last_start", "last_end", "axis0"],
            ["last"],
            name="/Slice",
        ),
        n("Squeeze", ["last", "squeeze_axes"], ["feat"], name="/Squeeze"),  # [1, hidden]
        n("Gemm", ["feat", "head.weight", "head.bias"], ["logit"], name="/head/Gemm", transB=1),
        n("Sigmoid", ["logit"], ["speech_prob"], name="/Sigmoid"),
    ]
    return _model(
        nodes,
        "lstm_seq",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, features]),
            helper.make_tensor_value_info("seq_lens", TensorProto.INT32, [1]),
        ],
        [
            helper.make_tensor_value_info("speech_prob", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("hn", TensorProto.FLOAT, [1, 1, hidden]),
        ],
        inits,
    )


def _const(values, index: int, dtype=np.int64) -> onnx.NodeProto:
    """An unnamed Constant node, as paddle2onnx writes them."""
    arr = np.asarray(values, dtype=dtype)
    out = f"p2o.Constant.{index}"
    return helper.make_node("Constant", [], [out], value=numpy_helper.from_array(arr, out))


def paddle_fixed_reshape(seed: int = 0, channels: int = 16, classes: int = 4, size: int = 16):
    """Conv+Relu -> SE block whose scales go through Reshape [1, C, 1, 1] -> pool -> Reshape
    [1, C] -> Gemm -> Softmax. Both Reshapes hard-code batch 1; Constants and Relus are unnamed."""
    rng = np.random.default_rng(seed)
    inits = [
        _f("conv1_weights", rng.normal(0, 0.3, (channels, 3, 3, 3))),
        _f("conv1_bias", rng.normal(0, 0.05, (channels,))),
        _f("se_fc_weights", rng.normal(0, 0.3, (channels, channels))),
        _f("se_fc_offset", rng.normal(0, 0.05, (channels,))),
        _f("fc_0.w_0", rng.normal(0, 0.3, (channels, classes))),
        _f("fc_0.b_0", rng.normal(0, 0.05, (classes,))),
    ]
    se_shape = _const([1, channels, 1, 1], 0)
    fc_shape = _const([1, channels], 1)
    n = helper.make_node
    nodes = [
        se_shape,
        fc_shape,
        n(
            "Conv",
            ["x", "conv1_weights", "conv1_bias"],
            ["conv1.tmp_1"],
            name="conv2d_0",
            pads=[1, 1, 1, 1],
        ),
        n("Relu", ["conv1.tmp_1"], ["relu_0.tmp_0"]),  # unnamed
        n("GlobalAveragePool", ["relu_0.tmp_0"], ["pool2d_0.tmp_0"]),
        n("Flatten", ["pool2d_0.tmp_0"], ["flatten_0.tmp_0"]),
        n("MatMul", ["flatten_0.tmp_0", "se_fc_weights"], ["se_fc.tmp_0"]),
        n("Add", ["se_fc.tmp_0", "se_fc_offset"], ["se_fc.tmp_1"]),
        n("Sigmoid", ["se_fc.tmp_1"], ["sigmoid_0.tmp_0"]),
        n("Reshape", ["sigmoid_0.tmp_0", se_shape.output[0]], ["reshape2_0.tmp_0"]),
        n("Mul", ["relu_0.tmp_0", "reshape2_0.tmp_0"], ["se_out"], name="elementwise_mul_0"),
        n("GlobalAveragePool", ["se_out"], ["pool2d_1.tmp_0"]),
        n("Reshape", ["pool2d_1.tmp_0", fc_shape.output[0]], ["reshape2_1.tmp_0"]),
        n("MatMul", ["reshape2_1.tmp_0", "fc_0.w_0"], ["fc_0.tmp_0"]),
        n("Add", ["fc_0.tmp_0", "fc_0.b_0"], ["fc_0.tmp_1"]),
        n("Softmax", ["fc_0.tmp_1"], ["save_infer_model/scale_0.tmp_1"], axis=1),
    ]
    return _model(
        nodes,
        "paddle_fixed_reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [
            helper.make_tensor_value_info(
                "save_infer_model/scale_0.tmp_1", TensorProto.FLOAT, [1, classes]
            )
        ],
        inits,
        opset=11,
    )


def yolo_head(seed: int = 0, size: int = 32, classes: int = 3, stride: int = 8):
    """Backbone convs -> 1x1 head conv -> boxes (sigmoid * image size, pixels) and class scores
    (sigmoid, 0-1) concatenated into one [1, cells, 4 + classes] output, like YOLOX/YOLOv8."""
    rng = np.random.default_rng(seed)
    cells = (size // stride) ** 2
    inits = [
        _f("backbone.0.weight", rng.normal(0, 0.3, (16, 3, 3, 3))),
        _f("backbone.0.bias", rng.normal(0, 0.05, (16,))),
        _f("backbone.1.weight", rng.normal(0, 0.15, (32, 16, 3, 3))),
        _f("backbone.1.bias", rng.normal(0, 0.05, (32,))),
        _f("head.box.weight", rng.normal(0, 0.2, (4, 32, 1, 1))),
        _f("head.box.bias", rng.normal(0, 0.05, (4,))),
        _f("head.cls.weight", rng.normal(0, 0.2, (classes, 32, 1, 1))),
        _f("head.cls.bias", rng.normal(-1.0, 0.05, (classes,))),
        _f("image_size", float(size * 13)),  # boxes in pixels of the original image
        numpy_helper.from_array(np.array([1, 4, cells], np.int64), "box_shape"),
        numpy_helper.from_array(np.array([1, classes, cells], np.int64), "cls_shape"),
    ]
    n = helper.make_node
    nodes = [
        n(
            "Conv",
            ["images", "backbone.0.weight", "backbone.0.bias"],
            ["b0"],
            name="Conv_0",
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        ),
        n("Sigmoid", ["b0"], ["b0s"], name="Sigmoid_1"),
        n("Mul", ["b0", "b0s"], ["b0a"], name="Mul_2"),  # SiLU
        n(
            "Conv",
            ["b0a", "backbone.1.weight", "backbone.1.bias"],
            ["b1"],
            name="Conv_3",
            pads=[1, 1, 1, 1],
            strides=[4, 4],
        ),
        n("Relu", ["b1"], ["b1a"], name="Relu_4"),
        n("Conv", ["b1a", "head.box.weight", "head.box.bias"], ["box_raw"], name="Conv_5"),
        n("Sigmoid", ["box_raw"], ["box_unit"], name="Sigmoid_6"),
        n("Mul", ["box_unit", "image_size"], ["box_px"], name="Mul_7"),
        n("Reshape", ["box_px", "box_shape"], ["box_flat"], name="Reshape_8"),
        n("Conv", ["b1a", "head.cls.weight", "head.cls.bias"], ["cls_raw"], name="Conv_9"),
        n("Sigmoid", ["cls_raw"], ["cls_score"], name="Sigmoid_10"),
        n("Reshape", ["cls_score", "cls_shape"], ["cls_flat"], name="Reshape_11"),
        n("Concat", ["box_flat", "cls_flat"], ["head_cat"], name="Concat_12", axis=1),
        n("Transpose", ["head_cat"], ["output"], name="Transpose_13", perm=[0, 2, 1]),
    ]
    return _model(
        nodes,
        "yolo_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, cells, 4 + classes])],
        inits,
        opset=13,
    )


def lstm_feeds(count: int, seed: int = 0, steps: int = 10, features: int = 16):
    """Samples for :func:`lstm_seq` (the int32 lengths are full-length, as streaming VADs use)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (count, steps, 1, features)).astype(np.float32)
    lens = np.full((count, 1), steps, np.int32)
    return {"x": x, "seq_lens": lens}


def mobilenet_se(seed: int = 0, size: int = 32, classes: int = 10, blocks: int = 3):
    """A Paddle/MobileNetV3-style classifier (ppocr_cls's shape): a strided stem + HardSwish, then
    blocks of pointwise Conv + HardSwish, depthwise 3x3 Conv + ReLU, a squeeze-excite (pool,
    1x1 Conv, ReLU, 1x1 Conv, HardSigmoid, Mul) and a pointwise projection, then pooling and a
    Gemm to ``classes`` logits. BN is folded into the biases, as Paddle exports it. The depthwise
    layers and the clipping activations carry activation-rounding shifts down the network: what
    a bias correction from float-input statistics cannot see."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(name, x, c_in, c_out, k, *, stride=1, group=1):
        spread = np.exp(rng.normal(0, 0.6, (c_out, 1, 1, 1)))  # folded BN: uneven channel gains
        w = rng.normal(0, 1.0 / np.sqrt(c_in // group * k * k), (c_out, c_in // group, k, k))
        inits.append(_f(f"{name}.w", w * spread))
        inits.append(_f(f"{name}.b", rng.normal(0.1, 0.3, c_out)))
        nodes.append(helper.make_node(
            "Conv", [x, f"{name}.w", f"{name}.b"], [name], name=name, group=group,
            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
        ))  # fmt: skip
        return name

    def act(op, x, name):
        nodes.append(helper.make_node(op, [x], [name], name=name))
        return name

    x = act("HardSwish", conv("stem", "x", 3, 16, 3, stride=2), "stem_act")
    ch = 16
    for i in range(blocks):
        wide = ch * 3
        h = act("HardSwish", conv(f"b{i}_expand", x, ch, wide, 1), f"b{i}_expand_act")
        h = act("Relu", conv(f"b{i}_dw", h, wide, wide, 3, group=wide), f"b{i}_dw_act")
        nodes.append(helper.make_node("GlobalAveragePool", [h], [f"b{i}_pool"], name=f"b{i}_pool"))
        s = act("Relu", conv(f"b{i}_se1", f"b{i}_pool", wide, wide // 4, 1), f"b{i}_se1_act")
        s = act("HardSigmoid", conv(f"b{i}_se2", s, wide // 4, wide, 1), f"b{i}_se2_act")
        nodes.append(helper.make_node("Mul", [h, s], [f"b{i}_se"], name=f"b{i}_se"))
        out = ch + 8
        x = conv(f"b{i}_project", f"b{i}_se", wide, out, 1)
        ch = out
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"], name="flat"))
    inits.append(_f("fc.w", rng.normal(0, 1.0 / np.sqrt(ch), (ch, classes))))
    inits.append(_f("fc.b", rng.normal(0, 0.1, classes)))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"))
    return _model(
        nodes,
        "mobilenet_se",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        inits,
    )


def pointwise_int4(seed: int = 0, channels: int = 64, classes: int = 10, size: int = 8):
    """A pointwise-heavy block (MobileNet/ConvNeXt style) whose weights are 10x smaller on the
    first half of the input channels than on the second (a group of weak features), the case
    block-wise INT4 is for: a 1x1 Conv, ReLU, a 3x3 Conv, ReLU, a 1x1 Conv, pooling and a Gemm
    head. Channel counts divide into blocks of 32."""
    rng = np.random.default_rng(seed)
    spread = np.where(np.arange(channels) < channels // 2, 0.1, 1.0)

    def weight(c_out, c_in, k):
        w = rng.normal(0, 1.0 / np.sqrt(c_in * k * k), (c_out, c_in, k, k))
        return w * rng.permutation(spread[:c_in] if c_in <= channels else spread).reshape(
            1, -1, 1, 1
        )

    inits = [
        _f("pw1.w", weight(channels, channels, 1)), _f("pw1.b", rng.normal(0, 0.05, channels)),
        _f("k3.w", weight(channels, channels, 3)), _f("k3.b", rng.normal(0, 0.05, channels)),
        _f("pw2.w", weight(channels, channels, 1)), _f("pw2.b", rng.normal(0, 0.05, channels)),
        _f("fc.w", rng.normal(0, 1.0 / np.sqrt(channels), (channels, classes))
           * spread.reshape(-1, 1)),
        _f("fc.b", rng.normal(0, 0.05, classes)),
    ]  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "pw1.w", "pw1.b"], ["pw1"], name="pw1"),
        helper.make_node("Relu", ["pw1"], ["pw1_act"], name="pw1_act"),
        helper.make_node("Conv", ["pw1_act", "k3.w", "k3.b"], ["k3"], name="k3", pads=[1] * 4),
        helper.make_node("Relu", ["k3"], ["k3_act"], name="k3_act"),
        helper.make_node("Conv", ["k3_act", "pw2.w", "pw2.b"], ["pw2"], name="pw2"),
        helper.make_node("GlobalAveragePool", ["pw2"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"),
    ]
    return _model(
        nodes,
        "pointwise_int4",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        inits,
    )
