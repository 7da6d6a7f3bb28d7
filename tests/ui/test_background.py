"""Background: the one way to run work off the UI thread, with the job protocol's events."""

from __future__ import annotations

import threading

import pytest

from studio.core.errors import BadInputError
from studio.core.jobs import testing
from studio.core.jobs.protocol import job_kind
from studio.ui.jobs.background import CANCELLED, DONE, FAILED, Background
from studio.ui.jobs.manager import JobManager


def _record(bg: Background) -> list[tuple]:
    events: list[tuple] = []
    bg.started.connect(lambda title: events.append(("started", title)))
    bg.progress.connect(lambda f, stage, text: events.append(("progress", f, stage, text)))
    bg.log.connect(lambda line: events.append(("log", line)))
    bg.result.connect(lambda value: events.append(("result", value)))
    bg.error.connect(lambda title, message, details: events.append(("error", title, message)))
    bg.finished.connect(lambda state: events.append(("finished", state)))
    return events


def _work(ctx):
    ctx.stage = "count"
    ctx.log("counting")
    ctx.progress(1.0, "all counted")
    return {"ui_thread": threading.current_thread() is threading.main_thread()}


def test_events_arrive_in_protocol_order_off_the_ui_thread(qtbot):
    bg = Background()
    events = _record(bg)
    with qtbot.waitSignal(bg.finished, timeout=10_000):
        bg.start("Count", _work)
    assert events[0] == ("started", "Count")
    assert ("log", "counting") in events and ("progress", 1.0, "count", "all counted") in events
    assert events[-2] == ("result", {"ui_thread": False}) and events[-1] == ("finished", DONE)
    assert not bg.busy


def test_a_studio_error_becomes_error_then_finished_failed(qtbot):
    bg = Background()
    events = _record(bg)

    def bad(_ctx):
        raise BadInputError("no such tensor 'x'", path="/tmp/m.onnx")

    with qtbot.waitSignal(bg.finished, timeout=10_000):
        bg.start("Check", bad)
    assert events[-2] == ("error", "Check", "/tmp/m.onnx: no such tensor 'x'")
    assert events[-1] == ("finished", FAILED)


def test_a_bug_reaches_the_user_with_its_traceback(qtbot):
    bg = Background()
    details = []
    bg.error.connect(lambda _t, _m, d: details.append(d))
    with qtbot.waitSignal(bg.finished, timeout=10_000):
        bg.start("Bug", lambda _ctx: 1 / 0)
    assert "ZeroDivisionError" in details[0] and "Traceback" in details[0]


def test_on_result_runs_on_the_ui_thread_and_its_error_fails_the_task(qtbot):
    bg = Background()
    events = _record(bg)
    seen = []

    def done(value):
        seen.append((value, threading.current_thread() is threading.main_thread()))
        raise BadInputError("the result does not fit the model")

    with qtbot.waitSignal(bg.finished, timeout=10_000):
        bg.start("Fit", lambda _ctx: 42, on_result=done)
    assert seen == [(42, True)]
    assert ("error", "Fit", "the result does not fit the model") in events
    assert events[-1] == ("finished", FAILED) and not any(e[0] == "result" for e in events)


def test_a_new_task_supersedes_the_running_one_and_drops_its_result(qtbot):
    bg = Background()
    events = _record(bg)
    release = threading.Event()

    def slow(ctx):
        release.wait(10)
        return "stale"

    bg.start("Slow", slow)
    bg.start("Fast", lambda _ctx: "fresh")
    assert ("finished", CANCELLED) in events  # the first ends at once, cancelled
    release.set()
    qtbot.waitUntil(lambda: ("result", "fresh") in events, timeout=10_000)
    bg.wait(10_000)
    qtbot.wait(50)
    assert [e for e in events if e[0] == "result"] == [("result", "fresh")]


def test_cancel_ends_the_task_at_once_and_the_token_stops_the_work(qtbot):
    bg = Background()
    events = _record(bg)
    running, stopped = threading.Event(), threading.Event()

    def loop(ctx):
        running.set()
        while not ctx.cancelled:
            stopped.wait(0.01)
        stopped.set()
        return "too late"

    bg.start("Loop", loop)
    assert running.wait(10)
    bg.cancel()
    assert events[-1] == ("finished", CANCELLED) and not bg.busy
    assert stopped.wait(10)
    bg.wait(10_000)
    qtbot.wait(50)
    assert not any(e[0] == "result" for e in events)


def test_queued_tasks_each_report_to_their_own_callbacks(qtbot):
    bg = Background(latest_only=False)
    got: dict[str, object] = {}
    for name in ("a", "b", "c"):
        bg.start(
            name, lambda _ctx, n=name: n.upper(), on_result=lambda v, n=name: got.update({n: v})
        )

    def bad(_ctx):
        raise BadInputError("broken")

    bg.start("d", bad, on_error=lambda message, _d: got.update({"d": message}))
    qtbot.waitUntil(lambda: len(got) == 4, timeout=10_000)
    assert got == {"a": "A", "b": "B", "c": "C", "d": "broken"} and not bg.busy


@pytest.mark.parametrize("managed", [False, True])
def test_a_worker_job_reports_the_same_events_with_or_without_a_manager(qtbot, managed):
    manager = JobManager() if managed else None
    bg = Background(jobs=lambda: manager, lane="test")
    events = _record(bg)
    with qtbot.waitSignal(bg.finished, timeout=60_000):
        bg.submit("Echo", job_kind(testing.echo), {"lines": ["one"], "n": 2})
    assert events[0] == ("started", "Echo") and ("log", "one") in events
    result = next(e[1] for e in events if e[0] == "result")
    assert result["echo"]["n"] == 2 and events[-1] == ("finished", DONE)
    if managed:
        assert manager.jobs[-1].lane == "test" and manager.jobs[-1].state == DONE


def test_an_outcome_after_the_owner_was_closed_is_dropped(qtbot):
    """A window closed while its task runs: the late result must not reach deleted widgets."""
    import shiboken6
    from PySide6.QtCore import QObject

    owner = QObject()
    bg = Background(owner)
    results: list = []
    started = threading.Event()

    def slow(ctx):
        started.set()
        threading.Event().wait(0.3)
        return "late"

    bg.start("Slow", slow, on_result=results.append)
    assert started.wait(10)
    shiboken6.delete(owner)  # waits for the pool's thread; its outcome is queued behind
    assert not shiboken6.isValid(bg)
    qtbot.wait(200)
    assert results == []
