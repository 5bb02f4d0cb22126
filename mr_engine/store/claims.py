"""Claims made in one statement: insert a key, or take over one that is older than an interval.

``INSERT ... ON CONFLICT (key) DO UPDATE SET stamp = now WHERE stamp <= only_before
RETURNING key``: both SQLite and PostgreSQL speak it. A row is returned only when the claim
is won. Two transactions racing for one key on PostgreSQL cannot both win: the second waits
on the first one's uncommitted key, then sees its stamp (or, if the first rolled back, inserts
after all). SQLite serializes writers anyway. Used for duplicate suppression (one copy of a
Message-ID per store) and for the out-of-office interval (one reply per sender).

``claim_many_later`` makes many claims in one such statement (a multi-row VALUES list, run
as a ``store.prepared`` statement: it runs for every batch of deliveries); the rows go in
the caller's order, so that every process takes the row locks in one order.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
from typing import Any, Callable

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.sql.dml import Insert

from mr_engine.store.prepared import PerCount, row_params, values_rows

__all__ = ["claim", "claim_many_later"]


@functools.cache
def _statement(table: Table, stamp: str, dialect: str) -> Insert:
    # Built once per table and dialect: these run for every delivery (statement
    # construction costs more than running it).
    return _on_conflict(_insert(dialect)(table), table, stamp)


def _insert(dialect: str) -> Callable[[Table], Insert]:
    # Only the dialect in use is imported: the other would cost each worker about 2 MB.
    module = "postgresql" if dialect == "postgresql" else "sqlite"
    return importlib.import_module(f"sqlalchemy.dialects.{module}").insert


def _on_conflict(stmt: Insert, table: Table, stamp: str) -> Insert:
    key = list(table.primary_key.columns)
    column = table.c[stamp]
    # only_before is bound with the column's type, so it is compared as the rows are stored.
    return stmt.on_conflict_do_update(
        index_elements=key, set_={stamp: stmt.excluded[stamp]},
        where=column <= bindparam("only_before", type_=column.type)).returning(*key)


@functools.cache
def _many(table: Table, stamp: str, dialect: str, columns: tuple[str, ...]) -> PerCount:
    return PerCount(lambda count: _on_conflict(
        _insert(dialect)(table).values(values_rows(table, columns, count)), table, stamp))


def claim(conn: Connection, table: Table, values: dict[str, Any], stamp: str,
          only_before: dt.datetime) -> bool:
    """Insert *values*, or set the row's *stamp* if it is at or before *only_before*;
    True if the caller won the claim."""
    stmt = _statement(table, stamp, conn.dialect.name)
    return conn.execute(stmt, {**values, "only_before": only_before}).first() is not None


def claim_many_later(conn: Connection, table: Table, rows: list[dict[str, Any]], stamp: str,
                     only_before: dt.datetime) -> Callable[[], set[tuple[Any, ...]]]:
    """``claim`` for each row (no two with one key), in one statement sent now; the
    function returned gives the keys won (in a ``prepared.pipelined`` block, read with the
    block's other statements). Call it once."""
    if not rows:
        return set
    columns = tuple(rows[0])
    reads = [statement.rows_later(conn, {**row_params(part, columns), "only_before": only_before})
             for statement, part in _many(table, stamp, conn.dialect.name, columns).chunks(rows)]
    return lambda: {key for read in reads for key in read()}
