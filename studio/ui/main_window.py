"""The main window's stable import path: ``from studio.ui.main_window import MainWindow``.

The window is built in ``studio.ui.shell``; scripts outside the package (walkthrough and screenshot
tools, embedders) import it from here, so the shell's internal layout can move without breaking them.
"""

from studio.ui.shell.main_window import MainWindow

__all__ = ["MainWindow"]
