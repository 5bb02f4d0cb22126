"""What the engine stored, read back for assertions: a user's messages, the outbound queue,
and a resource's calendar as ``mr-engine agenda`` prints it."""

from __future__ import annotations

import json

from sqlalchemy import select

from mr_engine.store.db import Database
from mr_engine.store.directory import get_user
from mr_engine.store.messages import list_messages
from mr_engine.store.models import Base, OutboundMessage
from mr_engine.store.stores import store_of

from . import commands
from .paths import BIN


def messages_of(db: Database, name: str, folder: str | None = None):
    """The user's messages (in ``folder``, or all); none while the user has no store yet."""
    with db.read() as session:
        store = store_of(session, get_user(session, name))
        return [] if store is None else list_messages(session, store, folder)


def outbox_rows(db: Database) -> list[OutboundMessage]:
    """Every row of the outbound queue, oldest first."""
    with db.read() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def agenda(db_url: str, user: str, start="2020-01-01T00:00:00Z", end="2030-01-01T00:00:00Z"):
    """The user's calendar entries between ``start`` and ``end``, from the CLI's JSON."""
    out = commands.run([str(BIN / "mr-engine"), "agenda", user, "--start", start,
                        "--end", end, "--json"],
                       env={"MR_ENGINE_DATABASE_URL": db_url}, capture_output=True, text=True,
                       check=True).stdout
    return json.loads(out)


def every_row(db: Database) -> dict[str, list[tuple]]:
    """Every row of every table, by table: to show that a command changed nothing."""
    with db.read() as session:
        return {table.name: sorted(map(tuple, session.execute(select(table))), key=repr)
                for table in Base.metadata.sorted_tables}
