"""The one file checksum: streamed, equal to hashlib's, and an unreadable file names itself."""

from __future__ import annotations

import hashlib

import pytest

from studio.core.errors import BadInputError, ModelLoadError
from studio.core.hashing import file_sha256
from studio.core.model import loading as model_io


def test_file_sha256_matches_hashlib_across_chunks(tmp_path):
    data = bytes(range(256)) * 1000  # 256 000 bytes: many 4 KiB chunks and a partial last one
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path, chunk=4096) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()


def test_unreadable_file_is_a_studio_error_naming_it(tmp_path):
    missing = tmp_path / "gone.onnx"
    with pytest.raises(BadInputError, match="gone.onnx: cannot read the file"):
        file_sha256(missing)
    with pytest.raises(ModelLoadError, match="gone.onnx"):
        model_io.file_sha256(missing)
