"""What ``mr-engine status`` reports of a store: its schema revision, its mailboxes, its queue.

Read in one read-only transaction; nothing is created or changed, and an unreachable or
missing store is an answer (``StoreProbe.error``), not an exception.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Mapping

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from mr_engine.store.db import MIGRATIONS, current_revision, make_engine, sqlite_file
from mr_engine.store import approvals
from mr_engine.store.models import Mailbox, OutboundMessage
from mr_engine.store.outbox import QUEUED, SENT, count_by_status


@dataclass(frozen=True)
class QueueSummary:
    by_status: Mapping[str, int]
    oldest_queued: dt.datetime | None  # created_at of the oldest message still queued
    last_error: str | None  # of the newest message with one (queued or failed)


@dataclass(frozen=True)
class StoreProbe:
    """The store as found: ``error`` says why it does not answer (then the rest is empty)."""

    error: str | None = None
    revision: str | None = None  # None: a database without the engine's tables
    mailboxes: int | None = None
    resources: int | None = None
    queue: QueueSummary | None = None
    pending_approvals: int | None = None  # requests waiting for a delegate

    @property
    def answers(self) -> bool:
        return self.error is None


def head_revision() -> str | None:
    """The newest revision of the migrations this version ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def probe(url: str, store_group: str = "") -> StoreProbe:
    """Connect to ``url`` and read the store, without creating it."""
    database = sqlite_file(url)
    if url.startswith("sqlite") and (database is None or not os.path.exists(database)):
        return StoreProbe(error=f"no store at {database or url}")
    try:
        engine = make_engine(url, pool_size=1, store_group=store_group)
    except SQLAlchemyError as exc:
        return StoreProbe(error=_one_line(exc))
    try:
        return _read(engine)
    except SQLAlchemyError as exc:
        return StoreProbe(error=_one_line(exc))
    finally:
        engine.dispose()


def _read(engine: Engine) -> StoreProbe:
    revision = current_revision(engine)
    if revision is None:  # an empty database: no tables to count
        return StoreProbe()
    with Session(engine.execution_options(sqlite_begin="DEFERRED")) as session:
        return StoreProbe(revision=revision, mailboxes=_count(session),
                          resources=_count(session, Mailbox.resource_type != "none"),
                          queue=queue_summary(session),
                          pending_approvals=approvals.count_pending(session))


def _count(session: Session, *where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(Mailbox).where(*where)) or 0


def queue_summary(session: Session) -> QueueSummary:
    counts = count_by_status(session)
    oldest = session.scalar(select(func.min(OutboundMessage.created_at))
                            .where(OutboundMessage.status == QUEUED))
    error = session.scalar(select(OutboundMessage.last_error)
                           .where(OutboundMessage.last_error != "",
                                  OutboundMessage.status != SENT)
                           .order_by(OutboundMessage.id.desc()).limit(1))
    return QueueSummary(counts, oldest, error)


def _one_line(exc: SQLAlchemyError) -> str:
    """The driver's message, first line: enough to see why, without SQLAlchemy's footer."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
