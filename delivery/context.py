"""The values that flow through the delivery pipeline.

``Envelope`` is one received message (shared by all its recipients, parsed once);
``Delivery`` is one recipient's delivery of it: the pipeline's steps read it and fill it in,
inside that recipient's transaction.
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.parser
import email.policy
import itertools
import logging
import re
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Callable

from icalendar import Calendar
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from mr_engine.services.booking import BookingResult
from mr_engine.config import Settings
from mr_engine.metrics import Count
from mr_engine.core.headers import first_address, header_text
from mr_engine.core.itip import Invitation, InvitationError, invitation_in, read_calendar
from mr_engine.store import directory, messages
from mr_engine.store.mailbox_rows import MailboxRow
from mr_engine.store.models import Mailbox
from mr_engine.store.oof_state import OofState, get_oof_many_later
from mr_engine.store.stores import StoreIndex

if TYPE_CHECKING:
    from .mail_store import MailStore

log = logging.getLogger(__name__)


MAX_MESSAGE_ID = 998  # RFC 5322 §2.1.1 line limit; longer ones are not deduplicated
# Parts that hold parts (multipart/*, message/*) a message may have and still be looked
# into. email's parser recurses once per level, so a deep enough nesting exhausts Python's
# recursion, and the frames it unwinds then can fail again in finalizers; counting these
# headers before parsing bounds the nesting (Postfix bounds it at 100, mime_nesting_limit)
# without a parse, and leaves room for a MIME digest of a couple of hundred messages.
MAX_CONTAINER_PARTS = 250
_CONTAINER = re.compile(rb"^content-type:\s*(?:multipart|message)/", re.IGNORECASE | re.MULTILINE)


def parse_message(content: bytes) -> email.message.Message:
    """The message parsed once for all recipients; a pathological MIME structure (nesting
    deep enough to exhaust recursion) falls back to its headers alone: it is still stored
    as received, just not looked into. So does one with more than MAX_CONTAINER_PARTS
    parts that hold parts, before it is parsed."""
    if _containers(content) > MAX_CONTAINER_PARTS:
        return _headers_only(content, f"more than {MAX_CONTAINER_PARTS} multipart or message parts")
    try:
        return email.message_from_bytes(content, policy=email.policy.compat32)
    except (RecursionError, MemoryError, ValueError) as exc:
        return _headers_only(content, type(exc).__name__)


def _containers(content: bytes) -> int:
    """Content-Type headers of container parts, counted up to one past the limit."""
    return sum(1 for _ in itertools.islice(_CONTAINER.finditer(content), MAX_CONTAINER_PARTS + 1))


def _headers_only(content: bytes, reason: str) -> email.message.Message:
    log.warning("message structure not parsed (%s); using its headers only", reason)
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(content)


def message_id_of(message: email.message.Message) -> str | None:
    """The Message-ID to deduplicate by, or None when there is no usable one."""
    message_id = (message.get("Message-ID") or "").strip() or None
    if message_id is not None and len(message_id) > MAX_MESSAGE_ID:
        return None
    return message_id


@dataclass(frozen=True)
class Envelope:
    sender: str  # envelope sender (MAIL FROM); "" for the null sender <>
    content: bytes  # the bytes as received after DATA
    message: email.message.Message  # parsed once, headers and body (policy compat32)
    message_id: str | None  # Message-ID header, stripped, or None
    peer: str = ""  # client address, for the Received header
    helo: str = ""  # LHLO name
    client: str = ""  # client address and port (or unix:socket), for the log line
    received: float = 0.0  # time.monotonic() at the end of DATA: the log line's delay

    # Read once a message, not once a resource recipient (see ``invitation``). A plain
    # dict, not functools.cached_property: on Python 3.11 that holds one lock for every
    # instance, and a large calendar parsed in a thread would stall the event loop.
    _read: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def calendar(self) -> Calendar | InvitationError | None:
        """The iMIP calendar, parsed (``itip.read_calendar``)."""
        if "calendar" not in self._read:
            self._read["calendar"] = read_calendar(self.message)
        return self._read["calendar"]

    @property
    def listing(self) -> tuple[str, str]:
        """Subject and From decoded for message listings, once for all recipients (by the
        LMTP handler, before the hand-off: see ``invitation``)."""
        if "listing" not in self._read:
            self._read["listing"] = (header_text(self.message.get("Subject")),
                                     header_text(self.message.get("From")))
        return self._read["listing"]

    @property
    def authors(self) -> tuple[str, str]:
        """The first From and Sender addresses (``headers.first_address``), once for all
        recipients (by the LMTP handler, before the hand-off: see ``invitation``)."""
        if "authors" not in self._read:
            self._read["authors"] = (first_address(self.message, "From"),
                                     first_address(self.message, "Sender"))
        return self._read["authors"]

    def invitation(self, zone: tzinfo) -> Invitation | InvitationError | None:
        """The calendar read for a resource in ``zone`` (``itip.invitation_in``), once a zone.

        The LMTP handler reads it for the default zone before handing the message to the
        committer, so that parsing is done by the protocol side, not inside the write
        transaction that the workers take turns on.
        """
        key = f"invitation {zone}"
        if key not in self._read:
            self._read[key] = invitation_in(self.calendar, zone)
        return self._read[key]


@dataclass(frozen=True)
class Outcome:
    """A recipient's final LMTP answer, e.g. ``Outcome(250, "2.0.0", "Ok: delivered")``."""

    code: int
    status: str
    text: str

    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"


