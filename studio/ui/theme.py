"""The theme's stable import path: ``from studio.ui.theme import apply_theme`` (see main_window.py)."""

from studio.ui.widgets.theme import apply_theme

__all__ = ["apply_theme"]
