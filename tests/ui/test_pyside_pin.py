"""Guard against PySide6 6.12.0's leaked reference to None on void calls (REFERENCE.md §6)."""

import sys

from PySide6.QtWidgets import QLabel


def test_void_calls_do_not_leak_references_to_none(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for i in range(10_000):
        label.setText("x" if i % 2 else "y")
    after = sys.getrefcount(None)
    assert abs(after - before) < 50, f"None refcount drifted by {after - before}"
