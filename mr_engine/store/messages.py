"""Messages in stores: filing a delivered copy, duplicate and quota checks, and reading back.

Subjects and senders are decoded once at filing time for listings (``headers.header_text``);
the stored bytes are never touched, so a broken header costs a readable listing, never the
message.
"""

from __future__ import annotations

import datetime as dt
import email.message
from dataclasses import dataclass

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from mr_engine.store.claims import claim
from mr_engine.config import Settings
from mr_engine.store.directories import NotFound
from mr_engine.core.headers import header_text
from mr_engine.store.models import DeliveredMessageId, Folder, Mailbox, Message, Store

_DELIVERED: Table = DeliveredMessageId.__table__  # type: ignore[assignment]


# Built once: these run for every delivery, and building a statement costs more than
# running it (profiled under the benchmark's load).
_INSERT = insert(Message)
# An atomic increment: concurrent deliveries into one store must not lose a size update.
_GROW = update(Store).where(Store.id == bindparam("store")).values(
    size=Store.size + bindparam("grow"))


def is_duplicate(conn: Connection, store_id: int, message_id: str | None,
                 now: dt.datetime, window: int) -> bool:
    """Whether this Message-ID was already filed in this store within ``window`` seconds;
    if not, it is claimed for this delivery (rolled back with it if it fails).

    Exact under concurrency (``claims``): a second delivery of the message waits for the
    first one's transaction, and is a duplicate once that has committed.
    """
    if not message_id or window <= 0:
        return False
    values = {"store_id": store_id, "message_id": message_id, "delivered_at": now}
    since = now - dt.timedelta(seconds=window)
    return not claim(conn, _DELIVERED, values, "delivered_at", since)


def forget_message_ids(conn: Connection, before: dt.datetime) -> int:
    """Drop the claims older than *before* (out of every dedupe window); returns how many."""
    stmt = delete(DeliveredMessageId).where(DeliveredMessageId.delivered_at < before)
    return conn.execute(stmt).rowcount or 0


@dataclass(frozen=True)
class Quota:
    warning: int
    soft: int
    hard: int


def quota_of(mailbox: Mailbox, settings: Settings) -> Quota:
    """The mailbox's own quota levels, each falling back to the configured default."""
    def pick(own: int | None, default: int) -> int:
        return default if own is None else own
    return Quota(pick(mailbox.quota_warning, settings.quota_warning),
                 pick(mailbox.quota_soft, settings.quota_soft),
                 pick(mailbox.quota_hard, settings.quota_hard))


def file_message(conn: Connection, store_id: int, folder_id: int, content: bytes,
                 message: email.message.Message, message_id: str | None,
                 envelope_from: str, now: dt.datetime) -> int:
    """Add one message to a folder of a store and grow the store's size; returns its id."""
    result = conn.execute(_INSERT, {
        "store_id": store_id, "folder_id": folder_id,
        "message_id": message_id, "subject": header_text(message.get("Subject")),
        "from_header": header_text(message.get("From")),
        # RFC 5321 §4.5.3.1.3 caps a path at 256 octets; aiosmtpd lets longer ones through.
        "envelope_from": envelope_from[:320],
        "size": len(content), "received_at": now, "content": content})
    conn.execute(_GROW, {"store": store_id, "grow": len(content)})
    return result.inserted_primary_key[0]


@dataclass(frozen=True)
class MessageInfo:
    id: int
    folder: str
    message_id: str | None
    subject: str
    from_: str
    size: int
    received_at: dt.datetime


def list_messages(session: Session, store: Store, folder: str | None = None) -> list[MessageInfo]:
    stmt = (select(Message.id, Folder.name, Message.message_id, Message.subject,
                   Message.from_header, Message.size, Message.received_at)
            .join(Folder, Folder.id == Message.folder_id)
            .where(Message.store_id == store.id).order_by(Message.id))
    if folder is not None:
        stmt = stmt.where(func.lower(Folder.name) == folder.lower())
    return [MessageInfo(*row) for row in session.execute(stmt)]


def get_content(session: Session, store: Store, message_id: int) -> bytes:
    content = session.scalar(select(Message.content).where(
        Message.store_id == store.id, Message.id == message_id))
    if content is None:
        raise NotFound(f"message {message_id} does not exist in this mailbox")
    return content
