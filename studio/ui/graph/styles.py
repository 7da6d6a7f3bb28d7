"""How the graph looks: op-type categories and their colours, fonts, level-of-detail thresholds.

Colours are muted so that overlays (bright colour maps) and the accent-coloured selection stand
out against them on the dark theme; categories follow Netron's grouping so users recognise them.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont

from studio.ui.widgets.theme import COLORS

CATEGORIES: dict[str, tuple[str, ...]] = {
    "layer": ("Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "QLinearConv",
              "QLinearMatMul", "ConvInteger", "Einsum", "LSTM", "GRU", "RNN", "Attention"),
    "activation": ("Relu", "Sigmoid", "Tanh", "Gelu", "Erf", "Softmax", "LogSoftmax", "LeakyRelu",
                   "HardSwish", "HardSigmoid", "Clip", "PRelu", "Elu", "Selu", "Mish", "Softplus",
                   "Softsign", "ThresholdedRelu", "Celu", "Swish"),
    "normalization": ("BatchNormalization", "LayerNormalization", "InstanceNormalization",
                      "GroupNormalization", "LRN", "SimplifiedLayerNormalization",
                      "SkipLayerNormalization"),
    "pool": ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
             "MaxRoiPool", "RoiAlign"),
    "shape": ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split",
              "Slice", "Gather", "GatherElements", "GatherND", "Shape", "Expand", "Tile", "Pad",
              "Resize", "Identity", "Cast", "DepthToSpace", "SpaceToDepth", "ScatterND",
              "Size", "Range", "ConstantOfShape"),
    "quantize": ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"),
    "constant": ("Constant",),
}  # fmt: skip

CATEGORY_COLORS: dict[str, str] = {
    "layer": "#2f5f93",
    "activation": "#8f3b3b",
    "normalization": "#2f7350",
    "pool": "#27676b",
    "shape": "#5c4d7d",
    "quantize": "#8a6a22",
    "constant": "#3b414c",
    "math": "#3f4754",
    "group": "#2a2f38",
    "io": "#24425e",
}

_OP_CATEGORY = {op: cat for cat, ops in CATEGORIES.items() for op in ops}

BACKGROUND = QColor(COLORS["base"])
EDGE = QColor("#5a6272")
EDGE_SELECTED = QColor(COLORS["accent"])
NODE_BORDER = QColor(0, 0, 0, 110)
NODE_TEXT = QColor("#eef1f5")
NODE_SUBTEXT = QColor(238, 241, 245, 170)
SELECTION = QColor(COLORS["accent"])
SEARCH_HIT = QColor("#e5b567")
NO_DATA = QColor("#3a3f47")
GROUP_BORDER = QColor("#7d8694")

# Level of detail, in device pixels per scene unit (QStyleOptionGraphicsItem.levelOfDetail...).
LOD_DETAIL = 0.42  # boxes drawn one by one with their op type
LOD_SUBTEXT = 0.8  # second line (shape / name / member count) appears
LOD_BADGES = 0.25  # badges drawn
LOD_ANTIALIAS = 0.2
LOD_CURVES = 0.2  # edges drawn as S-curves instead of straight polylines

BADGE_COLORS = {
    "HTP": "#2f9e62",
    "NPU": "#2f9e62",
    "GPU": "#8a5cc7",
    "CPU": "#6b7380",
}


def category(op_type: str) -> str:
    return _OP_CATEGORY.get(op_type, "math")


def badge_color(text: str) -> QColor:
    """Known backends get fixed colours; anything else a stable colour from its text."""
    key = text.upper()
    if key in BADGE_COLORS:
        return QColor(BADGE_COLORS[key])
    if key.startswith(("A", "W")) and key[1:].isdigit():  # bit widths: A16, W8...
        bits = int(key[1:])
        return QColor("#b8860b" if bits >= 16 else "#4a78c2" if bits >= 8 else "#c2504a")
    hue = (sum(ord(c) * 31 for c in key) % 360) / 360.0
    return QColor.fromHsvF(hue, 0.55, 0.7)


def scene_font(pixel_size: int, bold: bool = False) -> QFont:
    font = QFont()
    font.setFamilies(["Inter", "Segoe UI", "Noto Sans", "DejaVu Sans"])
    font.setPixelSize(pixel_size)
    font.setBold(bold)
    font.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
    return font
