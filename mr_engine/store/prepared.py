"""The few statements every delivery or meeting request runs, on the DBAPI cursor itself.

SQLAlchemy spends 30 to 150 µs of Python on each execution of even a cached Core
statement (execution context, parameter and result set-up), while SQLite runs the small
statements of a delivery in 3 to 10 µs: that overhead was most of a booking's CPU. A
``Prepared`` statement is compiled by SQLAlchemy once per dialect, then run on the
transaction's DBAPI connection with the column types' own bind and result processors
(``TypeEngine.dialect_impl``), so values are written and read exactly as SQLAlchemy
writes and reads them, in the same transaction. Everything else stays with SQLAlchemy.

Only plain bound parameters: an "expanding" IN list would need rendering at every run.
``PerCount`` holds one statement per count instead, for IN lists and multi-row VALUES.
Statements run this way bypass SQLAlchemy's execution events (``before_cursor_execute``).
On SQLite they run on the DBAPI cursor; on PostgreSQL past psycopg's cursor too, on
libpq's pipeline (``store.pg_wire``: a third of the CPU a statement).
"""

from __future__ import annotations

import functools
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, Select, Table, bindparam, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import Executable

if TYPE_CHECKING:  # imported where used: a SQLite worker does without psycopg
    from mr_engine.store import pg_wire

Processor = Callable[[Any], Any]
T = TypeVar("T")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # every bound parameter, in the SQL's order when positional
    positional: bool
    binds: tuple[tuple[str, Processor], ...]  # the parameters whose type converts them
    defaults: Mapping[str, Any]  # values bound in the statement itself (literals)
    results: tuple[Processor | None, ...] | None  # per column; None: nothing converts
    # PostgreSQL: the text as ``pg_wire`` sends it ($1...), and the names in that order
    wire: tuple[bytes, tuple[str, ...]] | None = None

    def parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = self._converted(given)
        return tuple(values[name] for name in self.names) if self.positional else values

    def wire_parameters(self, given: Mapping[str, Any]) -> tuple[Any, ...]:
        assert self.wire is not None
        values = self._converted(given)
        return tuple(values[name] for name in self.wire[1])

    def _converted(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **given} if self.defaults else dict(given)
        for name, process in self.binds:
            values[name] = process(values[name])
        return values

    def row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if self.results is None:
            return tuple(row)
        return tuple(v if p is None or v is None else p(v) for p, v in zip(self.results, row))


