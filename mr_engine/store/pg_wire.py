"""PostgreSQL: ``store.prepared``'s statements sent on libpq's pipeline directly (``psycopg.pq``).

Through a psycopg cursor a small statement cost about 135 µs of CPU here, and 185 in
psycopg's pipeline mode (its execution generators, its prepared-statement bookkeeping, a
cursor and its result set-up); libpq and psycopg's C adapters do the same work in 40 to 45
(a block of three SELECTs: 337-375 µs through psycopg's pipeline, 120-137 here). A meeting
request's batch runs some twenty, most of them inside the resource's row lock. So the
statements of ``store.prepared`` go to the connection's ``PGconn`` themselves:

- each is a prepared statement of the session, prepared with its first run; its text is
  numbered (``$1``) and every parameter carries SQLAlchemy's cast, so the server knows its
  type. Parameters go as text, made by psycopg's own dumpers, and rows are made by psycopg's
  own loaders, as a psycopg cursor sends and reads them;
- they go in libpq's pipeline mode: a ``prepared.pipelined`` block's statements leave
  together and their results come back with one Sync (one round trip), as through psycopg's
  pipeline; a statement run alone is a block of one;
- a transaction's first statement follows the BEGIN psycopg would have sent: psycopg reads
  the transaction's state from libpq, so it sends no second one, and it finds nothing to do
  at a commit after a COMMIT sent here (``prepared.commit_later``);
- psycopg knows nothing of this pipeline, so before anything of its own runs on the
  connection (SQLAlchemy's statements, commits and rollbacks: ``prepared.send_waiting_first``)
  what is queued is synced and the pipeline left (``Wire.sync``).

Waiting for the server releases the GIL (``poll``), as psycopg's waits do, and so does
sending (``pg_send``, unlike psycopg's sends): the event loop runs meanwhile. Errors are
psycopg's (``psycopg.errors``), so that SQLAlchemy and the callers tell them apart as before.
"""

from __future__ import annotations

import re
import select
import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence

import psycopg
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

from mr_engine.store import pg_send

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
# psycopg's dumpers type an int by its size (int2, int4, int8): declared as int8 (which every
# one of them fits, and which SQLAlchemy's casts narrow), a statement is prepared once
# whatever the sizes of its values, not again as ids grow.
_INTEGERS, _INT8 = frozenset((21, 23, 20)), 20
MOST_PREPARED = 500  # a connection's prepared statements (a few dozen in use)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """A pyformat statement (``%(name)s``, as SQLAlchemy renders for psycopg) as the server
    takes it (``$1``), and the parameter names in ``$`` order."""
    names: dict[str, int] = {}

    def number(found: re.Match[str]) -> str:
        if found.group(1) is None:
            return "%"
        return f"${names.setdefault(found.group(1), len(names) + 1)}"
    text = _PLACEHOLDER.sub(number, sql)
    if "%(" in text:
        raise ValueError(f"a parameter name the wire does not read: {sql[:200]}")
    return text.encode(), tuple(names)


@dataclass(eq=False)
class Result:
    """What one statement sent on the wire gave: ``rows`` (read once the wire has synced,
    syncing it if need be), or the error it failed with."""

    wire: "Wire"
    loader: Transformer | None  # None: a command whose rows nobody reads
    done: bool = False
    _rows: list[tuple[Any, ...]] = field(default_factory=list)
    rowcount: int = -1
    error: Exception | None = None

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows, handed over once: the result keeps no copy (a relay claim's rows hold
        the contents of up to 200 messages)."""
        if not self.done:
            self.wire.sync()
        if self.error is not None:
            raise self.error
        rows, self._rows = self._rows, []
        return rows

    def _take(self, res: pq.abc.PGresult, encoding: str) -> None:
        self.done = True
        loader, self.loader = self.loader, None  # libpq's result is freed with it
        if res.status not in _OK:
            self.error = errors.error_from_result(res, encoding=encoding)
            return
        self.rowcount = res.command_tuples if res.command_tuples is not None else -1
        if loader is not None and res.status == pq.ExecStatus.TUPLES_OK:
            loader.set_pgresult(res)
            self._rows = loader.load_rows(0, res.ntuples, tuple)


