"""Messages in stores: filing a delivered copy, duplicate and quota checks, and reading back.

Subjects and senders are decoded once at filing time for listings (``message_row`` takes
them decoded by ``headers.header_text``, once a message for all its recipients);
the stored bytes are never touched, so a broken header costs a readable listing, never the
message.

The group committer files many messages in one transaction; ``Filings`` gathers their rows
and the growth of each store, and writes them in a few statements (one multi-row INSERT, one
size update per store) instead of two statements a message.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

# The generic ARRAY, which PostgreSQL's dialect takes as its own: importing that dialect
# would cost every SQLite worker about 2 MB.
from sqlalchemy import (ARRAY, BigInteger, Connection, Integer, Table, bindparam, delete, func,
                        insert, select, update)
from sqlalchemy.orm import Session

from mr_engine.store.claims import claim, claim_many_later
from mr_engine.config import Settings
from mr_engine.store.directories import NotFound
from mr_engine.store.mailbox_rows import MailboxRow
from mr_engine.store.models import DeliveredMessageId, Folder, Mailbox, Message, Store
from mr_engine.store.prepared import PerCount, Prepared, row_params, values_rows

_DELIVERED: Table = DeliveredMessageId.__table__  # type: ignore[assignment]


_MESSAGES: Table = Message.__table__  # type: ignore[assignment]
_ROW = ("store_id", "folder_id", "message_id", "subject", "from_header", "envelope_from",
        "size", "received_at", "content")  # what ``message_row`` gives
# These run for every batch (``store.prepared``: SQLAlchemy's own execution costs more than
# SQLite's). Many rows in one multi-row INSERT ... RETURNING. RETURNING gives its rows in no
# promised order, but one statement takes its ids in VALUES order (SQLite: ascending rowids;
# PostgreSQL: the sequence's nextval, row by row), so the sorted ids are that order.
_INSERT_MANY = PerCount(lambda count: insert(Message).values(values_rows(_MESSAGES, _ROW, count))
                        .returning(Message.id))
# An atomic increment: concurrent deliveries into one store must not lose a size update.
_GROW = Prepared(update(Store).where(Store.id == bindparam("store")).values(
    size=Store.size + bindparam("grow")), ["size"])
# Many stores at once on PostgreSQL, where each statement costs the server its own work:
# UPDATE ... FROM unnest(store ids, growths). SQLite runs _GROW for each row in one
# executemany, inside the library.
_GROWN = func.unnest(bindparam("stores", type_=ARRAY(Integer)),
                     bindparam("grows", type_=ARRAY(BigInteger))
                     ).table_valued("store", "grow").render_derived(name="grown")
_GROW_ALL = Prepared(update(Store).where(Store.id == _GROWN.c.store).values(
    size=Store.size + _GROWN.c.grow), ["size"])


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


def claim_message_ids_later(conn: Connection, keys: list[tuple[int, str]], now: dt.datetime,
                            window: int) -> Callable[[], set[tuple[int, str]]]:
    """``is_duplicate``'s claim for many (store id, Message-ID) keys, in one statement and in
    the order given, sent now (``claims.claim_many_later``); the function returned gives the
    keys won (the others are duplicates)."""
    rows = [{"store_id": store_id, "message_id": message_id, "delivered_at": now}
            for store_id, message_id in dict.fromkeys(keys)]
    since = now - dt.timedelta(seconds=window)
    return claim_many_later(conn, _DELIVERED, rows, "delivered_at", since)


def forget_message_ids(conn: Connection, before: dt.datetime) -> int:
    """Drop the claims older than *before* (out of every dedupe window); returns how many."""
    stmt = delete(DeliveredMessageId).where(DeliveredMessageId.delivered_at < before)
    return conn.execute(stmt).rowcount or 0


@dataclass(frozen=True)
class Quota:
    warning: int
    soft: int
    hard: int


def quota_of(mailbox: Mailbox | MailboxRow, settings: Settings) -> Quota:
    """The mailbox's own quota levels, each falling back to the configured default."""
    def pick(own: int | None, default: int) -> int:
        return default if own is None else own
    return Quota(pick(mailbox.quota_warning, settings.quota_warning),
                 pick(mailbox.quota_soft, settings.quota_soft),
                 pick(mailbox.quota_hard, settings.quota_hard))


@dataclass
class Filings:
    """Messages filed in one transaction and not yet written, and the bytes each store grew.

    ``write_messages`` inserts the rows (each one's id goes to its ``on_id``); ``write_sizes``
    grows each store once. Until then ``grown`` tells the quota check what is pending.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    on_id: list[Callable[[int], None]] = field(default_factory=list)
    growth: dict[int, int] = field(default_factory=dict)  # bytes by store id

    def add(self, row: dict[str, Any], on_id: Callable[[int], None]) -> None:
        """A message row (``message_row``), to be inserted by ``write_messages``."""
        self.rows.append(row)
        self.on_id.append(on_id)
        self.growth[row["store_id"]] = self.growth.get(row["store_id"], 0) + row["size"]

    def grown(self, store_id: int) -> int:
        return self.growth.get(store_id, 0)

    def mark(self) -> tuple[int, dict[int, int]]:
        """What is pending now, to ``undo`` back to (a savepoint rolled back)."""
        return len(self.rows), dict(self.growth)

    def undo(self, mark: tuple[int, dict[int, int]]) -> None:
        del self.rows[mark[0]:], self.on_id[mark[0]:]
        self.growth = dict(mark[1])

    def write_messages(self, conn: Connection) -> None:
        self.send_messages(conn)()

    def send_messages(self, conn: Connection) -> Callable[[], None]:
        """The rows inserted; each one's id goes to its ``on_id`` when the function returned
        is called (in a ``prepared.pipelined`` block: after it, which brings the ids)."""
        sent = [(len(part), statement.rows_later(conn, row_params(part, _ROW)))
                for statement, part in _INSERT_MANY.chunks(self.rows)]
        on_ids, self.rows, self.on_id = iter(self.on_id), [], []

        def give_ids() -> None:
            for _, read in sent:
                for msg_id in sorted(msg_id for msg_id, in read()):
                    next(on_ids)(msg_id)
        return give_ids

    def write_sizes(self, conn: Connection) -> None:
        """Each store grown once, in one statement."""
        grown = sorted((sid, n) for sid, n in self.growth.items() if n)
        self.growth = {}
        if not grown:
            return
        if conn.dialect.name == "postgresql":
            _GROW_ALL.run(conn, {"stores": [sid for sid, _ in grown],
                                 "grows": [n for _, n in grown]})
        else:
            _GROW.run_many(conn, [{"store": sid, "grow": n} for sid, n in grown])


def message_row(store_id: int, folder_id: int, content: bytes, subject: str, from_: str,
                message_id: str | None, envelope_from: str, now: dt.datetime) -> dict[str, Any]:
    """The row of one filed message (``subject`` and ``from_`` decoded, ``header_text``)."""
    return {"store_id": store_id, "folder_id": folder_id, "message_id": message_id,
            "subject": subject, "from_header": from_,
            # RFC 5321 §4.5.3.1.3 caps a path at 256 octets; aiosmtpd lets longer ones through.
            "envelope_from": envelope_from[:320],
            "size": len(content), "received_at": now, "content": content}


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