@dataclass
class Batch:
    """What the group committer reads once for all deliveries of one transaction, and the
    writes it makes once for all of them."""

    conn: Connection  # the transaction's connection, for Core statements
    stores: StoreIndex
    oof: dict[int, OofState]  # by mailbox id; a mailbox missing here has none set
    filings: messages.Filings = field(default_factory=messages.Filings)
    # The (store id, Message-ID) claims made for the whole batch at once
    # (``claim_all_later``): whether the next delivery of that key is the first copy. A key
    # missing here (a store created in this batch, or no claims made at once) is claimed by
    # its delivery.
    claims: dict[tuple[int, str], bool] = field(default_factory=dict)
    # The group committer writes the filings itself (``write``), once for the batch; left
    # False, each filing is written at once.
    defer: bool = False
    # The group committer's first run of a batch: a step that fails need not undo its own
    # writes in a savepoint, since the committer rolls the run back and runs the batch again
    # with a savepoint per delivery (``careful``), where the step's own savepoint applies.
    rerun_on_failure: bool = False
    _pool_addresses: frozenset[str] | None = field(default=None, init=False, repr=False)
    # The mailboxes as ORM entities, loaded by the steps that need one (``mailbox``); held
    # here because the session's identity map holds clean entities only weakly.
    entities: dict[int, Mailbox] = field(default_factory=dict)

    def mailbox(self, session: Session, mailbox_id: int) -> Mailbox:
        """The mailbox's entity, loaded once for the batch (its row was read already)."""
        found = self.entities.get(mailbox_id)
        if found is None:
            found = session.get(Mailbox, mailbox_id)
            if found is None:
                raise LookupError(f"mailbox {mailbox_id} is gone")
            self.entities[mailbox_id] = found
        return found

    def pool_addresses(self, session: Session) -> frozenset[str]:
        """Every pool's address, read once for the batch (``directory.pool_addresses``)."""
        if self._pool_addresses is None:
            self._pool_addresses = directory.pool_addresses(session)
        return self._pool_addresses

    @classmethod
    def load(cls, session: Session, mailbox_ids: list[int]) -> "Batch":
        return cls.later(session, mailbox_ids)()

    @classmethod
    def later(cls, session: Session, mailbox_ids: list[int],
              pools: bool = False) -> Callable[[], "Batch"]:
        """``load``, its reads sent now and read when the function returned is called (in
        a ``prepared.pipelined`` block: sent with the block's other statements); with
        ``pools`` (a delivery of the batch carries a calendar), the pools' addresses too."""
        stores = StoreIndex.later(session, mailbox_ids)
        oof = get_oof_many_later(session, mailbox_ids)
        addresses = directory.pool_addresses_later(session) if pools else None

        def loaded() -> Batch:
            batch = cls(session.connection(), stores(), oof())
            if addresses is not None:
                batch._pool_addresses = addresses()
            return batch
        return loaded

    def file(self, row: dict[str, Any], on_id: Callable[[int], None]) -> None:
        """A message filed (``messages.message_row``); its id goes to ``on_id``."""
        self.filings.add(row, on_id)
        if not self.defer:
            self.write()

    def write(self) -> None:
        self.send()()

    def send(self) -> Callable[[], None]:
        """``write``, whose filings learn their ids when the function returned is called
        (in a ``prepared.pipelined`` block: after it)."""
        self.filings.write_sizes(self.conn)
        return self.filings.send_messages(self.conn)

    def claim_all_later(self, keys: list[tuple[int, str]], now: dt.datetime,
                        window: int) -> Callable[[], None]:
        """Claim these Message-IDs in one statement (for a batch without savepoints: a
        refused delivery rolls them all back), sent now; the claims are known once the
        function returned is called (in a ``prepared.pipelined`` block: after it). ``keys``
        in the order the deliveries run."""
        if window <= 0 or not keys:
            return lambda: None
        read = messages.claim_message_ids_later(self.conn, keys, now, window)

        def claimed() -> None:
            won = read()
            self.claims = {key: key in won for key in keys}
        return claimed

    def is_duplicate(self, store_id: int, message_id: str | None, now: dt.datetime,
                     window: int) -> bool:
        """``messages.is_duplicate``, from the batch's claims when ``claim_all_later`` made
        one."""
        first = self.claims.get((store_id, message_id or ""))
        if first is None:
            return messages.is_duplicate(self.conn, store_id, message_id, now, window)
        self.claims[(store_id, message_id or "")] = False  # a second copy in the batch is one
        return not first


@dataclass
class Delivery:
    """One recipient's delivery: what the pipeline knows and decides about it."""

    session: Session
    settings: Settings
    now: dt.datetime
    envelope: Envelope
    recipient: str  # the address as given at RCPT TO
    row: MailboxRow  # what every delivery reads of the mailbox (``mailbox``: the entity)
    batch: Batch  # what the committer read for all deliveries of the transaction
    store_id: int | None = None
    folder: str = "Inbox"
    # The bytes to store: trace headers followed by the message exactly as received.
    content: bytes = b""
    # Set by the meeting-request step: such messages get no out-of-office reply.
    meeting_request: bool = False
    meeting: BookingResult | None = None  # what processing the request did (kopano-mr-accept)
    # Outbound messages queued in this transaction; the relay is woken after commit.
    queued: int = 0
    notes: list[str] = field(default_factory=list)  # what steps did, for the log line
    counts: list[Count] = field(default_factory=list)  # metrics, recorded once committed
    # Where the message is filed (``mail_store``); the committer passes its own.
    mail: MailStore = field(default_factory=lambda: _db_store())

    @property
    def mailbox(self) -> Mailbox:
        """The mailbox as an ORM entity, for the steps that pass it on or change it."""
        return self.batch.mailbox(self.session, self.row.id)


def _db_store() -> MailStore:
    # Imported here: the mail stores' modules read this one's values.
    from .store_db import DbStore
    return DbStore()
