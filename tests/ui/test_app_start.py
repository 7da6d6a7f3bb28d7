"""Start-up: Chromium's sandbox flag as root, and `npu-studio PATH` routing to the window."""

from __future__ import annotations

import os

import pytest

from studio import app, cli


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_no_sandbox_flag_only_as_root(monkeypatch):
    monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", "--foo")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    app.prepare_environment()
    assert os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] == "--foo"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    app.prepare_environment()
    app.prepare_environment()  # idempotent
    assert os.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split() == ["--foo", "--no-sandbox"]


def test_cli_opens_the_window_on_a_path(monkeypatch, conv_model):
    opened = []
    monkeypatch.setattr(app, "run_app", lambda paths: opened.append(list(paths)) or 0)
    assert cli.main([str(conv_model)]) == 0
    assert cli.main([]) == 0
    assert opened == [[str(conv_model)], []]
