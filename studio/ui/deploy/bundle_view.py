"""The Deploy workspace's bundle browser: what a verified bundle holds, as a tree.

Why apart from the workspace: ``describe_bundle_job`` returns plain JSON (files with checksums,
segments with their tensors and provider options, specs, encodings, plan, session); turning it
into rows is a view of its own, the workspace only decides when to show it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem


def bundle_label(info: dict[str, Any]) -> str:
    """The rich-text line above the tree: where the bundle is, what kind, verified."""
    return (
        f"<b>{info['bundle']}</b><br>{info['kind']} bundle, checksums verified "
        f"({len(info['files'])} files) · created {info.get('created')}"
    )


def fill_bundle_tree(tree: QTreeWidget, info: dict[str, Any]) -> None:
    """Files, segments (in order), inputs/outputs, encodings, plan and session options."""
    tree.clear()
    root = tree.invisibleRootItem()
    files = QTreeWidgetItem(root, ["Files (sha256 verified)", str(len(info["files"]))])
    for rel, meta in info["files"].items():
        QTreeWidgetItem(files, [rel, f"{meta['bytes']:,} B  {meta['sha256'][:16]}…"])
    if info["segments"]:
        segs = QTreeWidgetItem(root, ["Segments (in order)", str(len(info["segments"]))])
        for seg in info["segments"]:
            item = QTreeWidgetItem(
                segs,
                [
                    f"{seg['index']} {seg['backend'].upper()}",
                    f"{seg['file']} · {seg['nodes']} nodes",
                ],
            )
            for t in seg["inputs"]:
                QTreeWidgetItem(item, [f"in  {t['name']}", f"{t['dtype']} {t['shape']}"])
            for t in seg["outputs"]:
                QTreeWidgetItem(item, [f"out {t['name']}", f"{t['dtype']} {t['shape']}"])
            opts = seg.get("provider_options") or {}
            if opts:
                QTreeWidgetItem(
                    item, ["provider options", ", ".join(f"{k}={v}" for k, v in opts.items())]
                )
    specs = QTreeWidgetItem(root, ["Inputs / outputs", ""])
    for kind in ("inputs", "outputs"):
        for spec in info["specs"].get(kind, []):
            q = spec.get("quantization")
            qtext = (
                f" · {q['qtype']} scale {q['scale'][0]:.4g} zp {q['zero_point'][0]}" if q else ""
            )
            QTreeWidgetItem(
                specs,
                [f"{kind[:-1]} {spec['name']}", f"{spec['dtype']} {spec['shape']}{qtext}"],
            )
    enc = info["encodings"]
    QTreeWidgetItem(
        root,
        [
            "Encodings (quantization_config.json)",
            f"{enc.get('activations', 0)} activations, {enc.get('params', 0)} params, "
            f"bit widths {enc.get('bitwidths', [])}"
            if enc["present"]
            else "none (float model)",
        ],
    )
    if info.get("plan"):
        s = info["plan"]["summary"]
        QTreeWidgetItem(
            root,
            [
                "Plan (plan.json)",
                f"{info['plan']['nodes']} nodes, {s.get('segments')} segments, "
                f"{s.get('boundaries')} boundaries",
            ],
        )
    session = info.get("session") or {}
    if session.get("provider_options"):
        QTreeWidgetItem(
            root,
            [
                "Compiled with",
                ", ".join(f"{k}={v}" for k, v in session["provider_options"].items()),
            ],
        )
    tree.expandToDepth(0)
