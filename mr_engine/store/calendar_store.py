"""A resource's calendar in the store: bookings and their materialized occurrences.

Occurrences are stored in UTC with an index on (resource_id, start). A conflict check asks
only for occurrences starting in [from - longest, to), where ``longest`` is the longest
occurrence ever booked on the resource, so it reads the neighbourhood of the request and
nothing else, however large the calendar grows.

Every change of a resource's occurrences raises its ``calendar_version`` in the same
transaction, so a reader that cached something made of the calendar (free/busy,
``services.availability``) knows from one small query whether it still holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence

from sqlalchemy import (ColumnElement, Integer, and_, bindparam, or_, delete, func, insert,
                        literal_column, select, union_all, update)
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key
from sqlalchemy.sql.base import Executable

from mr_engine.store.models import Booking, Mailbox, Occurrence
from mr_engine.core.policy import Busy
from mr_engine.core.recurrence import Instance
from mr_engine.store import per_transaction
from mr_engine.store.prepared import PerCount, Prepared, row_params, send_with_next


BOOKED, TENTATIVE = "booked", "tentative"
# The statuses that hold a slot: a tentative booking (pending approval) holds it as firmly
# as a booked one, as Exchange's TentativePendingApproval does.
HOLDING = (BOOKED, TENTATIVE)


def _holding(status: ColumnElement[str]) -> ColumnElement[bool]:
    """``status IN HOLDING`` with plain parameters (a ``Prepared`` statement takes no IN list)."""
    return or_(*(status == value for value in HOLDING))

# Built once: both run for every meeting request (statement construction is costly).
_FIND = select(Booking).where(Booking.resource_id == bindparam("resource"),
                              Booking.uid == bindparam("uid"))
# ``exclude`` is the meeting's own booking (-1 when it has none: ids are positive).
_BUSY_SELECT = select(Occurrence.start, Occurrence.end).where(
    Occurrence.resource_id == bindparam("resource"),
    Occurrence.start >= bindparam("lower"), Occurrence.start < bindparam("end"),
    Occurrence.end > bindparam("start"), _holding(Occurrence.status),
    Occurrence.transparent.is_(False), Occurrence.booking_id != bindparam("exclude"))
_BUSY = Prepared(_BUSY_SELECT)
_INSERT = Prepared(insert(Occurrence), ["booking_id", "resource_id", "recurrence_id", "start",
                                         "end", "summary", "transparent", "status"])
# A SQL increment, not the ORM attribute: concurrent writers and a stale loaded row
# never write back an older version.
_TOUCH = Prepared(update(Mailbox.__table__).where(Mailbox.__table__.c.id == bindparam("resource"))
                  .values(calendar_version=Mailbox.__table__.c.calendar_version + 1))
_RAISED = "calendar_version raised"  # per_transaction: resource ids
# Every opaque occurrence that counts against capacity, with its status.
_OPAQUE = select(Occurrence.start, Occurrence.end, Occurrence.status).where(
    Occurrence.resource_id == bindparam("resource"), Occurrence.transparent.is_(False),
    Occurrence.status.in_(HOLDING))


def find_booking(session: Session, resource_id: int, uid: str) -> Booking | None:
    return session.scalar(_FIND, {"resource": resource_id, "uid": uid})


@dataclass(frozen=True)
class BusyRead:
    """What one read of busy intervals asks (``busy_intervals``): the opaque occurrences on
    ``resource`` that overlap [start, end), those of booking ``exclude`` (-1: none) left out,
    read from ``lower`` on (``start`` less the resource's longest occurrence)."""

    resource: int
    start: dt.datetime
    end: dt.datetime
    lower: dt.datetime
    exclude: int

    @classmethod
    def of(cls, resource: Mailbox, start: dt.datetime, end: dt.datetime,
           exclude_booking: int | None) -> "BusyRead":
        return cls(resource.id, start, end,
                   start - dt.timedelta(seconds=resource.longest_occurrence),
                   -1 if exclude_booking is None else exclude_booking)

    def params(self) -> dict[str, Any]:
        return {"resource": self.resource, "start": self.start, "end": self.end,
                "lower": self.lower, "exclude": self.exclude}


# Read for every meeting request, and mostly empty: a new meeting on a resource whose
# series are materialized far enough. Ids first, then entities only when there are some.
_DUE_OR_UID_SELECT = select(Booking.id).where(
    Booking.resource_id == bindparam("resource"),
    or_(Booking.horizon < bindparam("due"), Booking.uid == bindparam("uid")))
_DUE_OR_UID = Prepared(_DUE_OR_UID_SELECT)
# The same with the busy intervals a new meeting's check reads (``BusyRead``), in one
# statement: on PostgreSQL a round trip fewer inside the resource's lock. A row is a
# booking's id (no times) or a busy interval (no id).
_DUE_OR_UID_AND_BUSY = Prepared(union_all(
    _DUE_OR_UID_SELECT.add_columns(literal_column("NULL", Occurrence.start.type),
                                   literal_column("NULL", Occurrence.end.type)),
    _BUSY_SELECT.with_only_columns(literal_column("NULL", Integer),
                                                 Occurrence.start, Occurrence.end)))
_READ_AHEAD = "busy intervals read ahead"  # per_transaction: (BusyRead, list[Busy])


def due_or_booked(session: Session, resource_id: int, due: dt.datetime, uid: str,
                  ahead: BusyRead | None = None) -> list[Booking]:
    """The resource's bookings whose horizon is before ``due`` and the booking of the
    meeting ``uid``, oldest first (``horizon.catch_up_with``).

    With ``ahead``, the busy intervals it asks are read in the same statement, and when
    there are no such bookings (a new meeting, nothing to extend: the request's check comes
    next, with nothing written before it) held for ``busy_intervals`` to answer once.
    """
    return due_or_booked_later(session, resource_id, due, uid, ahead)()


def due_or_booked_later(session: Session, resource_id: int, due: dt.datetime, uid: str,
                        ahead: BusyRead | None = None) -> Callable[[], list[Booking]]:
    """``due_or_booked``, its statement sent now (in a ``prepared.pipelined`` block, with
    the block's others), read when the function returned is called, after the block (the
    entities are the ORM's, loaded then). Call it once."""
    # The ids are read past the ORM, so what it holds unflushed goes first. (Bookings are
    # inserted by Core, and a horizon moved in the ORM is judged by the caller on the
    # entity loaded below; the flush is for an ORM add or delete.)
    session.flush()
    params = {"resource": resource_id, "due": due, "uid": uid}
    if ahead is None:
        read = _DUE_OR_UID.rows_later(session.connection(), params)
    else:
        read = _DUE_OR_UID_AND_BUSY.rows_later(session.connection(),
                                               {**ahead.params(), **params})
    return lambda: _bookings(session, read(), ahead)


def _bookings(session: Session, rows: list[tuple], ahead: BusyRead | None) -> list[Booking]:
    ids = [row[0] for row in rows if row[0] is not None]
    if not ids:
        if ahead is not None:
            busy = [Busy(start, end) for booking_id, start, end in rows]
            per_transaction.hold(session, _READ_AHEAD, (ahead, busy))
        return []
    return list(session.scalars(select(Booking).where(Booking.id.in_(ids)).order_by(Booking.id)))


_BOOKING_COLUMNS = [c.name for c in Booking.__table__.columns if c.name != "id"]
_INSERT_BOOKING = Prepared(insert(Booking).returning(Booking.id), _BOOKING_COLUMNS)
_OCCURRENCE_COLUMNS = ["resource_id", "recurrence_id", "start", "end", "summary", "transparent",
                       "status"]


def _booking_with_occurrences(count: int) -> Executable:
    """PostgreSQL: a booking's row and ``count`` of its occurrences in one statement (the
    booking's INSERT in a WITH, the occurrences taking its id), RETURNING that id."""
    bookings, occurrences = Booking.__table__, Occurrence.__table__
    new = insert(bookings).values({c: bindparam(c, type_=bookings.c[c].type)
                                   for c in _BOOKING_COLUMNS}).returning(bookings.c.id)
    booking = new.cte("new_booking")
    rows = [select(booking.c.id, *(bindparam(f"{c}_{i}", type_=occurrences.c[c].type)
                                   for c in _OCCURRENCE_COLUMNS)) for i in range(count)]
    return (insert(occurrences).from_select(["booking_id", *_OCCURRENCE_COLUMNS],
                                            union_all(*rows) if count > 1 else rows[0])
            .add_cte(booking).returning(occurrences.c.booking_id))


_BOOKING_WITH_OCCURRENCES = PerCount(_booking_with_occurrences, limit=16)


class Saved(Protocol):
    """What ``add_occurrences`` reads of a booking: a Booking entity, or a ``NewBooking``."""

    @property
    def id(self) -> int: ...

    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class NewBooking:
    """A booking row just written by ``new_booking``: its id, meeting and status. It is no ORM
    entity (building one and adding it to the session cost as much as the INSERT); whoever
    needs the entity later in the transaction loads it (``find_booking``) from the row."""

    id: int
    uid: str
    status: str


def new_booking(session: Session, resource: Mailbox, instances: Sequence[Instance],
                **values: Any) -> NewBooking | None:
    """A new booking of ``resource`` and its occurrences ``instances`` (those not cancelled),
    written by Core INSERTs (``values``: every column but ``id`` and ``resource_id``). The
    ORM's own INSERT cost four times as much CPU. On PostgreSQL the row and its first
    occurrences go in one statement: one round trip inside the resource's lock, not two;
    after ``defer_new_bookings``, outside savepoints, when that statement holds them all, it
    is sent with the next statement (``prepared.send_with_next``), and None is returned (the
    id is not known yet; PostgreSQL never gives one twice, so no entity can be stale)."""
    conn, values = session.connection(), {**values, "resource_id": resource.id}
    rows = _occurrence_rows(resource, values["status"], instances)
    written: Sequence[dict[str, Any]] = []
    if rows and conn.dialect.name == "postgresql":
        statement, written = next(_BOOKING_WITH_OCCURRENCES.chunks(rows))
        params = {**values, **row_params(written, _OCCURRENCE_COLUMNS)}
        if len(written) == len(rows) and session.info.get(_NEW_BOOKINGS_LATER) \
                and session.get_nested_transaction() is None:
            send_with_next(conn, statement, params)
            _written(session, resource, None, [], instances, any_written=True)
            return None
        row_id = statement.rows(conn, params)[0][0]
    else:
        row_id = _INSERT_BOOKING.rows(conn, values)[0][0]
    # An entity loaded of a row that was rolled back with its savepoint stays in the
    # identity map, and SQLite gives its id again: the map must not answer for this row.
    stale = session.identity_map.get(identity_key(Booking, row_id))
    if stale is not None:
        session.expunge(stale)
    saved = NewBooking(row_id, values["uid"], values["status"])
    _written(session, resource, saved, rows[len(written):], instances, any_written=bool(rows))
    return saved


def find_pool_booking(session: Session, pool_id: int, uid: str) -> Booking | None:
    """The booking a member of the pool holds for the meeting ``uid`` through the pool."""
    return session.scalar(select(Booking).where(Booking.pool_id == pool_id, Booking.uid == uid))


def busy_intervals(session: Session, resource: Mailbox, start: dt.datetime, end: dt.datetime,
                   exclude_booking: int | None) -> list[Busy]:
    """Other bookings' opaque occurrences that overlap [start, end), booked or tentative."""
    read = BusyRead.of(resource, start, end, exclude_booking)
    held = per_transaction.take(session, _READ_AHEAD)
    if held is not None and held[0] == read:  # read with ``due_or_booked``, just before
        return held[1]
    return [Busy(s, e) for s, e in _BUSY.rows(session.connection(), read.params())]


def touch(session: Session, resource_id: int) -> None:
    """Raise the resource's ``calendar_version``: its occurrences changed.

    Once per resource and transaction (a batch of meeting requests for one room raises it
    once): readers see the version only with the commit, so one raise covers all that the
    transaction changed, savepoints inside it included; what a rolled back savepoint raised
    is raised again after it (``store.per_transaction``). After ``defer_touches``, outside
    savepoints, the raise waits for ``write_touches``.
    """
    per_transaction.take(session, _READ_AHEAD)  # what was read ahead holds no more
    held = session.info.get(_DEFERRED_TOUCHES)
    if held is not None and session.get_nested_transaction() is None:
        held.add(resource_id)
    else:
        _raise_version(session, resource_id)


def _raise_version(session: Session, resource_id: int) -> None:
    if not per_transaction.done(session, _RAISED, resource_id):
        _TOUCH.run(session.connection(), {"resource": resource_id})
        per_transaction.note(session, _RAISED, resource_id)


_DEFERRED_TOUCHES = "calendar versions to raise"  # session.info: resource ids
_NEW_BOOKINGS_LATER = "new bookings sent with the next statement"  # session.info: True


def defer_new_bookings(session: Session) -> None:
    """From now on ``new_booking`` sends a new booking's row with the next statement where
    it can (on PostgreSQL inside the resource's lock: a round trip fewer a new meeting).
    Only where nothing needs a new booking's id and a failure rolls the whole transaction
    back (the group committer's first run of a batch)."""
    session.info[_NEW_BOOKINGS_LATER] = True


def defer_touches(session: Session) -> None:
    """From now on ``touch`` holds the resources for ``write_touches``: the group
    committer's first run of a batch raises them with its last writes (on PostgreSQL in
    their round trip: ``prepared.pipelined``). Only where nothing reads a version back in the
    transaction and a failure rolls all of it back (that run's does)."""
    session.info[_DEFERRED_TOUCHES] = set()


def write_touches(session: Session) -> None:
    """Raise the versions held since ``defer_touches``; ``touch`` raises at once again."""
    for resource_id in sorted(session.info.pop(_DEFERRED_TOUCHES, ())):
        _raise_version(session, resource_id)


def _note_longest(resource: Mailbox, instances: Iterable[Instance]) -> None:
    longest = max((int((i.end - i.start).total_seconds()) for i in instances), default=0)
    if longest > resource.longest_occurrence:
        resource.longest_occurrence = longest


def _occurrence_rows(resource: Mailbox, status: str,
                     instances: Iterable[Instance]) -> list[dict[str, Any]]:
    """The rows of the instances that are not cancelled, but for their ``booking_id``."""
    return [{"resource_id": resource.id, "recurrence_id": i.recurrence_id, "start": i.start,
             "end": i.end, "summary": i.summary, "transparent": i.transparent, "status": status}
            for i in instances if not i.cancelled]


def add_occurrences(session: Session, resource: Mailbox, booking: Saved,
                    instances: Sequence[Instance]) -> None:
    rows = _occurrence_rows(resource, booking.status, instances)
    _written(session, resource, booking, rows, instances, any_written=bool(rows))


def _written(session: Session, resource: Mailbox, booking: Saved | None,
             rows: list[dict[str, Any]], instances: Sequence[Instance], any_written: bool) -> None:
    """``rows`` of the booking's occurrences inserted; with ``any_written`` (these, or some
    written with the booking's row) the calendar's version raised and its longest noted."""
    if rows:
        assert booking is not None
        _INSERT.run_many(session.connection(), [{**row, "booking_id": booking.id} for row in rows])
    if any_written:
        touch(session, resource.id)
        _note_longest(resource, [i for i in instances if not i.cancelled])


def set_status(session: Session, booking: Booking, status: str) -> None:
    """The booking and all its occurrences become ``status`` (tentative or booked)."""
    booking.status = status
    session.execute(update(Occurrence).where(Occurrence.booking_id == booking.id)
                    .values(status=status))
    touch(session, booking.resource_id)


@dataclass(frozen=True)
class Extent:
    """A booking's occurrences at a glance: the first one, and how many there are."""

    start: dt.datetime
    end: dt.datetime
    count: int


def extent(session: Session, booking: Booking) -> Extent | None:
    """The booking's first occurrence and its number of occurrences; None without any."""
    first = session.execute(select(Occurrence.start, Occurrence.end)
                            .where(Occurrence.booking_id == booking.id)
                            .order_by(Occurrence.start).limit(1)).first()
    if first is None:
        return None
    count = session.scalar(select(func.count()).select_from(Occurrence)
                           .where(Occurrence.booking_id == booking.id)) or 0
    return Extent(first[0], first[1], count)


def remove_occurrences(session: Session, booking: Booking,
                       recurrence_id: dt.datetime | None = None,
                       and_future: bool = False) -> int:
    """Remove all of a booking's occurrences, one instance, or that instance and later ones."""
    stmt = delete(Occurrence).where(Occurrence.booking_id == booking.id)
    if recurrence_id is not None:
        stmt = stmt.where(Occurrence.recurrence_id >= recurrence_id if and_future
                          else Occurrence.recurrence_id == recurrence_id)
    removed = session.execute(stmt).rowcount or 0
    if removed:
        touch(session, booking.resource_id)
    return removed


def delete_booking(session: Session, booking: Booking) -> None:
    """Delete a booking; its occurrences go with it (ON DELETE CASCADE)."""
    touch(session, booking.resource_id)
    session.delete(booking)


def opaque_occurrences(session: Session, resource_id: int) -> tuple[list[Busy], list[Busy]]:
    """All the resource's occurrences that take capacity: (booked, tentative)."""
    booked: list[Busy] = []
    tentative: list[Busy] = []
    for start, end, status in session.execute(_OPAQUE, {"resource": resource_id}):
        (booked if status == BOOKED else tentative).append(Busy(start, end))
    return booked, tentative


@dataclass(frozen=True)
class AgendaEntry:
    uid: str
    recurrence_id: dt.datetime | None
    summary: str
    start: dt.datetime
    end: dt.datetime
    organizer: str
    status: str  # booked; tentative while an approval is pending
    organizer_name: str = ""
    attendee_count: int = 0
    transparent: bool = False


def agenda(session: Session, resource: Mailbox, start: dt.datetime,
           end: dt.datetime) -> list[AgendaEntry]:
    """Occurrences overlapping [start, end), earliest first."""
    lower = start - dt.timedelta(seconds=resource.longest_occurrence)
    rows = session.execute(
        select(Booking.uid, Occurrence.recurrence_id, Occurrence.summary, Occurrence.start,
               Occurrence.end, Booking.organizer, Occurrence.status, Booking.organizer_name,
               Booking.attendee_count, Occurrence.transparent)
        .join(Booking, Booking.id == Occurrence.booking_id)
        .where(and_(Occurrence.resource_id == resource.id, Occurrence.start >= lower,
                    Occurrence.start < end, Occurrence.end > start))
        .order_by(Occurrence.start, Booking.uid))
    return [AgendaEntry(*row) for row in rows]
