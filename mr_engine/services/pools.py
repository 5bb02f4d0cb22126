"""Pools (resource collections, as Kolab has them): a meeting request to a pool's address
books one free member, and the replies follow RFC 5546 §3.2.2.3 delegation.

Each member is asked with its own booking rules (``booking.verdict``: no second rule set)
whether it takes every occurrence; ``core.pool_choice`` picks among those that would. The
member books it as if it had been invited (``booking.process``), its booking remembers the
pool (``Booking.pool_id``), and two replies are queued in the same transaction: the pool's
PARTSTAT=DELEGATED with DELEGATED-TO the member, the member's ACCEPTED with DELEGATED-FROM
the pool. An update stays with its member while it fits there, else it moves to another
free member (the old booking is freed) or the pool declines; a CANCEL frees it.

``pick`` is the same choice without booking anything (``mr-engine explain``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core.alternatives import Alternatives, offered_for, text as offer_text
from mr_engine.core.itip import Invitation, is_attendee, people_invited
from mr_engine.core.pool_choice import Candidate, booked_time, choose, day_of, merged
from mr_engine.core.reply import Answer, Delegation, build_reply, verb
from mr_engine.core.timezones import resolve
from mr_engine.services import alternatives, booking
from mr_engine.services.booking import BookingResult, Incoming, Request
from mr_engine.services.replies import OutgoingReply, compose, summarize, wanted
from mr_engine.store import calendar_store as cal
from mr_engine.store import directory
from mr_engine.store.db import lock_mailbox
from mr_engine.store.models import Booking, Group, Mailbox

log = logging.getLogger(__name__)

__all__ = ["Pick", "Route", "pick", "process", "route"]

NONE_FREE = "no member of the pool is free"
T = TypeVar("T")


@dataclass(frozen=True)
class Pick:
    """The member a pool gives the request to (None: none is free), and how each stood."""

    member: Mailbox | None
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Route:
    """A calendar message that is the pool's: ``here`` when this delivery processes it (the
    pool's first member by name does; the other members' copies are not filed)."""

    pool: Group
    here: bool


def members(session: Session, pool: Group) -> list[Mailbox]:
    """The members that may take requests (they auto-accept or auto-process), by name."""
    return [m for m in directory.nested_members(session, pool) if m.mr_accept or m.mr_process]


def route(session: Session, recipient: str, mailbox: Mailbox, incoming: Incoming,
          settings: Settings, pool_addresses: frozenset[str] | None = None) -> Route | None:
    """Whether a delivery to ``mailbox`` (at RCPT ``recipient``) is a pool's request: sent
    to the pool's address, or to a member's own address naming its pool as ATTENDEE (the
    organizer's update after a delegation goes to both). ``pool_addresses``: every pool's
    (``directory.pool_addresses``), when the caller read them once for many deliveries."""
    if pool_addresses is not None and not pool_addresses:
        return None  # no pools at all: most sites, every request
    inv = incoming.invitation(zoneinfo.ZoneInfo(settings.default_timezone))  # zone: moot
    if not isinstance(inv, Invitation) or inv.method not in ("REQUEST", "CANCEL"):
        return None
    invited = {a.address for e in inv.events for a in e.attendees}
    addresses = [*directory.address_forms(recipient), *invited]
    if pool_addresses is not None and pool_addresses.isdisjoint(addresses):
        return None
    # One query for both questions below: a delivery to a non-pool costs a single SELECT.
    found = directory.pools_among(session, addresses)
    pool = directory.first_at(found, recipient)
    if pool is not None:
        first = directory.nested_members(session, pool)[:1]
        named = pool.email is not None and is_attendee(inv, [pool.email]) is not None
        return Route(pool, first == [mailbox]) if named else None
    if mailbox.resource_type == "none":
        return None
    for pool in found:  # by name; none is at the recipient's address (just checked)
        if pool.email_lower in invited and mailbox in directory.nested_members(session, pool):
            return Route(pool, True)
    return None


def _requests(session: Session, pool: Group, incoming: Incoming, settings: Settings,
              now: dt.datetime) -> list[Request]:
    """The request as each member reads it (in its own zone), answering DELEGATED-FROM."""
    found = [booking.read_request(m, incoming, settings, now, attendee=pool.email)
             for m in members(session, pool)]
    delegation = Delegation("DELEGATED-FROM", pool.email or "")
    return [dataclasses.replace(r, delegation=delegation) for r in found if r is not None]


def _candidate(session: Session, req: Request, exclude: int | None) -> Candidate:
    """The member as the choice sees it: free for every occurrence, its hours that day."""
    _, decision = booking.verdict(session, req, exclude)
    free = decision.accepted and not decision.declined_instances \
        and not decision.needs_approval
    reasons = decision.reasons + tuple(r for _, r in decision.declined_instances)
    if decision.needs_approval:
        reasons += ("the member's bookings need approval",)
    first = min((i.start for i in decision.booked), default=None)
    if not free or first is None:
        return Candidate(req.resource.name, free, reasons=reasons)
    start, end = day_of(first, req.zone)
    busy = cal.busy_intervals(session, req.resource, start, end, exclude)
    return Candidate(req.resource.name, True, booked_time(busy, start, end))


def _choice(session: Session, reqs: list[Request], held: Booking | None) -> tuple[
        Request | None, tuple[Candidate, ...]]:
    """The member that takes the request: the one holding it while it still fits there,
    else the choice among the free ones."""
    exclude = held.id if held is not None else None
    candidates = tuple(_candidate(session, r, exclude) for r in reqs)
    for req, c in zip(reqs, candidates):
        if held is not None and req.resource.id == held.resource_id and c.free:
            return req, candidates
    chosen = choose(candidates)
    taker = next((r for r in reqs if chosen is not None and r.resource.name == chosen.name), None)
    return taker, candidates


def pick(session: Session, pool: Group, incoming: Incoming, settings: Settings,
         now: dt.datetime) -> Pick:
    """Which member the pool would give the request to, booking and queuing nothing."""
    reqs = _requests(session, pool, incoming, settings, now)
    held = cal.find_pool_booking(session, pool.id, reqs[0].invitation.uid) if reqs else None
    taker, candidates = _choice(session, reqs, held)
    return Pick(taker.resource if taker else None, candidates)


def process(session: Session, pool: Group, incoming: Incoming, settings: Settings,
            now: dt.datetime) -> BookingResult | None:
    """Apply a REQUEST or CANCEL sent to the pool; None when it is not one (then it is
    delivered as mail). The members are locked (by id, one order for every process)."""
    reqs = _requests(session, pool, incoming, settings, now)
    if not reqs:
        return None
    for req in sorted(reqs, key=lambda r: r.resource.id):
        lock_mailbox(session, req.resource.id)
    inv = reqs[0].invitation
    held = cal.find_pool_booking(session, pool.id, inv.uid)
    if inv.method == "CANCEL":
        return _cancel(session, reqs, held)
    old = booking.stale(inv.events[0], held) if held is not None else None
    if old:
        return BookingResult("ignored", [old])
    taker, candidates = _choice(session, reqs, held)
    if taker is None:
        return _decline(session, pool, reqs, held, candidates)
    return _book(session, pool, taker, held, reqs)


def _cancel(session: Session, reqs: list[Request], held: Booking | None) -> BookingResult:
    """A CANCEL to the pool (or to the member) frees the member's booking (also of a
    member that has left the pool since)."""
    if held is None:
        return BookingResult("ignored", ["cancel for a meeting that is not booked"])
    holder = next((r for r in reqs if r.resource.id == held.resource_id), None)
    if holder is None:
        cal.delete_booking(session, held)
        return BookingResult("cancelled")
    return booking.process(session, holder)


def _book(session: Session, pool: Group, taker: Request, held: Booking | None,
          reqs: list[Request]) -> BookingResult:
    """The member books it; a booking another member held is freed (and that member
    says so). Both delegation replies come first, the member's own extras after."""
    moved: list[OutgoingReply] = []
    if held is not None and held.resource_id != taker.resource.id:
        previous = next((r for r in reqs if r.resource.id == held.resource_id), None)
        moved = _moved_away(previous, taker.resource) if previous is not None else []
        cal.delete_booking(session, held)
    result = booking.process(session, taker)
    booked = cal.find_booking(session, taker.resource.id, taker.invitation.uid)
    if booked is not None:
        booked.pool_id = pool.id
    if result.outcome == "accepted":
        delegated = _pool_reply(pool, taker, "DELEGATED", f"to {_who(taker.resource)}",
                                Delegation("DELEGATED-TO", taker.resource.email))
        result.replies[:0] = delegated
        result.reasons.insert(0, f"delegated to {taker.resource.name}")
    result.replies += moved
    log.info("pool %s: %s: %s by %s", pool.name, taker.invitation.uid, result.outcome,
             taker.resource.name)
    return result


