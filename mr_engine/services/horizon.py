"""Keeping every booked series materialized ahead of now + the booking window.

A conflict check reads stored occurrences (an index range scan), so a series must be
materialized wherever a request can land. A booking's ``horizon`` says how far it is: a
series is *due* when its horizon is less than ``DUE_AHEAD`` past now + the resource's window,
and is then extended to ``STEP`` past it, so each series is extended about once a week and
an hourly pass over 10,000 series touches about sixty. Extension happens in the horizon
pass of ``mr-engine serve`` (at start and hourly), at once after ``--mr-booking-window``
changes, and on demand before any request for the resource is checked, so nothing depends
on the pass having run.

Occurrences that become due on a slot another booking already fills (possible once the
window grew, or between two open-ended series) stay with the booking that holds them; the
series' occurrence is declined with its own REPLY (RECURRENCE-ID, PARTSTAT=DECLINED), unless
``decline_conflict`` is off. Series are extended oldest booking first, so the earlier
booking keeps a slot.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mr_engine.core import booked_calendar
from mr_engine.store import calendar_store as cal
from mr_engine.config import Settings
from mr_engine.core.itip import Invitation, InvitationError
from mr_engine.store.models import Booking, Mailbox, Occurrence
from mr_engine.core.policy import ResourceFacts, ResourcePolicy, decide_extension
from mr_engine.core.recurrence import Instance, RecurrenceError, expand, finished_by
from mr_engine.services.replies import OutgoingReply, compose, event_for, wanted
from mr_engine.core.reply import Answer
from mr_engine.core.timezones import resolve

log = logging.getLogger(__name__)

DUE_AHEAD = dt.timedelta(days=1)
STEP = dt.timedelta(days=8)

_DUE = (select(Booking).where(Booking.resource_id == bindparam("resource"),
                              Booking.horizon < bindparam("due"))
        .order_by(Booking.id).limit(bindparam("limit")))
_BOOKED_FROM = select(Occurrence.recurrence_id).where(
    Occurrence.booking_id == bindparam("booking"), Occurrence.start >= bindparam("start"))


def policy_of(resource: Mailbox) -> ResourcePolicy:
    """The resource's booking settings as the pure policy sees them."""
    return resource.resource_settings


