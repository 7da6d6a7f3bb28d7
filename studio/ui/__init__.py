"""PySide6 views over studio.core: they show core state and send commands, nothing more."""
