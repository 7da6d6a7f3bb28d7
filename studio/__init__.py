"""npu-studio: take an ONNX model to a Qualcomm NPU and see why it is fast or slow, accurate or not."""

__version__ = "0.1.0"
