"""Processing a meeting request or cancellation for a resource: decide, book, and answer.

The decision itself is ``policy.decide`` (pure); this module gathers its inputs from the
store, applies the verdict to the resource's calendar, and returns the iTIP replies to queue.
The caller holds the transaction: booking and queued replies commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Callable

from sqlalchemy.orm import Session

from . import calendar_store as cal
from .config import Settings
from .db import lock_mailbox
from .itip import EventData, Invitation, InvitationError, is_attendee
from .models import Booking, Mailbox
from .policy import Decision, ResourcePolicy, decide
from .recurrence import Instance, RecurrenceError, expand
from .reply import Answer, build_reply
from .timezones import resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingReply:
    sender: str
    recipient: str
    subject: str
    content: bytes


@dataclass
class Result:
    """What happened, as ``kopano-mr-accept`` prints it: accepted / declined / ignored."""

    outcome: str  # "accepted" | "declined" | "ignored" | "cancelled"
    reasons: list[str] = field(default_factory=list)
    replies: list[OutgoingReply] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.outcome}: {'; '.join(self.reasons)}" if self.reasons else self.outcome


@dataclass(frozen=True)
class Request:
    """A meeting request addressed to ``resource``, and what is needed to answer it."""

    resource: Mailbox
    invitation: Invitation
    message_id: str | None
    zone: zoneinfo.ZoneInfo
    now: dt.datetime
    hostname: str
    max_occurrences: int


def read_request(resource: Mailbox,
                 invitation: Callable[[tzinfo], Invitation | InvitationError | None],
                 message_id: str | None, settings: Settings,
                 now: dt.datetime) -> Request | None:
    """The REQUEST or CANCEL naming ``resource`` as ATTENDEE, else None (logged).

    ``invitation(zone)`` reads the message's calendar for a resource in ``zone`` (floating
    and all-day times depend on it), as ``itip.invitation_in`` does.
    """
    zone = zoneinfo.ZoneInfo(resource.timezone or settings.default_timezone)
    inv = invitation(zone)
    if inv is None:
        return None
    if isinstance(inv, InvitationError):
        log.warning("%s: calendar not usable, delivering as mail: %s", resource.name, inv.reason)
        return None
    if inv.method not in ("REQUEST", "CANCEL"):
        log.info("%s: iTIP method %s is not processed", resource.name, inv.method)
        return None
    if is_attendee(inv, [resource.email]) is None:
        log.info("%s: not an attendee of %s", resource.name, inv.uid)
        return None
    return Request(resource=resource, invitation=inv, message_id=message_id, zone=zone,
                   now=now, hostname=settings.hostname, max_occurrences=settings.max_occurrences)


def policy_of(resource: Mailbox) -> ResourcePolicy:
    return ResourcePolicy(
        kind=resource.resource_type, capacity=resource.resource_capacity,
        decline_conflict=resource.mr_decline_conflict,
        decline_recurring=resource.mr_decline_recurring,
        booking_window_days=resource.mr_booking_window_days,
        max_duration_minutes=resource.mr_max_duration,
        max_conflict_instances=resource.mr_max_conflict_instances,
        conflict_percentage=resource.mr_conflict_percentage)


def process(session: Session, req: Request) -> Result:
    """Apply a REQUEST or CANCEL to the resource's calendar (serialized per resource)."""
    lock_mailbox(session, req.resource.id)
    booking = cal.find_booking(session, req.resource.id, req.invitation.uid)
    if req.invitation.method == "CANCEL":
        return _cancel(session, req, booking)
    if req.invitation.master is None:
        return _instances(session, req, booking)
    return _series(session, req, booking)


