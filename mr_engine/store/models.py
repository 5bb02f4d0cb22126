"""The store's tables as SQLAlchemy 2.0 typed mappings.

Directory (mailboxes, groups and their nesting, send-as, resource delegates), stores with
folders and messages, resource bookings with their materialized occurrences, the outbound
queue and out-of-office state. The schema itself is created by the alembic migrations in
``mr_engine/migrations``; these classes must match them (a test compares the two).
"""

from __future__ import annotations

import datetime as dt
import operator
from typing import Any, Optional

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

from mr_engine.core.resource_settings import (COLUMNS, SETTINGS, ResourceSettings, Setting,
                                              settings_from, settings_of)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (SQLite has no zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Optional[dt.datetime], dialect) -> Optional[dt.datetime]:
        return None if value is None else _naive_utc(value)

    def process_result_value(self, value: Optional[dt.datetime], dialect) -> Optional[dt.datetime]:
        # combine, not replace(tzinfo=...): a fifth of the CPU, for two dozen values a request.
        return None if value is None else dt.datetime.combine(value.date(), value.time(), _UTC)

    # On SQLite each conversion is done in one function instead of the decorator's step
    # followed by the DATETIME type's: a meeting request binds a dozen datetimes (booking,
    # occurrences, reply), and the two steps were nearly a tenth of the committer's CPU.
    def bind_processor(self, dialect):  # type: ignore[no-untyped-def]
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: Optional[dt.datetime]) -> Optional[str]:
            # SQLAlchemy's SQLite storage format, "%04d-%02d-%02d %02d:%02d:%02d.%06d",
            # which isoformat writes alike for a naive datetime.
            return None if value is None else _naive_utc(value).isoformat(" ", "microseconds")
        return process

    def result_processor(self, dialect, coltype):  # type: ignore[no-untyped-def]
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse = self.impl_instance.dialect_impl(dialect).result_processor(dialect, coltype)
        if parse is None:
            return super().result_processor(dialect, coltype)

        def process(value: Optional[str]) -> Optional[dt.datetime]:
            if value is None:
                return None
            # The DATETIME type's parse is fromisoformat: this reads UTC at a fifth of the CPU.
            # Anything else (an offset of its own, a bare date) is read as that parse reads it.
            try:
                read = dt.datetime.fromisoformat(value + "+00:00")
            except ValueError:
                read = None
            return read if read is not None and read.tzinfo is not None \
                else parse(value).replace(tzinfo=_UTC)
        return process


_UTC = dt.timezone.utc


def _naive_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    utc = value.astimezone(_UTC)
    return dt.datetime.combine(utc.date(), utc.time())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


_SQL_TYPES: dict[type, type[TypeEngine[Any]]] = {bool: Boolean, int: Integer}


def _column(declared: Setting) -> Any:
    """The column of a resource setting: not null, its declared default for new rows."""
    if declared.value_type is str:
        sql_type: TypeEngine[Any] = String(declared.length) if declared.length else Text()
    else:
        sql_type = _SQL_TYPES[declared.value_type]()
    return mapped_column(declared.column, sql_type, nullable=False, default=declared.default)


# A mixin with one column per resource setting, built from their declarations
# (``core.resource_settings``): a new setting needs no edit here, only its migration.
ResourceColumns = type("ResourceColumns", (), {s.column: _column(s) for s in SETTINGS})
_SETTING_VALUES = operator.itemgetter(*COLUMNS)  # of an instance's dict (Mailbox.resource_settings)