class Prepared:
    """A Core statement run on the DBAPI cursor, compiled once per dialect.

    ``column_keys``: for an INSERT or UPDATE, the columns its parameters give (SQLAlchemy
    compiles those only).
    """

    def __init__(self, statement: Executable, column_keys: Iterable[str] | None = None) -> None:
        self.statement = statement
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._by_dialect: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The result rows, their values converted as SQLAlchemy would."""
        return self.rows_later(conn, params)()

    def rows_later(self, conn: Connection,
                   params: Mapping[str, Any]) -> Callable[[], list[tuple[Any, ...]]]:
        """``rows``, run now and read when the function returned is called: in a
        ``pipelined`` block, after the block (whose round trip brings them). Call it once.
        Outside a block, and where there is no pipeline (SQLite), it runs and is read at
        once, so that an error of the statement comes where it is run on either database."""
        if _pipelines(conn):
            compiled, result = self._sent(conn, params)
            if not _wire(conn).depth:
                rows = _wire_rows(conn, compiled, result)
                return lambda: rows
            return lambda: _wire_rows(conn, compiled, result)
        with self._cursor(conn) as (compiled, cursor):
            cursor.execute(compiled.sql, compiled.parameters(params))
            rows = [compiled.row(row) for row in cursor.fetchall()]
        return lambda: rows

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run it for its effect; the rows it changed (-1 in a ``pipelined`` block on
        PostgreSQL, where the count comes after the block, as through psycopg's pipeline)."""
        if _pipelines(conn):
            compiled, result = self._sent(conn, params, rows=False)
            if _wire(conn).depth:
                return -1
            _wire_rows(conn, compiled, result)
            return result.rowcount
        with self._cursor(conn) as (compiled, cursor):
            cursor.execute(compiled.sql, compiled.parameters(params))
            return cursor.rowcount

    def run_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run it once for each set of parameters (the DBAPI's executemany)."""
        if _pipelines(conn):
            with pipelined(conn):
                for one in params:
                    self._sent(conn, one, rows=False)
            return
        with self._cursor(conn) as (compiled, cursor):
            cursor.executemany(compiled.sql, [compiled.parameters(p) for p in params])

    def _sent(self, conn: Connection, params: Mapping[str, Any],
              rows: bool = True) -> tuple[_Compiled, pg_wire.Result]:
        """PostgreSQL: the statement queued on the connection's wire (``pg_wire``), after
        what waits for the next statement."""
        _send_waiting(conn)
        compiled = self._compiled(conn.dialect)
        assert compiled.wire is not None
        with _as_sqlalchemys(conn, compiled.sql):
            return compiled, _wire(conn).send(compiled.wire[0], compiled.wire_parameters(params),
                                              rows)

    @contextmanager
    def _cursor(self, conn: Connection) -> Iterator[tuple[_Compiled, Any]]:
        """SQLite: the statement and a cursor of the transaction's own DBAPI connection; a
        DBAPI error is raised as SQLAlchemy raises it (``exc.DBAPIError``: OperationalError,
        IntegrityError...), so that callers tell a store fault from a bug as before."""
        compiled = self._compiled(conn.dialect)
        cursor = conn.connection.driver_connection.cursor()
        with _as_sqlalchemys(conn, compiled.sql, cursor, close=True):
            yield compiled, cursor

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._by_dialect[dialect.name] = _compile(self, dialect)
        return found


def _pipelines(conn: Connection) -> bool:
    """Whether statements on ``conn`` can be sent together (PostgreSQL: ``pg_wire``)."""
    return conn.dialect.name == "postgresql"


def _wire(conn: Connection) -> pg_wire.Wire:
    return _wire_of()(conn.connection.driver_connection)


@functools.cache
def _wire_of() -> Callable[[Any], pg_wire.Wire]:
    # Imported on first use, once: an import statement in _wire would cost every call.
    from mr_engine.store.pg_wire import Wire
    return Wire.of


def _wire_rows(conn: Connection, compiled: _Compiled,
               result: pg_wire.Result) -> list[tuple[Any, ...]]:
    with _as_sqlalchemys(conn, compiled.sql):
        return [compiled.row(row) for row in result.rows()]


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """The ``Prepared`` statements run in this block are sent together, their results read
    at its end or when one is read: on PostgreSQL (libpq's pipeline, ``pg_wire``) one round
    trip for writes that wait for nothing, instead of one each; elsewhere each runs as it
    comes. A statement of SQLAlchemy's in the block ends the round trip before it. An error
    is raised as SQLAlchemy raises it, as ``Prepared`` does (a failed statement aborts the
    transaction, and the statements after it do not run)."""
    if not _pipelines(conn):
        yield
        return
    wire = _wire(conn)
    wire.enter()
    try:
        yield
    except BaseException:
        wire.leave(quiet=True)  # the block's own error is raised, not what the sync says
        raise
    with _as_sqlalchemys(conn, "(pipelined statements)"):
        wire.leave()


def commit_later(conn: Connection) -> None:
    """The transaction's COMMIT sent now: in a ``pipelined`` block on PostgreSQL, with the
    block's statements, in the round trip that ends the block (a commit through psycopg
    would sync the pipeline, and its end sync again: one round trip more). The Session's
    commit after the block then finds the server's transaction over (psycopg commits nothing
    on an idle connection) and only runs its hooks; an error of the block's statements or of
    the COMMIT is raised at the block's end, and the transaction is rolled back as before.
    Anything the ORM still has to flush must be flushed before. Elsewhere nothing: the
    Session's commit commits."""
    if not _pipelines(conn):
        return
    _send_waiting(conn)
    with _as_sqlalchemys(conn, "COMMIT"):
        _wire(conn).command(b"COMMIT")


# --- statements sent with the next one ---------------------------------------------------------
#
# Inside a resource's row lock on PostgreSQL every round trip is one the other workers wait
# for. A write whose result nobody reads (a new booking's row) need not have one of its own:
# it is sent before the next statement on the connection, whichever runs it (a ``Prepared``,
# SQLAlchemy, the COMMIT), so the server runs it in the order it was asked for, and in a
# ``pipelined`` block in that block's round trip.

_WAITING = "mr_engine statements sent with the next"  # Connection.info: (transaction, [...])


def send_with_next(conn: Connection, statement: Prepared, params: Mapping[str, Any]) -> None:
    """Run ``statement`` for its effect before the next statement on ``conn`` (at once where
    nothing pipelines: SQLite). Its error is raised where that one runs, and fails the
    transaction; so only for writes in a transaction that a failure rolls back whole.
    ``send_waiting_first`` must be set up on the engine."""
    if not _pipelines(conn):
        statement.run(conn, params)
        return
    transaction = conn.get_transaction()
    held = conn.info.get(_WAITING)
    if held is None or held[0]() is not transaction:
        held = conn.info[_WAITING] = (weakref.ref(transaction), [])
    held[1].append((statement, params))


def send_waiting_first(engine: Engine) -> None:
    """The engine's connections (PostgreSQL) send what ``send_with_next`` holds before any
    statement of SQLAlchemy's and before a commit, and what ``pg_wire`` has queued is synced
    before psycopg runs anything of its own; a rollback drops what is held."""
    event.listen(engine, "before_cursor_execute", lambda conn, *statement: _psycopgs_turn(conn))
    event.listen(engine, "commit", _psycopgs_turn)
    event.listen(engine, "rollback", _drop_waiting)


def _psycopgs_turn(conn: Connection) -> None:
    _send_waiting(conn)
    with _as_sqlalchemys(conn, "(pipelined statements)"):
        _wire(conn).sync()


def _drop_waiting(conn: Connection) -> None:
    # A connection that died has no info to read (SQLAlchemy refuses it until the rollback
    # is over); what it held is for a transaction that ended, which _send_waiting skips.
    if conn.invalidated:
        return
    conn.info.pop(_WAITING, None)
    try:
        _wire(conn).sync()  # what a failed block queued, out of psycopg's way; rolled back
    except conn.dialect.loaded_dbapi.Error:
        pass


def _send_waiting(conn: Connection) -> None:
    """Queue the statements waiting for the next, in their order; none held for another
    transaction than this one (it ended without a rollback event) ever runs."""
    held = conn.info.pop(_WAITING, None)
    if held is None or held[0]() is not conn.get_transaction():
        return
    for statement, params in held[1]:
        compiled = statement._compiled(conn.dialect)
        assert compiled.wire is not None
        with _as_sqlalchemys(conn, compiled.sql):
            _wire(conn).send(compiled.wire[0], compiled.wire_parameters(params), rows=False)


@contextmanager
def _as_sqlalchemys(conn: Connection, sql: str, cursor: Any = None,
                    close: bool = False) -> Iterator[None]:
    """A DBAPI error in the block raised as SQLAlchemy raises it; the cursor (if any) closed
    after it when ``close`` (also after an error: a statement that failed is read no
    further)."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        if cursor is not None:
            cursor.close()
        raise DBAPIError.instance(sql, None, exc, dbapi_error, dialect=conn.dialect) from exc
    finally:
        if close and cursor is not None:
            cursor.close()


class PerCount:
    """A ``Prepared`` statement for each count of ids or rows, from 1 to ``limit``, built on
    first use: an IN list of plain parameters, or a multi-row VALUES list, is another SQL
    text for each count. Longer lists run ``limit`` at a time (``chunks``), so neither the
    cache nor the database's parameter limit grows with them."""

    def __init__(self, make: Callable[[int], Executable], limit: int = 32) -> None:
        self._make = make
        self.limit = limit
        self._built: dict[int, Prepared] = {}

    def chunks(self, items: Sequence[T]) -> Iterator[tuple[Prepared, Sequence[T]]]:
        """Each part of ``items`` with the statement for its count."""
        for start in range(0, len(items), self.limit):
            part = items[start:start + self.limit]
            yield self._statement(len(part)), part

    def rows_by_ids(self, conn: Connection, ids: Sequence[Any],
                    params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """The rows of a statement made with ``in_ids``, for all of ``ids`` (with the
        statement's other ``params``)."""
        return self.rows_by_ids_later(conn, ids, params)()

    def rows_by_ids_later(self, conn: Connection, ids: Sequence[Any],
                          params: Mapping[str, Any] | None = None
                          ) -> Callable[[], list[tuple[Any, ...]]]:
        """``rows_by_ids`` run now, read when the function returned is called (as
        ``Prepared.rows_later``; call it once)."""
        reads = [statement.rows_later(conn, {**id_params(part), **(params or {})})
                 for statement, part in self.chunks(ids)]
        return lambda: [row for read in reads for row in read()]

    def _statement(self, count: int) -> Prepared:
        found = self._built.get(count)
        if found is None:  # a race between threads builds it twice, harmlessly
            found = self._built[count] = Prepared(self._make(count))
        return found


def in_ids(column: ColumnElement[Any], count: int) -> ColumnElement[bool]:
    """``column IN (:id0, ..., :idN)``, for ``PerCount``; bound by ``id_params``."""
    return column.in_([bindparam(f"id{i}", type_=column.type) for i in range(count)])


def id_params(ids: Sequence[Any]) -> dict[str, Any]:
    return {f"id{i}": value for i, value in enumerate(ids)}


def values_rows(table: Table, columns: Sequence[str], count: int) -> list[dict[str, Any]]:
    """The VALUES of a ``count``-row INSERT of ``columns``, for ``PerCount``; bound by
    ``row_params``. Each parameter has its column's type, so its bind processor applies."""
    return [{name: bindparam(f"{name}_{i}", type_=table.c[name].type) for name in columns}
            for i in range(count)]


def row_params(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, Any]:
    return {f"{name}_{i}": row[name] for i, row in enumerate(rows) for name in columns}


def _compile(prepared: Prepared, dialect: Dialect) -> _Compiled:
    compiled = prepared.statement.compile(dialect=dialect, column_keys=prepared.column_keys)
    binds = compiled.binds
    if any(b.expanding for b in binds.values()):
        raise ValueError("a prepared statement takes no expanding parameters")
    # Python-side column defaults are SQLAlchemy's execution context's to fill in.
    defaulted = [c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
    if defaulted:
        raise ValueError(f"give the columns with a default: {', '.join(defaulted)}")
    names = tuple(compiled.positiontup) if compiled.positional else tuple(binds)
    processors = []
    for name in dict.fromkeys(names):
        process = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((name, process))
    defaults = {name: b.value for name, b in binds.items() if not b.required}
    wire = None
    if dialect.name == "postgresql":
        from mr_engine.store.pg_wire import numbered
        wire = numbered(compiled.string)
    return _Compiled(compiled.string, names, compiled.positional, tuple(processors),
                     defaults, _result_processors(prepared.statement, dialect), wire)


def _result_processors(statement: Executable, dialect: Dialect
                       ) -> tuple[Processor | None, ...] | None:
    # A SELECT's columns, or an INSERT's or UPDATE's RETURNING ones (none without).
    columns = statement.selected_columns if isinstance(statement, Select) \
        else statement.exported_columns
    found = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    return found if any(p is not None for p in found) else None
