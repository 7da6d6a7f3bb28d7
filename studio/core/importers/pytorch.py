"""PyTorch sources (TorchScript ``.pt``, torch.export ``.pt2``) -> ONNX, in a Python that has torch.

torch is not part of the studio's base install, and the right interpreter is often the user's own
(the one the model was written with). So the conversion is ``torch_script.py`` run by an
interpreter: the studio's own when it has torch (the ``[torch]`` extra), else ``--python PATH``.
Only files come back (the ONNX model, an ``.npz`` with the inputs and the source's outputs), the
script's JSON lines become progress, its stderr the job's log, and cancel kills it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from studio.core.errors import BadInputError, JobCancelledError, JobFailedError
from studio.core.jobs.protocol import JobContext

SCRIPT = Path(__file__).with_name("torch_script.py")
PROBE_TIMEOUT_S = 30.0


def default_python() -> str | None:
    """The studio's own interpreter when it can convert (torch installed), else None."""
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    return None


def resolve_python(python: str | None) -> str:
    """The interpreter to use, checked to be a Python 3; a clear error when there is none."""
    if not python:
        python = default_python()
        if python is None:
            raise BadInputError(
                "PyTorch is not installed with the studio: install the extra "
                "(pip install -e '.[torch]', CPU build: pip install torch==2.13.0 onnxscript) "
                "or give --python PATH of an interpreter that has torch"
            )
    check_interpreter(python)
    return python


def check_interpreter(python: str) -> str:
    """Run ``python`` once to prove it is a Python 3 interpreter; returns its version."""
    probe = "import sys; print('STUDIO-PY', '%d.%d.%d' % sys.version_info[:3])"
    try:
        done = subprocess.run(
            [python, "-c", probe],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BadInputError(f"'{python}' is not a Python interpreter ({exc})") from exc
    for line in done.stdout.splitlines():
        if line.startswith("STUDIO-PY 3."):
            return line.split()[1]
    raise BadInputError(
        f"'{python}' is not a Python 3 interpreter (it printed "
        f"{(done.stdout + done.stderr).strip()[:120]!r}, exit {done.returncode})"
    )


def run_torch_script(python: str, request: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Run the conversion script in ``python``; returns its result event, raises its error."""
    with tempfile.TemporaryDirectory(prefix="studio-torch-") as tmp:
        req_path = Path(tmp) / "request.json"
        req_path.write_text(json.dumps(request))
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the user's interpreter must not import the studio's tree
        env["PYTHONUNBUFFERED"] = "1"
        proc = subprocess.Popen(
            [python, str(SCRIPT), str(req_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=tmp,
        )
        log_tail: list[str] = []

        def pump_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                line = line.rstrip()
                if line:
                    log_tail.append(line)
                    del log_tail[:-40]
                    ctx.log(line)

        reader = threading.Thread(target=pump_stderr, daemon=True)
        reader.start()
        watcher = threading.Thread(target=_kill_on_cancel, args=(proc, ctx), daemon=True)
        watcher.start()
        final: dict[str, Any] | None = None
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                ctx.log(line.rstrip())
                continue
            if event.get("event") == "progress":
                ctx.progress(float(event.get("fraction", 0.0)), str(event.get("text", "")))
            elif event.get("event") in ("result", "error"):
                final = event
        proc.wait()
        reader.join(timeout=5)
        if ctx.cancelled:
            raise JobCancelledError("conversion cancelled by the user")
    if final is None:
        raise JobFailedError(
            f"the conversion in {python} ended without a result (exit {proc.returncode}); "
            "last lines: " + " | ".join(log_tail[-6:])
        )
    if final["event"] == "error":
        raise BadInputError(str(final.get("message")), path=request.get("source"))
    return final


def _kill_on_cancel(proc: subprocess.Popen[str], ctx: JobContext) -> None:
    while proc.poll() is None:
        if ctx.cancelled:
            proc.kill()
            return
        try:
            proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