def _stale(event: EventData, booking: Booking | None) -> str | None:
    """RFC 5546 §2.1.5: SEQUENCE, then DTSTAMP, order the revisions of a meeting."""
    if booking is None:
        return None
    mine = (event.sequence, event.dtstamp or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
    booked = (booking.sequence, booking.dtstamp or mine[1])
    if mine == booked:
        return "duplicate of the booked revision"
    if mine < booked:
        return (f"stale revision (SEQUENCE {event.sequence}, DTSTAMP {event.dtstamp}) is older "
                f"than the booked one")
    return None


def _expand(req: Request) -> list[Instance]:
    window_end = req.now + dt.timedelta(days=req.resource.mr_booking_window_days)
    return expand(req.invitation, window_end, req.max_occurrences)


def _decide(session: Session, req: Request, instances: list[Instance], recurring: bool,
            exclude: int | None) -> Decision:
    zone = resolve(req.invitation.events[0].tzid, req.zone)
    return check(session, req.resource, instances, recurring, exclude, req.now, zone)


def check(session: Session, resource: Mailbox, instances: list[Instance], recurring: bool,
          exclude: int | None, now: dt.datetime, zone: tzinfo) -> Decision:
    """The conflict check: the calendar's busy times around ``instances`` (``exclude``: the
    meeting's own booking), then the resource's policy on them."""
    live = [i for i in instances if not i.cancelled]
    busy = []
    if live:
        busy = cal.busy_intervals(session, resource, min(i.start for i in live),
                                  max(i.end for i in live), exclude)
    return decide(policy_of(resource), instances, recurring, busy, now, zone)


def _series(session: Session, req: Request, booking: Booking | None) -> Result:
    master = req.invitation.master
    assert master is not None
    stale = _stale(master, booking)
    if stale:
        return Result("ignored", [stale])
    try:
        instances = _expand(req)
    except RecurrenceError as exc:
        decision = Decision(False, (exc.reason,), (), ())
    else:
        decision = _decide(session, req, instances, master.recurring,
                           booking.id if booking else None)
    if booking is not None:
        cal.remove_occurrences(session, booking)
    if not decision.accepted:
        if booking is not None:
            session.delete(booking)
        return _answer(req, "declined", list(decision.reasons),
                       [Answer(master, "DECLINED", "; ".join(decision.reasons), None)])
    booking = _save_booking(session, req, booking, master)
    cal.add_occurrences(session, req.resource, booking, decision.booked)
    answers = [Answer(master, "ACCEPTED", "", None)]
    answers += [Answer(_event_for(req.invitation, inst), "DECLINED", reason, inst.recurrence_id,
                       inst.start, inst.end)
                for inst, reason in decision.declined_instances]
    reasons = [f"declined {len(decision.declined_instances)} conflicting occurrence(s)"] \
        if decision.declined_instances else []
    return _answer(req, "accepted", reasons, answers)


def _instances(session: Session, req: Request, booking: Booking | None) -> Result:
    """A REQUEST carrying only overrides: change (or book) just those occurrences."""
    first = req.invitation.events[0]
    if booking is not None and first.sequence < booking.sequence:
        return Result("ignored", ["stale revision of an occurrence"])
    try:
        instances = _expand(req)
    except RecurrenceError as exc:
        return _answer(req, "declined", [exc.reason],
                       [Answer(e, "DECLINED", exc.reason, e.recurrence_id)
                        for e in req.invitation.events])
    decision = _decide(session, req, instances, False, booking.id if booking else None)
    if booking is None and decision.booked:
        booking = _save_booking(session, req, None, first)
    if booking is not None:
        # The instance moves (or goes, when declined); the rest of the series stays.
        for inst in instances:
            cal.remove_occurrences(session, booking, inst.recurrence_id)
        cal.add_occurrences(session, req.resource, booking, decision.booked)
    declined = {i.recurrence_id: reason for i, reason in decision.declined_instances}
    if not decision.accepted:
        declined.update({i.recurrence_id: "; ".join(decision.reasons) for i in instances})
    answers = [Answer(e, "DECLINED" if e.recurrence_id in declined else "ACCEPTED",
                      declined.get(e.recurrence_id, ""), e.recurrence_id)
               for e in req.invitation.events]
    if declined:
        return _answer(req, "declined", sorted(set(declined.values())), answers)
    return _answer(req, "accepted", [], answers)


def _cancel(session: Session, req: Request, booking: Booking | None) -> Result:
    # Cancellations apply whatever their SEQUENCE, as Kopano does: a late cancel must still
    # free the resource. No reply to a CANCEL (RFC 5546 §3.2.5).
    if booking is None:
        log.info("%s: cancel for unknown meeting %s", req.resource.name, req.invitation.uid)
        return Result("ignored", ["cancel for a meeting that is not booked"])
    removed = 0
    for event in req.invitation.events:
        if event.recurrence_id is None:
            session.delete(booking)
            return Result("cancelled")
        removed += cal.remove_occurrences(session, booking, event.recurrence_id,
                                          and_future=event.this_and_future)
    return Result("cancelled", [f"{removed} occurrence(s) removed"])


def _save_booking(session: Session, req: Request, booking: Booking | None,
                  event: EventData) -> Booking:
    if booking is None:
        booking = Booking(resource_id=req.resource.id, uid=req.invitation.uid,
                          created_at=req.now)
        session.add(booking)
    booking.sequence = event.sequence
    booking.dtstamp = event.dtstamp
    booking.organizer = event.organizer
    booking.summary = event.summary
    booking.vevents = "".join(e.ical for e in req.invitation.events)
    booking.status = "booked"
    booking.updated_at = req.now
    session.flush()
    return booking


def _event_for(inv: Invitation, inst: Instance) -> EventData:
    """The VEVENT an instance came from: its override if it has one, else the master."""
    for event in inv.events:
        if event.recurrence_id is not None and event.recurrence_id == inst.recurrence_id:
            return event
    assert inv.master is not None
    return inv.master


def _answer(req: Request, outcome: str, reasons: list[str], answers: list[Answer]) -> Result:
    """The Result with its replies (none when the organizer asked for none)."""
    event = req.invitation.events[0]
    me = is_attendee(req.invitation, [req.resource.email])
    if not event.organizer or event.organizer == req.resource.email_lower \
            or (me is not None and not me.rsvp):
        return Result(outcome, reasons)
    # A partly accepted series: the acceptance, then one REPLY carrying a VEVENT (with its
    # RECURRENCE-ID) per declined occurrence. One message for all of them, not one each:
    # the ORGANIZER is not verified, and a thousand replies per request would make the
    # resource a mail cannon.
    groups = [answers] if outcome != "accepted" or len(answers) == 1 \
        else [answers[:1], answers[1:]]
    replies = [_reply(req, event, group) for group in groups]
    return Result(outcome, reasons, replies)


def _reply(req: Request, event: EventData, answers: list[Answer]) -> OutgoingReply:
    content = build_reply(req.invitation, answers, req.resource.email,
                          req.resource.fullname or req.resource.name, req.message_id,
                          req.now, req.hostname)
    verb = "Accepted" if all(a.partstat == "ACCEPTED" for a in answers) else "Declined"
    return OutgoingReply(req.resource.email, event.organizer, f"{verb}: {event.summary}",
                         content)
