"""What every HTTP handler gets: the store, the settings, the clock, and a way to read.

The store is synchronous (SQLAlchemy sessions); ``read`` runs a function of a read session
and the request's ``Directory`` in the default thread pool, so a slow query holds one thread
and never the event loop that LMTP sessions share. The one exception is ``quick``: on a
SQLite store, free/busy's owner lookup (``calendar_owners.QuickOwners``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.store.calendar_owners import QuickOwners, quick_owners
from mr_engine.store.db import Database
from mr_engine.store.directories import Directory, open_directory

T = TypeVar("T")


class WorkerParts(Protocol):
    """The parts of a worker the HTTP front end uses (``delivery.server.Server`` has them)."""

    settings: Settings
    db: Database
    clock: Callable[[], dt.datetime]


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    db: Database
    clock: Callable[[], dt.datetime]
    quick: QuickOwners | None = field(default=None, compare=False)

    @classmethod
    def of(cls, parts: WorkerParts) -> "WebContext":
        return cls(parts.settings, parts.db, parts.clock, quick_owners(parts.db.engine))

    def now(self) -> dt.datetime:
        return self.clock()

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        """``work(session, directory, *args)`` in a read transaction, off the event loop."""
        call = functools.partial(self._read, work, *args)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _read(self, work: Callable[..., T], *args: Any) -> T:
        with self.db.read() as session:
            return work(session, self.directory(session), *args)

    async def write(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a write transaction, off the event loop (the approval page's
        buttons: the one page that changes the store)."""
        return await asyncio.get_running_loop().run_in_executor(None, self._write, work)

    def _write(self, work: Callable[[Session], T]) -> T:
        with self.db.write() as session:
            return work(session)

    def directory(self, session: Session) -> Directory:
        return open_directory(self.settings, session)


CONTEXT = web.AppKey("context", WebContext)


def context_of(request: web.Request) -> WebContext:
    return request.app[CONTEXT]