class Mailbox(ResourceColumns, Base):  # type: ignore[misc, valid-type]
    """A user or a resource (room, equipment): something mail is delivered to."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str] = mapped_column(String(320))
    # Lower-cased copy: unique and indexed, so lookups are case-insensitive on every backend.
    email_lower: Mapped[str] = mapped_column(String(320), unique=True)
    fullname: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    admin_level: Mapped[int] = mapped_column(Integer, default=0)
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    timezone: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    # Kopano's features (imap, pop3, ...), as a comma list (kopano-cli --add-feature).
    features: Mapped[str] = mapped_column(Text, default="")
    # ... and those explicitly taken from the user (kopano-cli --remove-feature), which win
    # over the server's ``disabled_features`` setting as ``features`` does (Kopano table 8.1).
    disabled_features: Mapped[str] = mapped_column(Text, default="")
    # The resource settings (resource_type, mr_accept, ...) are ResourceColumns'.
    # Longest occurrence ever booked here, in seconds. Bounds the conflict query's index range
    # scan from below (start >= req_start - longest), so it reads only nearby occurrences.
    longest_occurrence: Mapped[int] = mapped_column(Integer, default=0)
    # Raised by every change of the resource's occurrences: what a free/busy cache checks.
    calendar_version: Mapped[int] = mapped_column(Integer, default=0)
    # The secret of the calendar feed and page (kopano-cli --calendar-token); None: public.
    calendar_token: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    quota_warning: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    quota_soft: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    quota_hard: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The directory entry this mailbox mirrors (its unique attribute; binary ones as hex);
    # None for the db plugin's own users. Renames and new addresses keep the link.
    external_id: Mapped[Optional[str]] = mapped_column(String(255), unique=True, nullable=True)
    # Left out of the listings (Kopano's kopanoHidden, an address book flag); gets mail.
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)

    store: Mapped[Optional["Store"]] = relationship(back_populates="mailbox", uselist=False)

    @property
    def resource_settings(self) -> ResourceSettings:
        """The resource settings, typed, as the booking rules get them."""
        # Read from the instance's dict, where the ORM keeps the loaded (or since set)
        # values, not through two dozen instrumented attributes: a meeting request asks
        # four times, and the attribute reads were most of it. A value not loaded (the
        # entity expired) is read through its attribute, which loads it.
        try:
            return settings_from(_SETTING_VALUES(self.__dict__))
        except KeyError:
            return settings_of(self)


class SendAs(Base):
    """``delegate`` may send as ``mailbox`` (kopano-cli --add-sendas DELEGATE --user MAILBOX)."""

    __tablename__ = "sendas"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"),
                                            primary_key=True)
    delegate_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"),
                                             primary_key=True)

    @property
    def key(self) -> tuple[int, int]:
        return (self.mailbox_id, self.delegate_id)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[Optional[str]] = mapped_column(String(320), nullable=True)
    email_lower: Mapped[Optional[str]] = mapped_column(String(320), unique=True, nullable=True)
    # A pool (resource collection): a meeting request to its address books one free member.
    mr_pool: Mapped[bool] = mapped_column(Boolean, default=False)
    # The directory entry this group mirrors, as Mailbox.external_id.
    external_id: Mapped[Optional[str]] = mapped_column(String(255), unique=True, nullable=True)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"),
                                          primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"),
                                            primary_key=True)

    @property
    def key(self) -> tuple[int, int]:
        return (self.group_id, self.mailbox_id)


class GroupNesting(Base):
    """Group ``member_id`` is a member of group ``group_id``: its members are that group's
    too (``kopano-cli --group OUTER --add-user INNER``). Cycles may exist; readers stop at
    groups already seen."""

    __tablename__ = "group_groups"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"),
                                          primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"),
                                           primary_key=True)

    @property
    def key(self) -> tuple[int, int]:
        return (self.group_id, self.member_id)


class ResourceDelegate(Base):
    """``delegate`` approves requests for ``resource`` (``kopano-cli --mr-add-delegate``).

    Rows, not a comma list of names: a renamed user stays a delegate, a deleted one goes
    (cascade), and the approvals find the delegates' addresses with one join."""

    __tablename__ = "resource_delegates"

    resource_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"),
                                             primary_key=True)
    delegate_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"),
                                             primary_key=True)

    @property
    def key(self) -> tuple[int, int]:
        return (self.resource_id, self.delegate_id)


class Store(Base):
    """A message store: one per mailbox, or the single public store; orphaned when unhooked."""

    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(32), unique=True)
    mailbox_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="SET NULL"), nullable=True, unique=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    # Name of the user that owned it last, so an orphan can be recognised.
    owner_name: Mapped[str] = mapped_column(String(255), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deleted_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)

    mailbox: Mapped[Optional[Mailbox]] = relationship(back_populates="store")


