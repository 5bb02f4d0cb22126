"""Processing a meeting request or cancellation for a resource: decide, book, and answer.

The decision itself is ``policy.decide`` (pure booking rules); this module gathers its
facts from the message and the store, applies the verdict to the resource's calendar, and
returns the iTIP replies to queue. The caller holds the transaction: booking and queued
replies commit together or not at all.

Only the organizer who booked a meeting changes or cancels it: anyone else's REQUEST for its
UID is declined to them, their CANCEL is ignored (and logged), and the booking stays.

Who may book is the rules' (``core.who_may_book``, facts from ``who_asks``). A request that
only the request-in list allows, and that fits, waits for a delegate's approval: with no
delegates it is declined (and logged), otherwise it goes to ``hold_for_approval``, which
books it as an acceptance is booked, but tentatively, answers TENTATIVE and asks the
delegates (``services.approvals``). A later revision of a held request replaces its
approval; a CANCEL withdraws it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.message
import logging
import zoneinfo
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Callable, Protocol, TypeVar

from sqlalchemy.orm import Session

from mr_engine import cpu_time
from mr_engine.core import booked_calendar
from mr_engine.store import calendar_store as cal
from mr_engine.services import alternatives, approvals, horizon, who_asks
from mr_engine.config import Settings
from mr_engine.store.db import lock_mailbox_later
from mr_engine.core.itip import (OUT_OF_RANGE, EventData, Invitation, InvitationError,
                                 is_attendee, people_invited)
from mr_engine.store.models import Booking, Mailbox
from mr_engine.store.prepared import pipelined
from mr_engine.core.headers import header_text
from mr_engine.core.alternatives import Alternatives, offered_for, text as offer_text
from mr_engine.core.explanation import Explanation, explain
from mr_engine.core.policy import CONFLICT_ON, Decision, People, ResourceFacts, decide
from mr_engine.core.recurrence import Instance, RecurrenceError, expand, finished_by
from mr_engine.services.replies import (OutgoingReply, compose, counter, event_for, summarize,
                                        wanted)
from mr_engine.core.reply import Answer, Delegation
from mr_engine.core.timezones import resolve

log = logging.getLogger(__name__)
Judged = TypeVar("Judged")  # what ``check``'s rules return: a Decision, or an Explanation

NOT_ORGANIZER = "only the organizer of this meeting can change it"
NOBODY_CAN_APPROVE = "nobody can approve requests for this resource"
CHANGED_WHY = "the organizer changed the request, and the resource's rules decided it at once"
CANCELLED_WHY = "the organizer cancelled the meeting"


@dataclass(frozen=True)
class Acceptance:
    """How a request that fits is answered: at once (FIRM), or tentatively while it waits
    for approval (RFC 5546 §3.2.3: PARTSTAT=TENTATIVE), ``note`` saying for whom."""

    partstat: str = "ACCEPTED"
    note: str = ""
    outcome: str = "accepted"


FIRM = Acceptance()


@dataclass
class BookingResult:
    """What happened, as ``kopano-mr-accept`` prints it: accepted / declined / ignored.

    ``problems``: what went wrong besides the verdict (no reply could be sent), logged by
    delivery and an error exit of ``kopano-mr-accept``. ``offer``: what a decline offers
    instead (``mr-engine explain`` shows it).
    """

    outcome: str  # "accepted" | "tentative" | "declined" | "ignored" | "cancelled"
    reasons: list[str] = field(default_factory=list)
    replies: list[OutgoingReply] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    offer: Alternatives = Alternatives()

    def describe(self) -> str:
        return f"{self.outcome}: {summarize(self.reasons)}" if self.reasons else self.outcome


class Incoming(Protocol):
    """The received message a request is read from (delivery's ``Envelope`` is one)."""

    @property
    def sender(self) -> str:
        """The envelope sender; "" for the null sender or when it is not known."""

    @property
    def message(self) -> email.message.Message: ...

    @property
    def message_id(self) -> str | None: ...

    @property
    def authors(self) -> tuple[str, str]:
        """The first From and Sender addresses, as ``headers.first_address`` reads them."""

    def invitation(self, zone: tzinfo) -> Invitation | InvitationError | None:
        """The message's calendar for a resource in ``zone`` (floating and all-day times
        depend on it), as ``itip.invitation_in`` reads it."""


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
    # Who sent the message (the booking rules' facts): "" when not known.
    envelope_sender: str = ""
    from_address: str = ""
    sender_address: str = ""
    auth_results: tuple[str, ...] = ()  # its Authentication-Results fields (RFC 8601)
    # Trusted authserv-ids, the directory to ask who the organizer is, local domains.
    settings: Settings = Settings()
    # A pool's request taken by this member: its replies say DELEGATED-FROM the pool.
    delegation: Delegation | None = None
    # What a decline offers instead (``services.alternatives``), set once it is decided.
    offer: Alternatives = Alternatives()


def read_request(resource: Mailbox, incoming: Incoming, settings: Settings,
                 now: dt.datetime, attendee: str | None = None) -> Request | None:
    """The REQUEST or CANCEL naming ``resource`` (or ``attendee``, a pool's address) as
    ATTENDEE, else None (logged)."""
    zone = horizon.zone_of(resource, settings)
    inv = incoming.invitation(zone)
    why = unprocessable(resource, inv, attendee)
    if why is not None or not isinstance(inv, Invitation):
        if inv is not None:  # plain mail, the common case, goes unremarked
            log.log(logging.WARNING if isinstance(inv, InvitationError) else logging.INFO,
                    "%s: %s", resource.name, why)
        return None
    return Request(resource=resource, invitation=inv, message_id=incoming.message_id,
                   zone=zone, now=now, hostname=settings.hostname,
                   max_occurrences=settings.max_occurrences, envelope_sender=incoming.sender,
                   from_address=incoming.authors[0], sender_address=incoming.authors[1],
                   auth_results=_auth_results(incoming.message), settings=settings)


def unprocessable(resource: Mailbox, inv: Invitation | InvitationError | None,
                  attendee: str | None = None) -> str | None:
    """Why the message's calendar ``inv`` is no REQUEST or CANCEL naming ``resource`` (or
    ``attendee``) as ATTENDEE; None when it is one. Such a message is delivered as mail."""
    if inv is None:
        return "the message carries no calendar"
    if isinstance(inv, InvitationError):
        return f"calendar not usable: {inv.reason}"
    if inv.method not in ("REQUEST", "CANCEL"):
        return f"iTIP method {inv.method} is not processed"
    if is_attendee(inv, [attendee or resource.email]) is None:
        return f"not an attendee of {inv.uid}"
    return None


def _auth_results(message: email.message.Message) -> tuple[str, ...]:
    return tuple(header_text(v) for v in message.get_all("Authentication-Results", []))


def _extender(req: Request) -> horizon.Extender:
    return horizon.Extender(req.now, req.zone, req.hostname, req.max_occurrences)


def process(session: Session, req: Request) -> BookingResult:
    """Apply a REQUEST or CANCEL to the resource's calendar (serialized per resource).

    Due series are extended first (``horizon``), so the conflict check sees every
    occurrence that the request could meet.
    """
    expanded = _expansion(req) if req.invitation.method == "REQUEST" else None
    window = horizon.window_end(req.resource, req.now)
    caught_up, booking = _locked_and_caught_up(session, req, expanded)
    if expanded is not None and horizon.window_end(req.resource, req.now) != window:
        # The locked row, read afresh, moved the booking window: the series is expanded to
        # the window its horizon will say (the busy read ahead no longer matches: read again).
        expanded = _expansion(req)
    if caught_up.series:
        log.info("%s: %s", req.resource.name, caught_up.describe())
    result = _apply(session, req, booking, expanded)
    result.replies[:0] = caught_up.replies
    return result


# A REQUEST's occurrences, or why they cannot be expanded: expanded once, before the
# store is read, so that a new meeting's busy intervals are read with its booking.
Expansion = list[Instance] | RecurrenceError


def _expansion(req: Request) -> Expansion:
    try:
        return _expand(req)
    except RecurrenceError as exc:
        return exc


def _ahead(req: Request, expanded: Expansion | None) -> cal.BusyRead | None:
    """The busy read that ``check`` will make for ``req`` if it is a new meeting."""
    live = _live(expanded) if isinstance(expanded, list) else []
    if not live:
        return None
    return cal.BusyRead.of(req.resource, *_span(live), None)


def _locked_and_caught_up(session: Session, req: Request, expanded: Expansion | None
                          ) -> tuple[horizon.Extended, Booking | None]:
    """The resource locked, its due series extended, the meeting's booking found."""
    session.flush()  # before the block: the ORM's statements are not sent together
    with pipelined(session.connection()):  # on PostgreSQL the lock and the reads, one round trip
        locked = lock_mailbox_later(session, req.resource.id)
        catch_up = horizon.catch_up_later(session, req.resource, _extender(req),
                                          req.invitation.uid, _ahead(req, expanded))
    locked()
    return catch_up()


def _apply(session: Session, req: Request, booking: Booking | None,
           expanded: Expansion | None) -> BookingResult:
    if booking is not None and not _by_organizer(booking, req.invitation):
        return _not_organizer(req, booking)
    if req.invitation.method == "CANCEL":
        return _cancel(session, req, booking)
    if expanded is None:  # process takes a REQUEST or a CANCEL: unprocessable() stops others
        raise ValueError(f"not a REQUEST or CANCEL: {req.invitation.method}")
    result = _instances(session, req, booking, expanded) if req.invitation.master is None \
        else _series(session, req, booking, expanded)
    if any(e.out_of_range for e in req.invitation.events):
        result.problems.append(OUT_OF_RANGE)  # declined, and the input was not usable
    if result.outcome == "accepted" and req.resource.resource_settings.notify_delegates:
        result.replies += _notices(session, req)
    return result


def _notices(session: Session, req: Request) -> list[OutgoingReply]:
    """Kolab's accept-and-notify: the delegates hear of each automatic booking."""
    booked = cal.find_booking(session, req.resource.id, req.invitation.uid)
    return [] if booked is None else approvals.notify(session, req.resource, booked,
                                                      req.settings, req.now)


def _withdraw(session: Session, req: Request, booking: Booking | None, status: str,
              why: str) -> list[OutgoingReply]:
    """The booking's pending approval, if any, is over: the delegates are told ``why``."""
    if booking is None:
        return []
    return approvals.withdraw(session, req.resource, booking, status, why, req.settings,
                              req.now)


def _by_organizer(booking: Booking, inv: Invitation) -> bool:
    """RFC 5546 §2.1.1: only the organizer changes or cancels a meeting (any attendee
    knows its UID). Addresses compare case-insensitively."""
    return all(e.organizer.lower() == booking.organizer.lower() for e in inv.events)


def _not_organizer(req: Request, booking: Booking) -> BookingResult:
    """Nothing changes; a CANCEL is filed and logged, a REQUEST declined to its sender."""
    sender = req.invitation.events[0].organizer or "nobody"
    if req.invitation.method == "CANCEL":
        reason = f"cancel from {sender}, who is not the organizer {booking.organizer}"
        log.warning("%s: %s: %s", req.resource.name, req.invitation.uid, reason)
        return BookingResult("ignored", [reason])
    log.warning("%s: %s: request from %s, who is not the organizer %s: declined",
                req.resource.name, req.invitation.uid, sender, booking.organizer)
    answers = [Answer(e, "DECLINED", NOT_ORGANIZER, e.recurrence_id)
               for e in req.invitation.events]
    return _answer(req, "declined", [NOT_ORGANIZER], answers)


def stale(event: EventData, booking: Booking | None) -> str | None:
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
    if any(e.out_of_range for e in req.invitation.events):
        raise RecurrenceError(OUT_OF_RANGE)
    return expand(req.invitation, horizon.window_end(req.resource, req.now),
                  req.max_occurrences)


def _horizon(req: Request) -> dt.datetime | None:
    """How far a newly booked series is materialized: to the end of the booking window,
    or None when no occurrence lies beyond it."""
    end = horizon.window_end(req.resource, req.now)
    return None if finished_by(req.invitation, end) else end


def _people(session: Session, req: Request) -> People:
    """Who asks for the booking: the meeting's organizer, the message's senders, and what
    the directory says of the organizer."""
    event = req.invitation.events[0]  # the master, when there is one
    message = who_asks.Message(organizer=event.organizer, envelope_sender=req.envelope_sender,
                               from_address=req.from_address, sender_address=req.sender_address,
                               attendees=len(event.attendees),
                               individuals=people_invited(event, [req.resource.email]),
                               auth_results=req.auth_results)
    return who_asks.people(session, req.settings, horizon.policy_of(req.resource), message)


def _asked(session: Session, req: Request) -> tuple[tzinfo, People, ResourceFacts]:
    """What the rules are told besides the occurrences: the zone their reasons show times
    in (the meeting's), who asks, and the resource's zone and delegates."""
    zone = resolve(req.invitation.events[0].tzid, req.zone)
    resource = who_asks.resource_facts(session, req.resource, req.zone,
                                       horizon.policy_of(req.resource))
    return zone, _people(session, req), resource


def _decide(session: Session, req: Request, instances: list[Instance], recurring: bool,
            exclude: int | None) -> Decision:
    zone, people, resource = _asked(session, req)
    decision = check(session, req.resource, instances, recurring, exclude, req.now, zone,
                     people, resource)
    if decision.needs_approval and not resource.delegates:
        log.warning("%s: %s: only the request-in list allows the organizer, and the resource "
                    "has no delegates: declined", req.resource.name, req.invitation.uid)
        return Decision(False, (NOBODY_CAN_APPROVE,), (), ())
    return decision


def verdict(session: Session, req: Request,
            exclude: int | None) -> tuple[list[Instance], Decision]:
    """The occurrences of ``req`` and the resource's rules on them as processing would
    apply them, booking nothing (``exclude``: the meeting's own booking): how a pool weighs
    its members."""
    try:
        instances = _expand(req)
    except RecurrenceError as exc:
        return [], Decision(False, (exc.reason,), (), ())
    master = req.invitation.master
    return instances, _decide(session, req, instances,
                              master is not None and master.recurring, exclude)


def explained(session: Session, req: Request, exclude: int | None) -> Explanation | None:
    """Every booking rule's result on ``req`` (``core.explanation``), on the facts that
    ``_decide`` judges (``exclude``: the meeting's own booking); None when its occurrences
    cannot be expanded (processing declines it for that)."""
    try:
        instances = _expand(req)
    except RecurrenceError:
        return None
    master = req.invitation.master
    return check(session, req.resource, instances, master is not None and master.recurring,
                 exclude, req.now, *_asked(session, req), rules=explain)


def check(session: Session, resource: Mailbox, instances: list[Instance], recurring: bool,
          exclude: int | None, now: dt.datetime, zone: tzinfo,
          people: People = People(), facts: ResourceFacts | None = None,
          rules: Callable[..., Judged] = decide) -> Judged:  # type: ignore[assignment]
    """The conflict check: the calendar's busy times around ``instances`` (``exclude``: the
    meeting's own booking), then the resource's booking rules on them (``rules``:
    ``policy.decide``, or ``explanation.explain`` to hear every rule). ``facts``: the
    resource's zone and delegates (by default its zone is UTC, and it has none)."""
    live = _live(instances)
    busy = cal.busy_intervals(session, resource, *_span(live), exclude) if live else []
    return rules(horizon.policy_of(resource), instances, recurring, busy, now, zone, people,
                 facts or ResourceFacts())


def _live(instances: list[Instance]) -> list[Instance]:
    return [i for i in instances if not i.cancelled]


def _span(live: list[Instance]) -> tuple[dt.datetime, dt.datetime]:
    """From the first start to the last end: where a check reads the busy intervals."""
    return min(i.start for i in live), max(i.end for i in live)


def _offering(session: Session, req: Request, instances: list[Instance], decision: Decision,
              booking: Booking | None) -> Request:
    """``req`` with what its decline offers instead: free times and resources, when the
    reasons are conflicts, working hours or seats (``core.alternatives``)."""
    if decision.accepted and not decision.declined_instances:
        return req
    reasons = [r for _, r in decision.declined_instances] or list(decision.reasons)
    if not offered_for(reasons):
        return req
    offer = alternatives.alternatives(
        session, req.resource, instances, req.now, settings=req.settings,
        people=people_invited(req.invitation.events[0], [req.resource.email]),
        reasons=reasons, exclude=booking.id if booking else None)
    return dataclasses.replace(req, offer=offer)


def _proposes(req: Request, outcome: str, reasons: list[str]) -> bool:
    """Whether a decline comes with a COUNTER: a single meeting with times of day (a
    quarter hour is no all-day proposal) declined for a conflict, a free time found, and
    the resource proposes times (``--mr-propose-time``)."""
    master = req.invitation.master
    return outcome == "declined" and bool(req.offer.times) and master is not None \
        and not master.recurring and not master.all_day \
        and req.resource.resource_settings.propose_time \
        and any(r.startswith(CONFLICT_ON) for r in reasons)


def _counter(req: Request, outcome: str, reasons: list[str]) -> list[OutgoingReply]:
    """RFC 5546 §3.2.7: the COUNTER proposing the nearest free time, when ``_proposes``."""
    master = req.invitation.master
    if master is None or not _proposes(req, outcome, reasons):
        return []
    return [counter(master, req.resource, req.offer.times[0], req.message_id, req.now,
                    req.hostname)]


def hold_for_approval(session: Session, req: Request, booking: Booking | None,
                      decision: Decision, instances: list[Instance] | None = None
                      ) -> BookingResult:
    """THE APPROVALS HOOK (issue 13): a request that only the request-in list allows, that
    fits (``decision.booked``, ``decision.declined_instances`` as for an acceptance), for a
    resource with delegates. ``booking`` is the meeting's current booking, if any; nothing
    of it has been changed yet. The caller holds the resource's lock and the transaction.

    Booked as an acceptance would be (``instances``: those an overrides-only request
    asked for), then made tentative: it holds its slot in conflict checks while it waits.
    The organizer gets TENTATIVE "awaiting approval by …", each delegate the request.
    """
    people = approvals.delegates(session, req.resource)
    held = Acceptance("TENTATIVE", approvals.awaiting(people), "tentative")
    if req.invitation.master is not None:
        result = _settle_series(session, req, booking, decision, held)
    else:
        result = _settle_instances(session, req, booking, instances or [], decision, held)
    booked = cal.find_booking(session, req.resource.id, req.invitation.uid)
    if booked is None or result.outcome != "tentative":
        return result
    cal.set_status(session, booked, cal.TENTATIVE)
    hold = approvals.Hold(booked, req.invitation, req.message_id,
                          len(decision.declined_instances), req.now)
    result.replies += approvals.ask(session, req.resource, hold, req.settings, people)
    return result


def _series(session: Session, req: Request, booking: Booking | None,
            expanded: Expansion) -> BookingResult:
    master = req.invitation.master
    assert master is not None
    old = stale(master, booking)
    if old:
        return BookingResult("ignored", [old])
    if isinstance(expanded, RecurrenceError):
        decision = Decision(False, (expanded.reason,), (), ())
    else:
        decision = _decide(session, req, expanded, master.recurring,
                           booking.id if booking else None)
        req = _offering(session, req, expanded, decision, booking)
    if decision.needs_approval:
        return hold_for_approval(session, req, booking, decision)
    withdrawn = _withdraw(session, req, booking, approvals.REPLACED, CHANGED_WHY)
    result = _settle_series(session, req, booking, decision)
    result.replies += withdrawn
    return result


def _settle_series(session: Session, req: Request, booking: Booking | None,
                   decision: Decision, acceptance: Acceptance = FIRM) -> BookingResult:
    """The series booked as ``decision`` says (replacing ``booking``'s occurrences)."""
    master = req.invitation.master
    assert master is not None
    if booking is not None:
        cal.remove_occurrences(session, booking)
    if not decision.accepted:
        if booking is not None:
            cal.delete_booking(session, booking)
        return _answer(req, "declined", list(decision.reasons),
                       [Answer(master, "DECLINED", summarize(decision.reasons), None)])
    _save_booking(session, req, booking, master, decision.booked,
                  _horizon(req) if master.recurring else None)
    answers = [Answer(master, acceptance.partstat, acceptance.note, None)]
    answers += [Answer(event_for(req.invitation, inst), "DECLINED", reason, inst.recurrence_id,
                       inst.start, inst.end)
                for inst, reason in decision.declined_instances]
    reasons = [f"declined {len(decision.declined_instances)} conflicting occurrence(s)"] \
        if decision.declined_instances else []
    return _answer(req, acceptance.outcome, reasons, answers)


def _instances(session: Session, req: Request, booking: Booking | None,
               instances: Expansion) -> BookingResult:
    """A REQUEST carrying only overrides: change (or book) just those occurrences."""
    first = req.invitation.events[0]
    if booking is not None and first.sequence < booking.sequence:
        return BookingResult("ignored", ["stale revision of an occurrence"])
    if isinstance(instances, RecurrenceError):
        return _answer(req, "declined", [instances.reason],
                       [Answer(e, "DECLINED", instances.reason, e.recurrence_id)
                        for e in req.invitation.events])
    decision = _decide(session, req, instances, False, booking.id if booking else None)
    req = _offering(session, req, instances, decision, booking)
    if decision.needs_approval:
        return hold_for_approval(session, req, booking, decision, instances)
    withdrawn = _withdraw(session, req, booking, approvals.REPLACED, CHANGED_WHY)
    if booking is not None and booking.status == cal.TENTATIVE:
        cal.set_status(session, booking, cal.BOOKED)  # no approval waits for it any more
    result = _settle_instances(session, req, booking, instances, decision)
    result.replies += withdrawn
    return result


def _settle_instances(session: Session, req: Request, booking: Booking | None,
                      instances: list[Instance], decision: Decision,
                      acceptance: Acceptance = FIRM) -> BookingResult:
    """The overrides booked (or moved, or declined) as ``decision`` says."""
    first = req.invitation.events[0]
    declined = {i.recurrence_id: reason for i, reason in decision.declined_instances}
    if not decision.accepted:
        declined.update({i.recurrence_id: summarize(decision.reasons) for i in instances})
    if booking is None and decision.booked:
        _save_booking(session, req, None, first, decision.booked)
    elif booking is not None:
        _move_instances(session, req, booking, instances, decision, declined)
    answers = [Answer(e, "DECLINED", declined[e.recurrence_id], e.recurrence_id)
               if e.recurrence_id in declined
               else Answer(e, acceptance.partstat, acceptance.note, e.recurrence_id)
               for e in req.invitation.events]
    if declined:
        return _answer(req, "declined", sorted(set(declined.values())), answers)
    return _answer(req, acceptance.outcome, [], answers)


def _move_instances(session: Session, req: Request, booking: Booking,
                    instances: list[Instance], decision: Decision,
                    declined: dict[dt.datetime | None, str]) -> None:
    """The instances move (or go, when declined); the rest of the series stays. The kept
    calendar learns the change, so that extending the series later does not undo it."""
    for inst in instances:
        cal.remove_occurrences(session, booking, inst.recurrence_id)
    cal.add_occurrences(session, req.resource, booking, decision.booked)
    events = req.invitation.events
    kept = [e for e in events if e.recurrence_id not in declined]
    gone = [e for e in events if e.recurrence_id in declined]
    calendar = booked_calendar.with_overrides(booking.calendar, kept, req.zone)
    booking.calendar = booked_calendar.with_overrides(calendar, gone, req.zone, cancel=True)


def _cancel(session: Session, req: Request, booking: Booking | None) -> BookingResult:
    # Cancellations apply whatever their SEQUENCE, as Kopano does: a late cancel must still
    # free the resource. No reply to a CANCEL (RFC 5546 §3.2.5).
    if booking is None:
        log.info("%s: cancel for unknown meeting %s", req.resource.name, req.invitation.uid)
        return BookingResult("ignored", ["cancel for a meeting that is not booked"])
    events = req.invitation.events
    if any(e.recurrence_id is None for e in events):
        withdrawn = _withdraw(session, req, booking, approvals.CANCELLED, CANCELLED_WHY)
        cal.delete_booking(session, booking)
        return BookingResult("cancelled", replies=withdrawn)
    removed = sum(cal.remove_occurrences(session, booking, e.recurrence_id,
                                         and_future=e.this_and_future) for e in events)
    booking.calendar = booked_calendar.with_overrides(booking.calendar, events, req.zone,
                                                      cancel=True)
    if booking.horizon is not None and any(
            e.this_and_future and e.recurrence_id <= booking.horizon for e in events):
        booking.horizon = None  # every later occurrence is cancelled: the series is over
    return BookingResult("cancelled", [f"{removed} occurrence(s) removed"])


def _save_booking(session: Session, req: Request, booking: Booking | None, event: EventData,
                  instances: tuple[Instance, ...], horizon: dt.datetime | None = None) -> None:
    """The booking's row written (``horizon``: how far its series is materialized), with
    the occurrences ``instances`` added: a new one by Core INSERTs
    (``calendar_store.new_booking``: no entity), a booked one changed by the ORM's UPDATE."""
    values = {"sequence": event.sequence, "dtstamp": event.dtstamp,
              "organizer": event.organizer, "organizer_name": event.organizer_cn[:255],
              "attendee_count": len(event.attendees), "summary": event.summary,
              "calendar": booked_calendar.calendar_of(req.invitation), "status": "booked",
              "updated_at": req.now, "horizon": horizon}
    if booking is None:
        cal.new_booking(session, req.resource, instances, uid=req.invitation.uid,
                        created_at=req.now, pool_id=None, **values)
        return
    for name, value in values.items():
        setattr(booking, name, value)
    session.flush()
    cal.add_occurrences(session, req.resource, booking, instances)


def _offered(req: Request, answers: list[Answer]) -> list[str]:
    """The lines listing the alternatives, for a reply that declines something."""
    if not any(a.partstat == "DECLINED" for a in answers):
        return []
    return offer_text(req.offer, resolve(req.invitation.events[0].tzid, req.zone))


def _answer(req: Request, outcome: str, reasons: list[str], answers: list[Answer]) -> BookingResult:
    """The BookingResult with its replies (none when the organizer asked for none)."""
    if not wanted(req.invitation, req.resource):
        return BookingResult(outcome, reasons, offer=req.offer)
    # A partly accepted series: the acceptance, then one REPLY carrying a VEVENT (with its
    # RECURRENCE-ID) per declined occurrence. One message for all of them, not one each:
    # the ORGANIZER is not verified, and a thousand replies per request would make the
    # resource a mail cannon.
    groups = [answers] if outcome not in ("accepted", "tentative") or len(answers) == 1 \
        else [answers[:1], answers[1:]]
    event = req.invitation.events[0]
    try:
        with cpu_time.REPLY_BUILD:
            replies = [compose(req.invitation, event, req.resource, group, req.message_id,
                               req.now, req.hostname, req.delegation, _offered(req, group))
                       for group in groups]
            replies += _counter(req, outcome, reasons)
    except ValueError as exc:
        log.warning("%s: %s: no reply sent: %s", req.resource.name, req.invitation.uid, exc)
        return BookingResult(outcome, reasons, problems=[f"no reply sent: {exc}"],
                             offer=req.offer)
    return BookingResult(outcome, reasons, replies, offer=req.offer)