class Wire:
    """One psycopg connection's pipeline, driven here. Statements are queued (``send``,
    ``command``) and their results read at ``sync``; used by one thread at a time, as the
    connection is."""

    _of: "weakref.WeakKeyDictionary[psycopg.Connection[Any], Wire]" = weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, driver: psycopg.Connection[Any]) -> "Wire":
        found = cls._of.get(driver)
        if found is None:
            found = cls._of[driver] = cls(driver)
        return found

    def __init__(self, driver: psycopg.Connection[Any]) -> None:
        # Weakly: the wire is kept for the connection's life (``of``), not the other way round.
        self._driver = weakref.ref(driver)
        self.pg = driver.pgconn
        # (statement text, parameter types) -> its name, prepared (or its Parse sent)
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self._made = 0  # names given: none is given twice on the session
        self.queued: list[tuple[Result, bytes | None]] = []  # with the name it prepares
        self.depth = 0  # open ``block``s: the sync waits for the outermost one's end

    def send(self, sql: bytes, params: Sequence[Any], rows: bool = True) -> Result:
        """The statement (numbered text) run with ``params`` after those queued before."""
        loader = Transformer(self.driver())
        values = loader.dump_sequence(params, [PyFormat.TEXT] * len(params))
        self._open()
        # Prepared once for each set of parameter types, as psycopg keys its own: a type
        # the dumpers give (a boolean in a SELECT list has no cast) is the server's to know.
        types = tuple(_INT8 if oid in _INTEGERS else oid for oid in loader.types)
        key = (sql, types)
        name, prepares = self.names.get(key), None
        if name is None:
            self._bound()
            self._made += 1
            name = prepares = b"mr_%d" % self._made
            self.pg.send_prepare(name, sql, types)
            self.names[key] = name
            self.queued.append((Result(self, None), prepares))
        self.pg.send_query_prepared(name, values, loader.formats)
        result = Result(self, loader if rows else None)
        self.queued.append((result, None))
        return result

    def _bound(self) -> None:
        """At most ``MOST_PREPARED`` statements on the session: past that all are dropped
        (in the pipeline's order, so before the Parse that follows) and prepared again as
        they come; a long-lived connection's set does not grow without end."""
        if len(self.names) >= MOST_PREPARED:
            self.command(b"DEALLOCATE ALL")
            self.names.clear()

    def command(self, sql: bytes) -> Result:
        """A statement without parameters (COMMIT) after those queued before."""
        self._open()
        self.pg.send_query_params(sql, None)
        result = Result(self, None)
        self.queued.append((result, None))
        return result

    def enter(self) -> None:
        self.depth += 1

    def leave(self, quiet: bool = False) -> None:
        """The end of a ``prepared.pipelined`` block: the outermost syncs. ``quiet``: the
        block ended in an error of its own, which is the one to raise, not the sync's."""
        self.depth -= 1
        if self.depth == 0:
            try:
                self.sync()
            except psycopg.Error:
                if not quiet:
                    raise

    def sync(self) -> None:
        """Send what is queued with a Sync, read every result and leave pipeline mode; the
        first statement's error that failed is raised (those after it did not run)."""
        if not self.queued:
            return
        queued, self.queued = self.queued, []
        try:
            pg_send.pipeline_sync(self.pg)
            self._flush()
            self._read(queued)
        except BaseException:
            self._forget(queued)
            raise
        finally:
            self._leave_pipeline()
        first = next((r.error for r, _ in queued if r.error is not None), None)
        if first is not None:
            raise first

    def driver(self) -> psycopg.Connection[Any]:
        driver = self._driver()
        if driver is None:
            raise psycopg.OperationalError("the connection is gone")
        return driver

    def _open(self) -> None:
        if self.pg.pipeline_status == pq.PipelineStatus.OFF:
            self.pg.enter_pipeline_mode()
        if not self.queued and self.pg.transaction_status == pq.TransactionStatus.IDLE \
                and not self.driver().autocommit:
            self.pg.send_query_params(_begin(self.driver()), None)
            self.queued.append((Result(self, None), None))

    def _flush(self) -> None:
        # libpq: while the output is not all sent, wait to write, and read what comes
        # meanwhile (the server may be waiting for us to read before it reads on).
        while pg_send.flush(self.pg):
            if self._wait(select.POLLIN | select.POLLOUT) & select.POLLIN:
                self.pg.consume_input()

    def _read(self, queued: list[tuple[Result, bytes | None]]) -> None:
        encoding = self.driver().info.encoding
        pending = iter(queued)
        while True:
            res = self._next()
            if res.status == pq.ExecStatus.PIPELINE_SYNC:
                return
            result, prepares = next(pending)
            result._take(res, encoding)
            if prepares is not None and result.error is not None:
                self._unprepared(prepares)
            self._next_end()

    def _next(self) -> pq.abc.PGresult:
        res = self._got()
        if res is None:
            raise psycopg.OperationalError("the server's results ended early")
        return res

    def _next_end(self) -> None:
        # Each statement's results end with a NULL from PQgetResult.
        if self._got() is not None:
            raise psycopg.OperationalError("a statement gave more than one result")

    def _got(self) -> pq.abc.PGresult | None:
        """PQgetResult once it would not block (waiting for the server without the GIL)."""
        while self.pg.is_busy():
            self._wait(select.POLLIN)
            self.pg.consume_input()
        return self.pg.get_result()

    def _wait(self, events: int) -> int:
        poller = select.poll()
        poller.register(self.pg.socket, events)
        ready = poller.poll()
        return ready[0][1] if ready else 0

    def _forget(self, queued: list[tuple[Result, bytes | None]]) -> None:
        """A sync that failed (the connection broke): what it prepared is not known to be
        there, and no result will come."""
        for result, prepares in queued:
            if prepares is not None:
                self._unprepared(prepares)
            if not result.done:
                result.done, result.error = True, psycopg.OperationalError("not run")

    def _unprepared(self, name: bytes) -> None:
        """A Parse that failed or was not run: the next use prepares it again."""
        self.names = {k: v for k, v in self.names.items() if v != name}

    def _leave_pipeline(self) -> None:
        if self.pg.pipeline_status != pq.PipelineStatus.OFF and self.pg.status == pq.ConnStatus.OK:
            try:
                self.pg.exit_pipeline_mode()
            except psycopg.Error:
                pass  # results still unread: the connection is broken, and dropped


def _begin(driver: psycopg.Connection[Any]) -> bytes:
    """The BEGIN psycopg sends for the connection's settings."""
    parts = [b"BEGIN"]
    if driver.isolation_level is not None:
        parts.append(b"ISOLATION LEVEL " + driver.isolation_level.name.replace("_", " ").encode())
    if driver.read_only is not None:
        parts.append(b"READ ONLY" if driver.read_only else b"READ WRITE")
    if driver.deferrable is not None:
        parts.append(b"DEFERRABLE" if driver.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)
