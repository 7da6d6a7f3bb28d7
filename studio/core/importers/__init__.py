"""Models from other frameworks (PyTorch TorchScript / torch.export, TFLite) turned into ONNX.

One module per source format (``pytorch`` + the script it sends to an interpreter,
``tflite_reader``), ``sniff`` to tell formats apart without executing anything, ``checks`` to
compare with the source framework, ``naming`` for module names, ``convert`` to tie them together
and ``jobs`` to run it in the worker process.
"""
