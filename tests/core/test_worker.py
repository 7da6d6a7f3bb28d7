"""The worker process: crashes, kills and cancels fail one job only and leave no process behind."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
import pytest

from studio.core.errors import (
    BadInputError,
    ConfigError,
    JobCancelledError,
    JobFailedError,
)
from studio.core.jobs import client as worker_client
from studio.core.jobs import testing
from studio.core.jobs.client import WorkerProcess, kill_all_workers, live_workers, run_in_worker
from studio.core.jobs.protocol import CancelToken, JobContext, job_kind


def _collect() -> tuple[JobContext, list[str], list[tuple[float, str]]]:
    logs: list[str] = []
    progress: list[tuple[float, str]] = []
    ctx = JobContext(on_progress=lambda f, t: progress.append((f, t)), on_log=logs.append)
    return ctx, logs, progress


def _gone(pid: int, timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_echo_round_trip_streams_logs_and_progress():
    ctx, logs, progress = _collect()
    result = run_in_worker(job_kind(testing.echo), {"lines": ["one", "two"], "x": [1, 2.5]}, ctx)
    assert result["echo"]["x"] == [1, 2.5]
    assert result["pid"] != os.getpid()
    assert logs[:2] == ["one", "two"]
    assert progress[-1] == (1.0, "echoed")


@pytest.mark.parametrize("how", ["kill", "null_read"])
def test_segfault_is_a_job_failure_and_next_job_runs(how):
    ctx, logs, _ = _collect()
    with pytest.raises(JobFailedError) as info:
        run_in_worker(job_kind(testing.segfault), {"how": how}, ctx)
    message = str(info.value)
    assert "SIGSEGV" in message
    assert "about to crash on purpose" in message  # the last log lines are in the message
    assert "native-ish stderr line" in message
    assert run_in_worker(job_kind(testing.echo), {"n": 1})["echo"] == {"n": 1}


def test_abort_names_sigabrt():
    with pytest.raises(JobFailedError, match="SIGABRT"):
        run_in_worker(job_kind(testing.abort), {})


def test_sigkill_from_outside_is_reported_and_next_job_runs():
    ctx, _, _ = _collect()
    worker = WorkerProcess(job_kind(testing.sleep), {"seconds": 20})
    worker.start()
    killer = threading.Timer(0.8, lambda: os.kill(worker.pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(JobFailedError, match="SIGKILL") as info:
        worker.run(ctx)
    assert "sleeping 20.0 s" in str(info.value)
    assert run_in_worker(job_kind(testing.echo), {"after": "kill"})["echo"] == {"after": "kill"}


@pytest.mark.parametrize("ignore_cancel", [False, True])
def test_cancel_stops_within_one_second_and_leaves_no_orphan(tmp_path, ignore_cancel):
    pid_file = tmp_path / "child.pid"
    token = CancelToken()
    ctx = JobContext(token=token)
    worker = WorkerProcess(
        job_kind(testing.sleep),
        {
            "seconds": 30,
            "spawn_child": True,
            "child_pid_file": str(pid_file),
            "ignore_cancel": ignore_cancel,
        },
    )
    worker.start()
    errors: list[BaseException] = []

    def go() -> None:
        try:
            worker.run(ctx)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    end = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < end, "the job never started its child"
        time.sleep(0.02)
    child_pid = int(pid_file.read_text())
    worker_pid = worker.pid
    started = time.monotonic()
    token.cancel()
    thread.join(timeout=5)
    elapsed = time.monotonic() - started
    assert not thread.is_alive()
    assert elapsed < 1.0, f"cancel took {elapsed:.2f} s"
    assert len(errors) == 1 and isinstance(errors[0], JobCancelledError)
    assert _gone(worker_pid) and _gone(child_pid)
    assert all(w.pid != worker_pid for w in live_workers())


def test_timeout_is_a_job_failure():
    with pytest.raises(JobFailedError, match="timed out"):
        run_in_worker(job_kind(testing.sleep), {"seconds": 20}, timeout_s=0.7)


def test_studio_error_type_and_path_cross_the_pipe():
    with pytest.raises(ConfigError) as info:
        run_in_worker(
            job_kind(testing.fail), {"error": "ConfigError", "message": "bad", "path": "/x.json"}
        )
    assert info.value.path == "/x.json"
    assert "bad" in str(info.value)


def test_bug_in_job_becomes_job_failed_with_traceback():
    with pytest.raises(JobFailedError, match="ValueError: a bug on purpose") as info:
        run_in_worker(job_kind(testing.fail), {})
    assert "Traceback" in (info.value.detail or "")


def test_unknown_kind_and_non_job_are_refused():
    with pytest.raises(BadInputError, match="unknown job kind"):
        run_in_worker("os:system", {"cmd": "true"})
    with pytest.raises(BadInputError, match="unknown job kind"):
        run_in_worker("studio.core.jobs.client:kill_all_workers", {})


def test_kill_all_workers_stops_running_workers():
    workers = [WorkerProcess(job_kind(testing.sleep), {"seconds": 30}) for _ in range(2)]
    for w in workers:
        w.start()
    pids = [w.pid for w in workers]
    assert {w.pid for w in live_workers()} >= set(pids)
    assert kill_all_workers() >= 2
    assert all(_gone(pid) for pid in pids)
    for w in workers:  # the run() of a killed worker reports the kill, not a hang
        with pytest.raises(JobFailedError):
            w.run(timeout_s=5)
    assert worker_client.live_workers() == []


def test_crash_inside_native_capture_keeps_the_native_lines_and_the_stack():
    with pytest.raises(JobFailedError) as info:
        run_in_worker(job_kind(testing.segfault_in_capture), {})
    message = str(info.value)
    assert "SIGSEGV" in message and "segfault_in_capture" in message  # faulthandler still works
    assert "native line printed just before the crash" in message
    assert "creating a session that will crash" in message
