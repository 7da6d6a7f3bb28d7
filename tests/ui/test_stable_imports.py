"""The window's stable import paths, which walkthrough tools outside the package rely on."""

from __future__ import annotations


def test_main_window_and_theme_import_from_their_stable_paths(qtbot, tmp_path):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from studio.ui.main_window import MainWindow
    from studio.ui.shell.main_window import MainWindow as ShellWindow
    from studio.ui.theme import apply_theme

    assert MainWindow is ShellWindow
    apply_theme(QApplication.instance())
    win = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    assert win.windowTitle() == "npu-studio"
