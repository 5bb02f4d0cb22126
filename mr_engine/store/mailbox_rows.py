"""The few columns of a mailbox that every delivery reads, for a batch in one statement.

The group committer used to load each batch's mailboxes as ORM entities: with some forty
columns and the ORM's own execution, that was a fifth of the commit side's CPU for a plain
delivery, which reads only the name, the addresses and the quota. A ``MailboxRow`` is those
columns, read by a ``store.prepared`` statement; a step that needs the entity (a meeting
request, a first store, an out-of-office reply) gets it from the batch (``Batch.mailbox``).
Every directory plugin mirrors its entries into the ``mailboxes`` table, so the rows are the
store's whichever plugin resolved the address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from sqlalchemy import Connection, select

from mr_engine.store.models import Mailbox
from mr_engine.store.prepared import PerCount, in_ids


@dataclass(frozen=True)
class MailboxRow:
    id: int
    name: str
    email: str
    resource_type: str  # "none" for a user
    mr_accept: bool
    mr_process: bool
    quota_warning: int | None
    quota_soft: int | None
    quota_hard: int | None

    @property
    def may_book(self) -> bool:
        """A resource, or a mailbox that processes meeting requests: its deliveries are
        likely to need the entity (the meeting and pool steps)."""
        return self.resource_type != "none" or self.mr_accept or self.mr_process

    @classmethod
    def of(cls, mailbox: Mailbox) -> "MailboxRow":
        return cls(*(getattr(mailbox, name) for name in _COLUMNS))


_COLUMNS = tuple(MailboxRow.__dataclass_fields__)
_ROWS = PerCount(lambda count: select(*(getattr(Mailbox, name) for name in _COLUMNS))
                 .where(in_ids(Mailbox.id, count)))


def mailbox_rows(conn: Connection, ids: Sequence[int]) -> dict[int, MailboxRow]:
    """The rows of the mailboxes with these ids that exist, by id."""
    return mailbox_rows_later(conn, ids)()


def mailbox_rows_later(conn: Connection,
                       ids: Sequence[int]) -> Callable[[], dict[int, MailboxRow]]:
    """``mailbox_rows``, read when the function returned is called (in a
    ``prepared.pipelined`` block: sent with the block's other statements)."""
    read = _ROWS.rows_by_ids_later(conn, sorted(set(ids)))
    return lambda: {row[0]: MailboxRow(*row) for row in read()}
