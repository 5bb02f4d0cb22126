"""Statements that select rows by a short list of ids, built once per list length.

An ``IN`` list given as one "expanding" parameter is rendered into the SQL anew at every
execution (SQLAlchemy's compiled cache cannot hold the final string), which costs about as
much CPU as running the query on SQLite. The group committer runs three such lookups for
every batch, with a handful of ids: a statement with that many plain parameters is cached
like any other. Longer lists (rare: tools, not deliveries) keep the expanding form, so that
neither the cache nor the database's parameter limit grows with them.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Generic, TypeVar

from sqlalchemy import ColumnElement, bindparam

S = TypeVar("S")

CACHED_LENGTHS = 32  # longer lists use the expanding parameter


class ByIds(Generic[S]):
    """``make(column IN (...))`` for a list of ids: the statement and its parameters."""

    def __init__(self, column: ColumnElement[Any], make: Callable[[ColumnElement[bool]], S]) -> None:
        self._column = column
        self._make = make
        self._expanding = make(column.in_(bindparam("ids", expanding=True)))
        self._built: dict[int, S] = {}

    def __call__(self, ids: Collection[int]) -> tuple[S, dict[str, Any]]:
        ordered = sorted(ids)
        if len(ordered) > CACHED_LENGTHS:
            return self._expanding, {"ids": ordered}
        return self._statement(len(ordered)), {f"id{i}": v for i, v in enumerate(ordered)}

    def _statement(self, count: int) -> S:
        statement = self._built.get(count)
        if statement is None:  # a race between threads builds it twice, harmlessly
            clause = self._column.in_([bindparam(f"id{i}") for i in range(count)])
            statement = self._built[count] = self._make(clause)
        return statement
