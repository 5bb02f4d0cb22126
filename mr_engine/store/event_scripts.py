"""Kopano's user event scripts (§8.5.1.1): a program run when a user or group appears or goes.

``createuser_script``, ``deleteuser_script``, ``creategroup_script`` and
``deletegroup_script`` name a program (with arguments, split as a shell would, but run
without one), started with the name in its environment (``KOPANO_USER`` or
``KOPANO_GROUP``). ``queue_event`` is called where the change is made, in its session: the
scripts run only once that transaction has committed (a rolled-back creation runs nothing),
one after another on a thread of their own, so that neither a delivery's transaction nor the
event loop ever waits for one. A script that fails, cannot be started or outlives
``script_timeout`` (it is then killed) is logged as a warning; nothing else depends on it.
At exit the process waits for the scripts queued so far (``kopano-cli --sync`` from cron).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core.printable import printable

log = logging.getLogger(__name__)

# The events, each with the variable that names its object (Kopano's userscripts).
VARIABLES = {"createuser": "KOPANO_USER", "deleteuser": "KOPANO_USER",
             "creategroup": "KOPANO_GROUP", "deletegroup": "KOPANO_GROUP"}
_PENDING = "mr_engine.event_scripts"  # the session.info key of a transaction's events


@dataclass(frozen=True)
class Run:
    """One script to run: the command line, the variable and the name, its timeout."""

    event: str
    command: tuple[str, ...]
    variable: str
    name: str
    timeout: int


def planned(settings: Settings, event_name: str, name: str) -> Run | None:
    """The run of ``event_name``'s script for ``name``; None when no script is set."""
    command = getattr(settings, f"{event_name}_script")
    if not command.strip():
        return None
    return Run(event_name, tuple(shlex.split(command)), VARIABLES[event_name], name,
               settings.script_timeout)


def queue_event(session: Session, settings: Settings, event_name: str, name: str) -> None:
    """Run ``event_name``'s script for ``name`` once ``session``'s transaction commits."""
    run = planned(settings, event_name, name)
    if run is None:
        return
    pending = session.info.setdefault(_PENDING, [])
    if not pending:
        event.listen(session, "after_commit", _start_pending, once=True)
        event.listen(session, "after_rollback", _drop_pending, once=True)
    pending.append(run)


def _start_pending(session: Session) -> None:
    for run in session.info.pop(_PENDING, []):
        submit(run)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


_runner: ThreadPoolExecutor | None = None
_runner_lock = threading.Lock()


def submit(run: Run) -> Future:
    """Run ``run`` on the process's script thread (started on first use, so that a forked
    worker has its own); the future says when it is done."""
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-script")
        return _runner.submit(execute, run)


def execute(run: Run) -> int | None:
    """Run the script and wait for it (at most its timeout); its exit status, None when it
    could not be started or was killed. Every failure is logged, none is raised."""
    what = f"{run.event} script {printable(shlex.join(run.command))} for {printable(run.name)}"
    try:
        status, said = _run(run)
    except subprocess.TimeoutExpired:
        log.warning("%s killed after %d s", what, run.timeout)
        return None
    except OSError as exc:
        log.warning("%s could not be started: %s", what, exc.strerror or exc)
        return None
    if status != 0:
        log.warning("%s failed with exit status %d%s", what, status,
                    f": {printable(said)}" if said else "")
    else:
        log.info("%s done", what)
    return status


def _run(run: Run) -> tuple[int, str]:
    """The exit status and the end of stderr. The script gets a session (process group) of
    its own, so that a timeout kills what it started too: a child left holding stderr
    would otherwise keep us waiting past the timeout."""
    environment = {**os.environ, run.variable: run.name}
    with subprocess.Popen(run.command, env=environment, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          start_new_session=True) as process:
        try:
            _, errors = process.communicate(timeout=run.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return process.returncode, errors.decode("utf-8", "replace").strip()[-500:]