def _decline(session: Session, pool: Group, reqs: list[Request], held: Booking | None,
             candidates: tuple[Candidate, ...]) -> BookingResult:
    """No member is free: the pool declines, listing the alternatives (``_offer``), and a
    booking a member held is freed."""
    exclude = held.id if held is not None else None
    offer = _offer(session, reqs, candidates, exclude)
    if held is not None:
        cal.delete_booking(session, held)
    reasons = [NONE_FREE] + [f"{c.name}: {summarize(c.reasons)}" for c in candidates]
    lines = offer_text(offer, resolve(reqs[0].invitation.events[0].tzid, reqs[0].zone))
    replies = _pool_reply(pool, reqs[0], "DECLINED", summarize(reasons), offer=lines)
    return BookingResult("declined", reasons, replies, offer=offer)


def _offer(session: Session, reqs: list[Request], candidates: tuple[Candidate, ...],
           exclude: int | None) -> Alternatives:
    """The times some member is free and other resources of the kind
    (``services.alternatives`` for each member, ``merged``)."""
    offers, start = [], None
    for req, c in zip(reqs, candidates):
        instances, _ = booking.verdict(session, req, exclude)
        live = [i for i in instances if not i.cancelled]
        if not live or not offered_for(c.reasons):
            continue
        start = start or live[0].start
        people = people_invited(req.invitation.events[0], [req.resource.email])
        offers.append(alternatives.alternatives(
            session, req.resource, live, req.now, settings=req.settings, people=people,
            reasons=list(c.reasons), exclude=exclude))
    if start is None:
        return Alternatives()
    return merged(offers, start, [r.resource.name for r in reqs])


