"""Source module names as ONNX node names, so graph, encodings and profiles speak the user's names.

The torch.export-based exporter names nodes ``node_conv2d_1`` but keeps the module path in each
node's ``pkg.torch.onnx.name_scopes`` metadata (``['', 'layer2', 'layer2.0', 'conv2d_1']``); the
TorchScript exporter writes scope paths into the name itself (``/layer2/0/Conv``). Both become
``layer2.0`` when that module made one node, ``layer2.0/conv2d_1`` when it made several, and the
traced call's own name (``relu``) for code outside any submodule. Tensor names are left alone, so
encodings keyed by tensor stay valid.
"""

from __future__ import annotations

import ast
from collections import Counter

import onnx

SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def _scopes(node: onnx.NodeProto) -> tuple[str, str] | None:
    """(module path, leaf) of one node, or None when the exporter kept nothing."""
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            if isinstance(scopes, list) and scopes:
                module = next((s for s in reversed(scopes[:-1]) if s), "")
                return str(module), str(scopes[-1])
    if node.name.startswith("/"):
        parts = [p for p in node.name.split("/") if p]
        if parts:
            return ".".join(parts[:-1]), parts[-1]
    return None


def apply_module_names(model: onnx.ModelProto) -> int:
    """Rename the nodes of ``model`` in place after their modules; returns how many changed."""
    plans: list[tuple[onnx.NodeProto, str, str]] = []
    for node in model.graph.node:
        found = _scopes(node)
        if found is not None:
            plans.append((node, *found))
    per_module = Counter(module for _, module, _ in plans if module)
    taken = {n.name for n in model.graph.node}
    changed = 0
    for node, module, leaf in plans:
        if module and per_module[module] == 1:
            wanted = module
        elif module:
            wanted = f"{module}/{leaf}"
        else:
            wanted = leaf
        if wanted == node.name:
            continue
        name, k = wanted, 1
        while name in taken:
            name = f"{wanted}_{k}"
            k += 1
        taken.discard(node.name)
        taken.add(name)
        node.name = name
        changed += 1
    return changed