class Folder(Base):
    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("store_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))


class Message(Base):
    """One delivered copy: the bytes as stored (trace headers + the received message)."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_folder", "folder_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    message_id: Mapped[Optional[str]] = mapped_column(String(998), nullable=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_header: Mapped[str] = mapped_column(Text, default="")
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    size: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Booking(Base):
    """A meeting booked into a resource's calendar, keyed by its iCalendar UID."""

    __tablename__ = "bookings"
    __table_args__ = (UniqueConstraint("resource_id", "uid"),
                      Index("ix_bookings_resource_horizon", "resource_id", "horizon"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(512))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    dtstamp: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)
    organizer: Mapped[str] = mapped_column(String(320), default="")
    organizer_name: Mapped[str] = mapped_column(String(255), default="")  # its CN
    attendee_count: Mapped[int] = mapped_column(Integer, default=0)  # ATTENDEE entries
    summary: Mapped[str] = mapped_column(Text, default="")
    # A VCALENDAR with the meeting as booked: its VTIMEZONEs, the master and the overrides
    # (later instance updates and cancellations merged in), so the series can be expanded
    # again when its horizon moves on (``booked_calendar``, ``horizon``).
    calendar: Mapped[str] = mapped_column(Text, default="")
    # Occurrences are materialized up to here (UTC); None when every occurrence is (a single
    # meeting, or a series that has ended). Kept ahead of now + the booking window.
    horizon: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="booked")
    # The pool the request was sent to, when a member took it (RFC 5546 §3.2.2.3 delegation).
    pool_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("groups.id", ondelete="SET NULL"), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Occurrence(Base):
    """One materialized instance of a booking, in UTC, indexed for range queries."""

    __tablename__ = "occurrences"
    __table_args__ = (Index("ix_occurrences_resource_start", "resource_id", "start"),
                      Index("ix_occurrences_booking", "booking_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    # Denormalized so the conflict query needs no join.
    resource_id: Mapped[int] = mapped_column(Integer)
    # Original start of the instance (RECURRENCE-ID, in UTC); null for a non-recurring meeting.
    recurrence_id: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)
    start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text, default="")
    transparent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="booked")


class DeliveredMessageId(Base):
    """A Message-ID filed in a store, claimed once (``messages.is_duplicate``).

    The primary key makes duplicate suppression exact under concurrency: a second delivery
    of the same message waits for the first one's row and then sees it.
    """

    __tablename__ = "delivered_ids"
    __table_args__ = (Index("ix_delivered_ids_delivered_at", "delivered_at"),)

    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"),
                                          primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    delivered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OutboundMessage(Base):
    """A message waiting for, or done with, the relay to the smarthost."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Envelope sender; "" is the null sender <> (auto-replies, RFC 3834).
    sender: Mapped[str] = mapped_column(String(320), default="")
    recipients: Mapped[str] = mapped_column(Text)  # comma-separated envelope recipients
    subject: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)


class OutOfOffice(Base):
    __tablename__ = "oof_settings"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"),
                                            primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    start: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)
    until: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)


class OutOfOfficeLog(Base):
    """When a sender last got an auto-reply from a mailbox (RFC 3834 §2: once per interval)."""

    __tablename__ = "oof_log"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"),
                                            primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    last_sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Approval(Base):
    """A request held for a delegate's approval (``services.approvals``), and its fate.

    The row outlives its decision, so that a token used again is told apart from a forged
    one; ``booking_id`` is cleared when a decline or a cancel deletes the booking."""

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_status_expires", "status", "expires_at"),
                      Index("ix_approvals_booking", "booking_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    booking_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("bookings.id", ondelete="SET NULL"), nullable=True)
    uid: Mapped[str] = mapped_column(String(512))
    summary: Mapped[str] = mapped_column(Text, default="")
    organizer: Mapped[str] = mapped_column(String(320), default="")
    # The first occurrence held: what a delegate is asked about, what the list shows.
    start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    nonce: Mapped[str] = mapped_column(String(32))  # in the token's HMAC: ids may recur
    request_message_id: Mapped[Optional[str]] = mapped_column(String(998), nullable=True)
    # pending | accepted | declined | expired | replaced | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(320), default="")
    comment: Mapped[str] = mapped_column(Text, default="")

    resource: Mapped[Mailbox] = relationship()
    booking: Mapped[Optional[Booking]] = relationship()


class Secret(Base):
    """A key the engine keeps in its store (the approval tokens' HMAC key)."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
