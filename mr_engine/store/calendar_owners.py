"""Whose calendar a URL names: a mailbox's row as published free/busy needs it, per request.

Free/busy is fetched by every organizer's client, and by some every few minutes, so its
lookup is one Core statement on two unique indexes (address, user name), built once,
rather than the ORM load of a whole ``Mailbox`` through a ``Directory``. Calendars are
kept in the store's own tables whatever the ``user_plugin``: a calendar's owner is always
a ``mailboxes`` row. The row carries ``calendar_version``, which tells a cache of the
calendar whether it still holds.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import Engine, bindparam, or_, select
from sqlalchemy.orm import Session

from mr_engine.core.addresses import strip_detail
from mr_engine.store.models import Mailbox
from mr_engine.store.prepared import Prepared


@dataclass(frozen=True)
class CalendarOwner:
    id: int
    name: str
    email: str
    fullname: str
    resource_type: str  # "none" for a user
    capacity: int  # the resource_capacity setting
    version: int  # calendar_version


_OWNER = select(Mailbox.id, Mailbox.name, Mailbox.email, Mailbox.fullname,
                Mailbox.resource_type, Mailbox.resource_capacity, Mailbox.calendar_version
                ).where(or_(Mailbox.email_lower == bindparam("exact"),
                            Mailbox.email_lower == bindparam("plain"),
                            Mailbox.name == bindparam("name")))
# The session path's run of it: on PostgreSQL a prepared statement on libpq's pipeline, its
# BEGIN sent with it (``store.pg_wire``): a third of a free/busy request's CPU went to
# running it through SQLAlchemy and a psycopg cursor.
_OWNER_READ = Prepared(_OWNER)


def calendar_owner(session: Session, name: str) -> CalendarOwner | None:
    """The mailbox whose address or user name is ``name``: the address exactly, else
    without its ``+detail`` (as delivery resolves it), else the user name; None if none."""
    exact, plain, name = _keys(name)
    rows = _OWNER_READ.rows(session.connection(), {"exact": exact, "plain": plain, "name": name})
    return _best([CalendarOwner(*row) for row in rows], exact, plain)


def _keys(name: str) -> tuple[str, str, str]:
    """What ``name`` is looked up by: the address, the address without detail, the name."""
    exact = name.strip().lower()
    return exact, strip_detail(exact) if "@" in exact else exact, name


def _best(owners: list[CalendarOwner], exact: str, plain: str) -> CalendarOwner | None:
    return min(owners, default=None,
               key=lambda o: (o.email.lower() != exact, o.email.lower() != plain))


class QuickReadUnavailable(Exception):
    """The quick read cannot answer now (not SQLite, or the file is busy): use a session."""


class QuickOwners:
    """The owner lookup on SQLite without a session, a transaction or a thread.

    One indexed SELECT on a local WAL file takes tens of microseconds, less than handing
    the work to a thread and opening an ORM session (BEGIN, ROLLBACK) takes; the free/busy
    front end, asked for the same calendars all day, runs it on its event loop. WAL readers
    do not wait for the writer, and the connection's busy timeout is short: if the file is
    busy anyway, ``QuickReadUnavailable`` sends the caller to the ordinary session path.
    """

    BUSY_TIMEOUT_MS = 50

    def __init__(self, engine: Engine) -> None:
        self.url = engine.url
        self._path = engine.url.database
        compiled = _OWNER.compile(dialect=engine.dialect)
        self._sql = str(compiled)
        self._order = compiled.positiontup or []  # SQLite's "?" parameters, in order
        self._local = threading.local()

    def owner(self, name: str) -> CalendarOwner | None:
        try:
            rows = self._connection().execute(self._sql, self._params(name)).fetchall()
        except sqlite3.Error as exc:
            raise QuickReadUnavailable(str(exc)) from None
        return _best([CalendarOwner(*row) for row in rows], *_keys(name)[:2])

    def _params(self, name: str) -> list[str]:
        values = dict(zip(("exact", "plain", "name"), _keys(name)))
        return [values[key] for key in self._order]

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{quote(self._path)}?mode=ro", uri=True,
                                   isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={self.BUSY_TIMEOUT_MS}")
            self._local.conn = conn
        return conn


def quick_owners(engine: Engine) -> QuickOwners | None:
    """A ``QuickOwners`` for a SQLite file store; None for other stores."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    return QuickOwners(engine)
