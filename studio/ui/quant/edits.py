"""The Quantization workspace's edits: per-tensor overrides, bulk edits, histogram ranges and
plan-wide defaults, each one undoable command.

Why apart from the workspace: every edit goes through the same steps (the core's rules decide
first, via :class:`QuantSession`; only an accepted edit is pushed on ``ctx.undo_stack``; an edit
the quantiser would ignore is said so), which is the editor's controller, not its layout. The
functions take the workspace first, as the action modules do.
"""

from __future__ import annotations

from typing import Any

from studio.core.errors import StudioError
from studio.core.quantize.plan import TensorOverride
from studio.ui.quant.commands import SetDefaultsCommand, SetOverridesCommand


def push_overrides(
    ws, changes: dict[str, TensorOverride | None], text: str, merge_key: str | None = None
) -> bool:
    """Apply through the core first; push the command only if it was accepted."""
    if not changes:
        return False
    command = SetOverridesCommand(ws.session, changes, text, merge_key)
    try:
        ws.session.apply_overrides(changes)
    except StudioError as exc:
        ws.show_message(str(exc), error=True)
        return False
    command.applied = True
    ws.ctx.undo_stack.push(command)
    ws.show_message(text)
    return True


def edit_field(ws, name: str, key: str, value: Any) -> bool:
    """One cell edit (the table's setData goes through the same path)."""
    try:
        ov = ws.session.edited_override(name, key, value)
    except (StudioError, ValueError) as exc:
        ws.show_message(str(exc), error=True)
        return False
    done = push_overrides(ws, {name: ov}, f"{name}: {key} = {value}")
    if done and not ws.session.reflects(name, key, value):
        ws.show_message(
            f"{name}: {key} = {value} is recorded, but the quantiser does not apply it to "
            "this tensor",
            error=True,
        )
    return done


def bulk_edit(ws, key: str, value: Any, names: list[str]) -> bool:
    """One command for all ``names``; tensors the edit does not fit are skipped and counted."""
    changes: dict[str, TensorOverride | None] = {}
    skipped: list[str] = []
    for name in names:
        if key == "reset":
            if ws.session.override(name) is not None:
                changes[name] = None
            continue
        row = ws.session.row(name)
        if key == "per_channel" and (row is None or row.kind == "activation"):
            skipped.append(name)
            continue
        try:
            changes[name] = ws.session.edited_override(name, key, value)
        except (StudioError, ValueError):
            skipped.append(name)
    label = {"bits": f"bits = {value}", "reset": "reset to defaults"}.get(key, f"{key} = {value}")
    done = push_overrides(ws, changes, f"{len(changes)} tensors: {label}")
    ignored = [n for n in changes if done and not ws.session.reflects(n, key, value)]
    notes = []
    if skipped:
        notes.append(f"{len(skipped)} skipped (the edit does not apply to them, e.g. {skipped[0]})")
    if ignored:
        notes.append(
            f"{len(ignored)} kept their setting: the quantiser does not apply it to them "
            f"(e.g. {ignored[0]})"
        )
    if notes:
        ws.show_message(f"{len(changes)} tensors: {label}; " + "; ".join(notes), error=not done)
    return done


def edit_range(ws, name: str, lo: float, hi: float) -> bool:
    """Histogram drag: a new [min, max] for one tensor; consecutive drags merge."""
    try:
        ov = ws.session.range_override(name, lo, hi)
    except (StudioError, ValueError) as exc:
        ws.show_message(str(exc), error=True)
        ws._refresh_selected()
        return False
    ok = push_overrides(ws, {name: ov}, f"{name}: range [{lo:.4g}, {hi:.4g}]", name)
    if not ok:
        ws._refresh_selected()
    return ok


def set_defaults(ws, **values: Any) -> bool:
    changed = {k: v for k, v in values.items() if getattr(ws.session.plan, k) != v}
    if not changed:
        return False
    command = SetDefaultsCommand(
        ws.session, changed, ", ".join(f"default {k} = {v}" for k, v in changed.items())
    )
    try:
        ws.session.apply_defaults(changed)
    except StudioError as exc:
        ws.show_message(str(exc), error=True)
        ws._sync_default_widgets()
        return False
    command.applied = True
    ws.ctx.undo_stack.push(command)
    return True
