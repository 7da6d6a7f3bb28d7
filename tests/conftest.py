"""Shared fixtures: small real ONNX models built with onnx.helper, written to tmp folders."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Chromium (QtWebEngine) refuses to start as root without --no-sandbox (REFERENCE.md §6); it must be
# set, and QtWebEngineWidgets imported, before pytest-qt creates the QApplication.
if hasattr(os, "geteuid") and os.geteuid() == 0:
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    if "--no-sandbox" not in flags:
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --no-sandbox").strip()
try:  # noqa: SIM105 - optional module
    import PySide6.QtWebEngineWidgets  # noqa: F401
except ImportError:
    pass

import pytest  # noqa: E402

from tests import builders  # noqa: E402


@pytest.fixture
def conv_model(tmp_path):
    """A float Conv->Relu->Conv->Add->GlobalAveragePool->Gemm model, static shapes."""
    return builders.save(builders.small_cnn(), tmp_path / "small_cnn.onnx")


@pytest.fixture
def tiny_model(tmp_path):
    """A float Conv->Relu model with input x [1,3,16,16]."""
    return builders.save(builders.conv_relu(), tmp_path / "conv_relu.onnx")


@pytest.fixture(scope="session")
def qdq_erf_probed(tmp_path_factory):
    """The QDQ Conv + Erf model and its real HTP op-support report, probed once per test session.

    Shared by the op-support, assignment and partition tests (probing costs ~1 s of compiles).
    """
    from studio.core.assignment.support import probe_op_support
    from studio.core.model.graph import ModelGraph

    folder = tmp_path_factory.mktemp("qdq_erf")
    path = builders.save(builders.qdq_conv_erf(), folder / "qdq_conv_erf.onnx")
    graph = ModelGraph.load(path)
    patch = pytest.MonkeyPatch()
    patch.setenv("NPU_STUDIO_CACHE_DIR", str(folder / "cache"))
    try:
        report = probe_op_support(graph, ("htp", "gpu"), use_cache=False)
    finally:
        patch.undo()
    return path, graph, report


@pytest.fixture(autouse=True)
def no_blocking_dialogs(request, monkeypatch):
    """Modal prompts would hang a headless run (e.g. "unsaved changes?" when qtbot closes a window).

    Every prompt answers the safe default and is recorded; a test that cares about one patches it
    itself or inspects ``no_blocking_dialogs``. Core tests never import Qt for this.
    """
    shown: list[tuple[str, tuple]] = []
    if "qtbot" not in request.fixturenames:
        yield shown
        return
    from studio.ui.shell import dialogs

    def record(name, answer):
        def prompt(*args, **kwargs):
            shown.append((name, args[1:]))
            return answer

        return prompt

    monkeypatch.setattr(dialogs, "show_error", record("show_error", None))
    monkeypatch.setattr(dialogs, "ask_unsaved_changes", record("ask_unsaved_changes", "discard"))
    monkeypatch.setattr(dialogs, "ask_restore_recovery", record("ask_restore_recovery", False))
    monkeypatch.setattr(dialogs, "ask_stop_jobs", record("ask_stop_jobs", True))
    yield shown


@pytest.fixture(autouse=True)
def default_target_device(monkeypatch):
    """Each test starts on the default target: `--device` in one CLI test must not leak into the
    next test's sessions through the environment (that is how workers inherit the target)."""
    from studio.core.engine.sessions import TARGET_ENV

    monkeypatch.delenv(TARGET_ENV, raising=False)
