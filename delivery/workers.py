"""``mr-engine serve`` with worker processes: one complete LMTP server per CPU.

A Python process computes on one core at a time; Dovecot and Postfix run several delivery
processes for the same reason. The supervisor (this module) upgrades the schema, binds the
listeners, then forks ``workers`` processes. Each worker is a whole ``Server`` (sessions,
group committer, relay) accepting on the shared sockets; the kernel hands each new
connection to whichever worker accepts first, which is the least busy one. SQLite writers
take turns through ``db.WriterLock``; on PostgreSQL, row locks serialize as they do between
separate servers. Everything a worker answers 250 for is committed by that worker, so a
worker's death loses nothing: the MTA retries what was not answered.

The supervisor forwards SIGTERM and SIGINT, waits until every worker has answered its
messages in flight, and restarts a worker that dies on its own.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from types import FrameType

from mr_engine.config import Settings
from mr_engine.db import open_database

from . import listeners
from .server import Server

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # seconds before restarting a worker that died right after starting
_PR_SET_PDEATHSIG = 1


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; returns the exit status."""
    if settings.worker_count == 1:
        asyncio.run(Server(settings).serve())
        return 0
    # Once, before any worker: workers then open the store without migrating it.
    open_database(settings.database_url).dispose()
    sockets = listeners.bind(settings.lmtp_listen)
    try:
        return Supervisor(settings, sockets).run()
    finally:
        sockets.close()


class Supervisor:
    def __init__(self, settings: Settings, sockets: listeners.Listeners) -> None:
        self.settings = settings
        self.sockets = sockets
        self.count = settings.worker_count
        self.slots = listeners.SessionSlots(settings.max_sessions, self.count)
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, started)
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for index in range(self.count):
            self._spawn(index)
        log.info("supervisor %d: %d workers on %s", os.getpid(), self.count,
                 ", ".join(self.sockets.addresses()))
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid not in self.children:
                continue
            index, started = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            self.slots.clear(index)
            if self.stopping:
                self.failed |= code != 0
                continue
            log.error("worker %d (pid %d) ended with status %d; restarting it", index, pid,
                      code)
            if time.monotonic() - started < RESTART_DELAY:
                time.sleep(RESTART_DELAY)  # no tight loop if it dies at start every time
            if not self.stopping:
                self._spawn(index)
        log.info("supervisor %d: all workers stopped", os.getpid())
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        sys.stdout.flush()  # else buffered output would be written twice
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(self._work(index, parent))
        self.children[pid] = (index, time.monotonic())
        if self.stopping:  # the signal came between fork and the line above
            os.kill(pid, signal.SIGTERM)

    def _work(self, index: int, parent: int) -> int:
        # The supervisor's handlers must not run here; until the server installs its own,
        # a signal simply ends the worker, which has nothing in flight yet.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _end_with(parent)
        code = 0
        try:
            db = open_database(self.settings.database_url, auto_upgrade=False, pool_size=8)
            server = Server(self.settings, db, given=self.sockets,
                            slots=self.slots.for_worker(index))
            asyncio.run(server.serve())
        except BaseException:
            log.exception("worker %d failed", index)
            code = 1
        finally:
            logging.shutdown()
        return code


def _end_with(parent: int) -> None:
    """Have the kernel send SIGTERM to this worker if the supervisor dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)
