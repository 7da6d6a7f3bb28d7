"""Recently opened models and projects, kept in QSettings so they survive restarts.

The list is most-recent-first, de-duplicated by absolute path and capped. Files that have since
disappeared stay listed (a USB disk may come back) but the menu shows them disabled; opening one
that is gone removes it. Tests pass their own QSettings (an ini file in a temp folder) so they
never touch the user's settings.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QObject, QSettings, Signal

KEY = "recent/files"
MAX_FILES = 10


class RecentFiles(QObject):
    """The recent-files list over one QSettings key; emits ``changed`` on every edit."""

    changed = Signal()

    def __init__(
        self,
        settings: QSettings | None = None,
        parent: QObject | None = None,
        limit: int = MAX_FILES,
    ) -> None:
        super().__init__(parent)
        self._settings = settings if settings is not None else QSettings()
        self._limit = limit

    def files(self) -> list[str]:
        """Most recent first."""
        value = self._settings.value(KEY, [])
        if isinstance(value, str):  # QSettings returns a bare string for one-element lists
            value = [value]
        if not isinstance(value, list):
            return []
        return [str(v) for v in value if v][: self._limit]

    def add(self, path: str | os.PathLike[str]) -> None:
        full = os.path.abspath(os.fspath(path))
        items = [full] + [p for p in self.files() if p != full]
        self._write(items[: self._limit])

    def remove(self, path: str | os.PathLike[str]) -> None:
        full = os.path.abspath(os.fspath(path))
        self._write([p for p in self.files() if p != full])

    def clear(self) -> None:
        self._write([])

    def _write(self, items: list[str]) -> None:
        self._settings.setValue(KEY, items)
        self._settings.sync()
        self.changed.emit()