def _who(member: Mailbox) -> str:
    return f"{member.fullname or member.name} <{member.email}>"


def _answers(req: Request, partstat: str, note: str) -> list[Answer]:
    return [Answer(e, partstat, note, e.recurrence_id) for e in req.invitation.events]


def _moved_away(previous: Request, taker: Mailbox) -> list[OutgoingReply]:
    """The member that held the meeting declines it: it moved to ``taker``."""
    answers = _answers(previous, "DECLINED", f"moved to {_who(taker)}")
    if not wanted(previous.invitation, previous.resource):
        return []
    reply = _composed(previous, lambda: compose(
        previous.invitation, previous.invitation.events[0], previous.resource, answers,
        previous.message_id, previous.now, previous.hostname, previous.delegation))
    return [] if reply is None else [reply]


def _pool_reply(pool: Group, req: Request, partstat: str, note: str,
                delegation: Delegation | None = None,
                offer: list[str] | None = None) -> list[OutgoingReply]:
    """The pool's own REPLY as its ATTENDEE (none when the organizer asked for none)."""
    inv, event = req.invitation, req.invitation.events[0]
    me = is_attendee(inv, [pool.email or ""])
    if not event.organizer or event.organizer == (pool.email_lower or "") \
            or (me is not None and not me.rsvp):
        return []
    answers = _answers(req, partstat, note)
    content = _composed(req, lambda: build_reply(
        inv, answers, pool.email or "", pool.name, req.message_id, req.now, req.hostname,
        note="\n".join(offer or ()), delegation=delegation))
    if content is None:
        return []
    return [OutgoingReply(pool.email or "", event.organizer, f"{verb(answers)}: {event.summary}",
                          content)]


def _composed(req: Request, build: Callable[[], T]) -> T | None:
    """The composed reply, or None (logged) when the organizer's address is unusable."""
    try:
        return build()
    except ValueError as exc:
        log.warning("%s: no reply sent: %s", req.invitation.uid, exc)
        return None