def window_end(resource: Mailbox, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(days=resource.mr_booking_window_days)


@dataclass(frozen=True)
class Extender:
    """What extending needs besides the store: the time, and how to answer."""

    now: dt.datetime
    zone: zoneinfo.ZoneInfo  # the resource's zone (floating and all-day times)
    hostname: str
    max_occurrences: int

    @classmethod
    def of(cls, resource: Mailbox, settings: Settings, now: dt.datetime) -> "Extender":
        return cls(now, zone_of(resource, settings), settings.hostname, settings.max_occurrences)


def zone_of(resource: Mailbox, settings: Settings) -> zoneinfo.ZoneInfo:
    """The zone of the resource's floating and all-day times."""
    return zoneinfo.ZoneInfo(resource.timezone or settings.default_timezone)


@dataclass
class Extended:
    """What a catch-up did, for the log and for the outbox."""

    series: int = 0
    occurrences: int = 0
    declined: int = 0
    replies: list[OutgoingReply] = field(default_factory=list)

    def describe(self) -> str:
        return (f"{self.series} series extended: {self.occurrences} occurrence(s) booked, "
                f"{self.declined} declined")


def catch_up(session: Session, resource: Mailbox, ext: Extender,
             limit: int = 1_000_000) -> Extended:
    """Extend the resource's due series, oldest booking first, at most *limit* of them.

    The caller holds the resource's lock (``db.lock_mailbox``) and the transaction.
    """
    due = _due(resource, ext)
    return _extend_all(session, resource, ext, session.scalars(
        _DUE, {"resource": resource.id, "due": due, "limit": limit}).all())


def catch_up_with(session: Session, resource: Mailbox, ext: Extender, uid: str,
                  ahead: cal.BusyRead | None = None) -> tuple[Extended, Booking | None]:
    """``catch_up``, and the booking of the meeting ``uid`` (None if it has none), read
    together (``calendar_store.due_or_booked``, which reads ``ahead`` too)."""
    return catch_up_later(session, resource, ext, uid, ahead)()


def catch_up_later(session: Session, resource: Mailbox, ext: Extender, uid: str,
                   ahead: cal.BusyRead | None = None
                   ) -> Callable[[], tuple[Extended, Booking | None]]:
    """``catch_up_with``, its read sent now (in a ``prepared.pipelined`` block, with the
    block's others: the resource's lock, ``db.lock_mailbox_later``), the series extended
    when the function returned is called, after the block. If the resource's row, read
    with its lock meanwhile, moved its booking window, the bookings are read again."""
    due = _due(resource, ext)
    read = cal.due_or_booked_later(session, resource.id, due, uid, ahead)

    def caught_up() -> tuple[Extended, Booking | None]:
        rows = read()
        if _due(resource, ext) != due:
            return catch_up_with(session, resource, ext, uid)
        done = _extend_all(session, resource, ext,
                           [b for b in rows if b.horizon is not None and b.horizon < due])
        return done, next((b for b in rows if b.uid == uid), None)
    return caught_up


def _due(resource: Mailbox, ext: Extender) -> dt.datetime:
    """Series whose horizon is before this are extended (``DUE_AHEAD`` of the window)."""
    return window_end(resource, ext.now) + DUE_AHEAD


def _extend_all(session: Session, resource: Mailbox, ext: Extender,
                due: list[Booking]) -> Extended:
    done = Extended()
    until = window_end(resource, ext.now) + STEP
    for booking in due:
        _extend(session, resource, booking, until, ext, done)
    return done


def _extend(session: Session, resource: Mailbox, booking: Booking, until: dt.datetime,
            ext: Extender, done: Extended) -> None:
    start = booking.horizon
    assert start is not None
    try:
        inv = booked_calendar.read(booking.calendar, ext.zone)
        fresh = _fresh(session, booking, inv, start, until, ext.max_occurrences)
    except (InvitationError, RecurrenceError) as exc:
        # Expanded once when it was accepted; a stored calendar that no longer expands
        # (a rule refused since) keeps what it has rather than failing every pass.
        log.warning("%s: series %s cannot be extended, left as it is: %s", resource.name,
                    booking.uid, getattr(exc, "reason", exc))
        booking.horizon = None
        return
    _book(session, resource, booking, inv, fresh, ext, done)
    booking.horizon = None if finished_by(inv, until) else until
    done.series += 1


def _fresh(session: Session, booking: Booking, inv: Invitation, start: dt.datetime,
           until: dt.datetime, cap: int) -> list[Instance]:
    """The occurrences starting in [start, until) that are not stored yet."""
    found = [i for i in expand(inv, until, cap, window_start=start)
             if i.start >= start and not i.cancelled]
    stored = set(session.scalars(_BOOKED_FROM, {"booking": booking.id, "start": start}))
    return [i for i in found if i.recurrence_id not in stored]


def _book(session: Session, resource: Mailbox, booking: Booking, inv: Invitation,
          fresh: list[Instance], ext: Extender, done: Extended) -> None:
    if not fresh:
        return
    busy = cal.busy_intervals(session, resource, min(i.start for i in fresh),
                              max(i.end for i in fresh), booking.id)
    zone = resolve(inv.events[0].tzid, ext.zone)
    decision = decide_extension(policy_of(resource), fresh, busy, ext.now, zone,
                                ResourceFacts(zone=ext.zone))
    cal.add_occurrences(session, resource, booking, decision.booked)
    done.occurrences += len(decision.booked)
    done.declined += len(decision.declined_instances)
    if decision.declined_instances:
        log.info("%s: series %s: %d new occurrence(s) declined: %s", resource.name,
                 booking.uid, len(decision.declined_instances),
                 decision.declined_instances[0][1])
        _decline(inv, resource, decision.declined_instances, ext, done)


def _decline(inv: Invitation, resource: Mailbox,
             declined: tuple[tuple[Instance, str], ...], ext: Extender, done: Extended) -> None:
    """One REPLY declining the occurrences (RFC 5546 §3.2.3, RECURRENCE-ID each)."""
    if inv.master is None or not wanted(inv, resource):
        return
    answers = [Answer(event_for(inv, inst), "DECLINED", reason, inst.recurrence_id,
                      inst.start, inst.end) for inst, reason in declined]
    try:
        done.replies.append(compose(inv, inv.master, resource, answers, None, ext.now,
                                    ext.hostname))
    except ValueError as exc:
        log.warning("%s: series %s: no reply for the declined occurrences: %s",
                    resource.name, inv.uid, exc)
