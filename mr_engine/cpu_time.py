"""Where the CPU goes: OS thread names, and CPU seconds counted by stage.

``name_thread`` gives the calling OS thread a name (Linux: its ``comm``), so that
``top -H``, ``ps -L`` and /proc/<pid>/task/*/stat tell the committer from the event loop;
the benchmark reads each thread's CPU time there to split a delivery's cost between the
protocol side (the event loop) and the commit side (the committer thread).

A ``Stage`` is a context manager that adds the CPU time its block took on the calling
thread (``time.thread_time``: not the waits, not the other threads) to
``mr_engine_cpu_seconds_total{stage=...}``. Stages nest: the time of an inner stage is
charged to it alone, not to the outer one too (the reply built while deciding is
``reply_build``, not ``decide``). Two clock reads and one counter increment a stage.

Like ``metrics``, this sits below every layer (it imports only the metrics).
"""

from __future__ import annotations

import threading
import time

from mr_engine import metrics

COMM_LENGTH = 15  # bytes of a Linux thread name (TASK_COMM_LEN less its NUL)


def name_thread(name: str) -> None:
    """Name the calling OS thread ``name`` (cut to 15 bytes); nothing where /proc has no
    thread names to write (not Linux)."""
    path = f"/proc/self/task/{threading.get_native_id()}/comm"
    try:
        with open(path, "wb") as fh:
            fh.write(name.encode()[:COMM_LENGTH])
    except OSError:
        pass


class _Open(threading.local):
    """The stages open on this thread, innermost last: [started, CPU of inner stages]."""

    def __init__(self) -> None:
        self.frames: list[list[float]] = []


_open = _Open()


class Stage:
    """``with STAGE:`` charges the block's CPU time, less its inner stages', to ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._counter = metrics.CPU_SECONDS.labels(name)

    def __enter__(self) -> None:
        _open.frames.append([time.thread_time(), 0.0])

    def __exit__(self, *exc_info: object) -> None:
        frames = _open.frames
        started, inner = frames.pop()
        spent = time.thread_time() - started
        self._counter.inc(max(spent - inner, 0.0))
        if frames:
            frames[-1][1] += spent


PARSE = Stage("parse")  # a meeting request's calendar read (both sides)
DECIDE = Stage("decide")  # its processing: lock, series catch-up, conflict check, rows
REPLY_BUILD = Stage("reply_build")  # its replies composed (core.reply, core.outgoing)
COMMIT = Stage("commit")  # the committer's batch: everything not in the stages above
