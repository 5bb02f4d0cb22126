"""``mr-engine serve`` with worker processes: one complete LMTP server per CPU.

A Python process computes on one core at a time; Dovecot and Postfix run several delivery
processes for the same reason. ``serve`` upgrades the schema and binds the listeners; the
supervisor (this module) then forks ``workers`` processes. Each worker is a whole
``Server`` (sessions, group committer, relay) accepting on the shared sockets, a new
connection going to the worker with the fewest sessions (``acceptor.Acceptor``). SQLite
writers take turns through ``db.WriterLock``; on PostgreSQL, row locks serialize as they
do between separate servers. Everything a worker answers 250 for is committed by that
worker, so a worker's death loses nothing: the MTA retries what was not answered.

The supervisor forwards SIGTERM and SIGINT, waits until every worker has answered its
messages in flight, and restarts a worker that dies on its own.

A stop signal must not find ``serve`` without a handler, at whatever moment it comes: it
would end it by the signal instead of exit 0. So ``serve`` blocks SIGTERM and SIGINT first
thing (``hold_stop_signals``); the blocked mask and a pending signal survive ``exec``; the
supervisor (or the single server) installs its handlers and only then unblocks them, and a
signal that came meanwhile is handled at once: before any worker exists, that is exit 0.

``mr-engine serve`` has imported the whole engine (SQLAlchemy, alembic, icalendar, asyncio, ...)
by the time it has migrated the store and bound the listeners. It then replaces itself
(``exec``, same process id) with ``python -m mr_engine.delivery.workers``, a supervisor that imports
none of that: it stays at a few MB, and holds no database connection or engine state that
every fork would copy. Each worker imports the engine after its fork.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Coroutine, NoReturn

from mr_engine.config import SCHEMA, Settings
from mr_engine.logs import setup_logging

from . import frontends, listeners, server_state
from .metric_files import MetricFiles

if TYPE_CHECKING:
    from mr_engine.store.db import Database

log = logging.getLogger("delivery.workers")  # also when run as __main__

RESTART_DELAY = 1.0  # seconds before restarting a worker that died right after starting
_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def hold_stop_signals() -> None:
    """Keep SIGTERM and SIGINT pending until a handler lets them in (see the module doc)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def _let_stop_signals_in() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def serve(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; returns the exit status. Call ``hold_stop_signals``
    first (before any thread is started, so that none can take a signal either)."""
    from mr_engine.store.db import open_database

    # Once, before any worker: workers then open the store without migrating it.
    db = open_database(settings.database_url, pool_size=8, store_group=settings.store_group)
    try:
        sockets = frontends.bind_all(settings)
    except BaseException:
        db.dispose()
        raise
    server_state.write(settings, {name: bound.addresses() for name, bound in sockets.items()})
    if settings.worker_count == 1:
        return _serve_here(settings, db, sockets)
    db.dispose()
    _become_supervisor(settings, sockets)


def _serve_here(settings: Settings, db: Database, sockets: frontends.Bound) -> int:
    """``workers = 1``: this process is the server."""
    import asyncio  # imported here, as the server's modules are: see the module's doc

    from .server import Server

    try:
        asyncio.run(_handlers_first(Server(settings, db, given=sockets).serve()))
    finally:
        frontends.close_all(sockets)  # given sockets: removing the unix ones is ours
        server_state.remove(settings)
    return 0


async def _handlers_first(serving: Coroutine[Any, Any, None]) -> None:
    import asyncio

    task = asyncio.ensure_future(serving)
    # One turn of the loop runs the task up to its first wait: Server.serve has installed
    # its handlers (that is the first thing it does), so a held signal now reaches them.
    await asyncio.sleep(0)
    _let_stop_signals_in()
    await task


def _become_supervisor(settings: Settings, sockets: frontends.Bound) -> NoReturn:
    """exec ``python -m mr_engine.delivery.workers`` with the sockets and the settings (through a
    pipe, not argv or the environment: they include the smarthost password), and the stop
    signals held: the supervisor lets them in once its handlers are installed."""
    hold_stop_signals()
    values = {s.name: getattr(settings, s.name) for s in SCHEMA}
    read, write = os.pipe()
    with os.fdopen(write, "w") as pipe:  # a few hundred bytes: the pipe buffer holds them
        json.dump(values, pipe)
    fds = [sock.fileno() for bound in sockets.values() for sock in bound.sockets]
    for fd in [read, *fds]:
        os.set_inheritable(fd, True)
    root = str(Path(__file__).resolve().parent.parent)  # where the delivery package is
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    # -P: not the working directory first on sys.path, where any json.py or delivery/
    # would replace ours.
    os.execve(sys.executable, [
        sys.executable, "-P", "-m", "mr_engine.delivery.workers", "--settings-fd", str(read),
        *[arg for name, bound in sockets.items() for arg in ("--listen", _fds_of(name, bound))],
        *[arg for bound in sockets.values() for path in bound.unix_paths
          for arg in ("--unix-path", path)]], env)


def _fds_of(name: str, bound: listeners.Listeners) -> str:
    """``lmtp=3,4``: a front end's name and the descriptors of its sockets."""
    return f"{name}={','.join(str(sock.fileno()) for sock in bound.sockets)}"


def _sockets_from(listen: list[str], unix_paths: list[str]) -> frontends.Bound:
    """What ``_become_supervisor`` passed, as sockets again (the unix paths are removed at
    stop by whichever front end's Listeners holds them: the first)."""
    bound: frontends.Bound = {}
    for item in listen:
        name, _, fds = item.partition("=")
        bound[name] = listeners.Listeners(
            sockets=[socket.socket(fileno=int(fd)) for fd in fds.split(",")])
    if bound and unix_paths:
        next(iter(bound.values())).unix_paths.extend(unix_paths)
    return bound


def main(argv: list[str] | None = None) -> int:
    """The supervisor, as ``serve`` execs it."""
    parser = argparse.ArgumentParser(prog="python -m mr_engine.delivery.workers")
    parser.add_argument("--settings-fd", type=int, required=True)
    parser.add_argument("--listen", action="append", default=[], metavar="NAME=FD,FD")
    parser.add_argument("--unix-path", action="append", default=[])
    args = parser.parse_args(argv)
    with os.fdopen(args.settings_fd) as pipe:
        values = json.load(pipe)
    # JSON has no tuples: list settings (the *_listen addresses) are tuples again.
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    settings = Settings(**values)
    setup_logging(settings.log_level, settings.log_format, settings.log_target)
    sockets = _sockets_from(args.listen, args.unix_path)
    metric_files = MetricFiles()  # before the first fork: see metric_files.py
    try:
        return Supervisor(settings, sockets, metric_files).run()
    finally:
        metric_files.remove()
        frontends.close_all(sockets)
        server_state.remove(settings)


class Supervisor:
    def __init__(self, settings: Settings, sockets: frontends.Bound,
                 metric_files: MetricFiles) -> None:
        self.settings = settings
        self.sockets = sockets
        self.metric_files = metric_files
        self.count = settings.worker_count
        self.slots = listeners.SessionSlots(settings.max_sessions, self.count)
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, started)
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        # Before a signal closes them.
        addresses = ", ".join(a for bound in self.sockets.values() for a in bound.addresses())
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        _let_stop_signals_in()  # one sent since serve started is handled here, at once
        for index in range(self.count):
            if not self.stopping:
                self._spawn(index)
        log.info("supervisor %d: %d workers on %s", os.getpid(), len(self.children),
                 addresses)
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid not in self.children:
                continue
            index, started = self.children.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            self.metric_files.worker_died(pid)
            self.slots.clear(index)
            if self.stopping:
                # A worker stopped by the signal before its server could catch it had not
                # accepted anything yet: that is a clean stop too.
                self.failed |= code not in (0, -signal.SIGTERM, -signal.SIGINT)
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
        # New clients are refused at once rather than left waiting in the backlog until
        # the workers have finished (they close their own copies first thing too).
        frontends.close_all(self.sockets)
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _spawn(self, index: int) -> None:
        parent = os.getpid()
        sys.stdout.flush()  # else buffered output would be written twice
        sys.stderr.flush()
        # Stop signals wait across the fork: the supervisor handles one only once it knows
        # the new pid, and the worker only once the supervisor's handler is gone from it
        # (until its server installs its own, a signal simply ends it: nothing in flight).
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                for signum in _STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                # The mask from before the fork, with the stop signals let in in any case.
                signal.pthread_sigmask(signal.SIG_SETMASK, mask - _STOP_SIGNALS)
                os._exit(self._work(index, parent))
            self.children[pid] = (index, time.monotonic())
            if self.stopping:  # the signal came after run() decided to spawn
                os.kill(pid, signal.SIGTERM)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _work(self, index: int, parent: int) -> int:
        _end_with(parent)
        code = 0
        try:
            import asyncio  # imported here, as the engine is: see the module's doc

            from mr_engine.store.db import open_database

            from .server import Server

            # The connections of one process before, shared out: workers times the pool
            # must stay within PostgreSQL's max_connections (100 by default).
            pool = max(2, 8 // self.count)
            db = open_database(self.settings.database_url, auto_upgrade=False, pool_size=pool,
                               store_group=self.settings.store_group)
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


if __name__ == "__main__":
    sys.exit(main())
