"""SHA-256 of a file, the one way the studio checksums models, bundles and sources.

Models can be gigabytes, so the file is streamed in 1 MiB chunks. An unreadable file is a
StudioError naming it (the caller picks the subclass), never a bare OSError.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from studio.core.errors import BadInputError, StudioError


def file_sha256(
    path: str | Path, chunk: int = 1 << 20, *, error_type: type[StudioError] = BadInputError
) -> str:
    """Hex SHA-256 of the file at ``path``; raises ``error_type`` naming it when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise error_type(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from exc
    return digest.hexdigest()
