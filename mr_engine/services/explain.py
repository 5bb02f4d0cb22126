"""A meeting request's decision as delivery would make it, booking nothing: what
``mr-engine explain`` and ``kopano-mr-accept --dry-run`` print.

The request is read and processed as delivery reads and processes it
(``booking.read_request``, ``booking.process``), in the caller's transaction, which the
caller rolls back (``Database.rehearsal``): the outcome shown is delivery's own, and
nothing is booked, queued or filed. Beside it come every booking rule's result on the same
facts (``booking.explained``, ``core.explanation``), the bookings in conflict with only what
the resource's ``calendar_details`` lets through (``core.feed.published``, as the feed shows
them), and the alternatives the decline offers (``BookingResult.offer``). A pool's request
is processed as the pool's delivery does (``services.pools``), with the member it picks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core.alternatives import Alternatives
from mr_engine.core.explanation import RuleResult
from mr_engine.core.feed import Published
from mr_engine.core.freebusy import TimeRange
from mr_engine.core.recurrence import Instance
from mr_engine.services import availability, booking, horizon, pools
from mr_engine.services.booking import BookingResult, Incoming, Request
from mr_engine.store import calendar_store as cal
from mr_engine.store import directory
from mr_engine.store.directories import DirectoryError, NotFound, open_directory
from mr_engine.store.models import Group, Mailbox

__all__ = ["NotExplainable", "Report", "explain"]

_INSTANT = dt.timedelta(microseconds=1)  # a zero-length occurrence is its start instant


class NotExplainable(Exception):
    """The message or USER is nothing delivery would decide on: one line saying why."""


@dataclass(frozen=True)
class Report:
    outcome: str  # as delivery's: accepted | tentative | declined | ignored | cancelled
    reasons: tuple[str, ...]
    rules: tuple[RuleResult, ...]  # none for a CANCEL, or a series that cannot be expanded
    conflicts: tuple[Published, ...]  # the bookings in the way, as the feed shows them
    alternatives: Alternatives = Alternatives()
    member: Mailbox | None = None  # the pool's member that takes the request
    judged: str = ""  # the resource whose rules and calendar are shown (a pool's member)
    details: str = "busy"  # the resource's calendar_details: what ``conflicts`` show
    zone: tzinfo = dt.timezone.utc  # the resource's, for times shown to people


def explain(session: Session, name: str, incoming: Incoming, settings: Settings,
            now: dt.datetime) -> Report:
    """What delivering ``incoming`` to the resource or pool ``name`` (a name or an address)
    would decide. Writes into ``session``: the caller rolls it back."""
    resource = _resource(session, settings, name)
    pool = _pool(session, name) if resource is None \
        else _routed(session, resource, incoming, settings)
    if pool is not None:
        return _for_pool(session, pool, incoming, settings, now)
    if resource is None:
        raise NotExplainable(f"no resource or pool {name!r}")
    return _for_resource(session, resource, incoming, settings, now)


def _resource(session: Session, settings: Settings, name: str) -> Mailbox | None:
    source = open_directory(settings, session)
    if "@" in name:
        return source.user_at(name)
    try:
        return source.user(name)
    except NotFound:
        return None


def _pool(session: Session, name: str) -> Group | None:
    if "@" in name:
        return directory.pool_at(session, name)
    try:
        group = directory.get_group(session, name)
    except DirectoryError:  # none of that name, or Everyone
        return None
    return group if group.mr_pool else None


def _routed(session: Session, resource: Mailbox, incoming: Incoming,
            settings: Settings) -> Group | None:
    """The pool whose request a member's own copy is (it names the pool as ATTENDEE), as
    delivery routes it; None for the member's own requests."""
    route = pools.route(session, resource.email, resource, incoming, settings)
    return None if route is None else route.pool


def _for_resource(session: Session, resource: Mailbox, incoming: Incoming,
                  settings: Settings, now: dt.datetime) -> Report:
    if not (resource.mr_accept or resource.mr_process):
        raise NotExplainable(f"{resource.name}: auto-accept of meeting requests is off: "
                             "delivery files the message in the Inbox")
    req = _request(resource, incoming, settings, now)
    return _report(session, req, booking.process(session, req))


def _for_pool(session: Session, pool: Group, incoming: Incoming, settings: Settings,
              now: dt.datetime) -> Report:
    """As the pool's delivery decides (``pools.process``); the rules shown are those of the
    member that takes the request, or of the first member when none is free."""
    takers = pools.members(session, pool)
    if not takers:
        raise NotExplainable(f"pool {pool.name} has no member that takes meeting requests")
    member = pools.pick(session, pool, incoming, settings, now).member
    req = _request(member or takers[0], incoming, settings, now, attendee=pool.email)
    result = pools.process(session, pool, incoming, settings, now)
    if result is None:  # not when its member read it as a request: said for safety
        raise NotExplainable(f"not a meeting request for the pool {pool.name}")
    return _report(session, req, result, member)


def _request(resource: Mailbox, incoming: Incoming, settings: Settings, now: dt.datetime,
             attendee: str | None = None) -> Request:
    """The request as delivery reads it for ``resource``; NotExplainable if it is none."""
    inv = incoming.invitation(horizon.zone_of(resource, settings))
    why = booking.unprocessable(resource, inv, attendee)
    req = None if why else booking.read_request(resource, incoming, settings, now, attendee)
    if req is None:
        raise NotExplainable(f"not a meeting request for {resource.name}: {why}")
    return req


def _report(session: Session, req: Request, result: BookingResult,
            member: Mailbox | None = None) -> Report:
    """The report of ``result``, with every rule on the facts processing judged."""
    own = cal.find_booking(session, req.resource.id, req.invitation.uid)
    explained = booking.explained(session, req, own.id if own else None) \
        if req.invitation.method == "REQUEST" else None
    shown = {"member": member, "judged": req.resource.name,
             "details": req.resource.resource_settings.calendar_details, "zone": req.zone}
    if explained is None:
        return Report(result.outcome, tuple(result.reasons), (), (), result.offer, **shown)
    return Report(result.outcome, tuple(result.reasons), explained.rules,
                  _in_the_way(session, req, explained.conflicts), result.offer, **shown)


def _overlaps(occurrence: Instance, entry: Published) -> bool:
    return entry.start < max(occurrence.end, occurrence.start + _INSTANT) \
        and occurrence.start < entry.end


def _in_the_way(session: Session, req: Request,
                conflicts: Sequence[Instance]) -> tuple[Published, ...]:
    """The other bookings overlapping the occurrences in conflict, as the feed shows them."""
    if not conflicts:
        return ()
    span = TimeRange(min(i.start for i in conflicts), max(i.end for i in conflicts) + _INSTANT)
    return tuple(entry for entry in availability.published_agenda(session, req.resource, span)
                 if entry.uid != req.invitation.uid and not entry.transparent
                 and any(_overlaps(i, entry) for i in conflicts))
