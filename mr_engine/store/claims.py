"""Claims made in one statement: insert a key, or take over one that is older than an interval.

``INSERT ... ON CONFLICT (key) DO UPDATE SET stamp = now WHERE stamp <= only_before
RETURNING key``: both SQLite and PostgreSQL speak it. A row is returned only when the claim
is won. Two transactions racing for one key on PostgreSQL cannot both win: the second waits
on the first one's uncommitted key, then sees its stamp (or, if the first rolled back, inserts
after all). SQLite serializes writers anyway. Used for duplicate suppression (one copy of a
Message-ID per store) and for the out-of-office interval (one reply per sender).

``claim_many`` makes many claims in one such statement (``insertmanyvalues`` renders one
multi-row INSERT); the rows go in the caller's order, so that every process takes the row
locks in one order.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

__all__ = ["claim", "claim_many"]


@functools.cache
def _statement(table: Table, stamp: str, dialect: str) -> Insert:
    # Built once per table and dialect: these run for every delivery (statement
    # construction costs more than running it).
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    key = list(table.primary_key.columns)
    column = table.c[stamp]
    # only_before is bound with the column's type, so it is compared as the rows are stored.
    return stmt.on_conflict_do_update(
        index_elements=key, set_={stamp: stmt.excluded[stamp]},
        where=column <= bindparam("only_before", type_=column.type)).returning(*key)


def claim(conn: Connection, table: Table, values: dict[str, Any], stamp: str,
          only_before: dt.datetime) -> bool:
    """Insert *values*, or set the row's *stamp* if it is at or before *only_before*;
    True if the caller won the claim."""
    stmt = _statement(table, stamp, conn.dialect.name)
    return conn.execute(stmt, {**values, "only_before": only_before}).first() is not None


def claim_many(conn: Connection, table: Table, rows: list[dict[str, Any]], stamp: str,
               only_before: dt.datetime) -> set[tuple[Any, ...]]:
    """``claim`` for each row (no two with one key), in one statement; the keys won."""
    if not rows:
        return set()
    stmt = _statement(table, stamp, conn.dialect.name)
    params = [{**row, "only_before": only_before} for row in rows]
    return {tuple(won) for won in conn.execute(stmt, params)}
