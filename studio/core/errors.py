"""The studio's own error types.

Core code raises these with a message a user can act on (which file, tensor or node, and what was
expected). The CLI maps them to exit codes; the GUI shows them in a dialog or the Jobs dock. Any
other exception escaping core is a bug.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class: a problem the user can understand and fix. CLI exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, detail: str | None = None):
        self.path = path
        self.detail = detail
        super().__init__(f"{path}: {message}" if path else message)


class BadInputError(StudioError):
    """An input file or value is malformed, inconsistent or unsupported."""


class ModelLoadError(BadInputError):
    """The model file cannot be read, parsed, validated or its external data resolved."""


class EncodingsError(BadInputError):
    """An encodings file or an Encoding value is malformed or inconsistent."""


class ConfigError(BadInputError):
    """A backend config, plan or project file is malformed."""


class BackendUnavailableError(StudioError):
    """A requested backend cannot be used on this machine. CLI exit code 3."""

    exit_code = 3


class JobFailedError(StudioError):
    """A job failed in the worker (native crash, killed, or an error it reported). Exit code 3."""

    exit_code = 3


class JobCancelledError(StudioError):
    """The user cancelled the job. Exit code 130 like an interrupted command."""

    exit_code = 130
