"""What others may see of a resource's calendar: free/busy, the ICS feed, published entries.

Each function reads through the session it is given (the caller holds the transaction) and
answers for one resource and one range (``core.freebusy.requested_range``). The HTTP front
end, the pages for people and ``mr-engine freebusy`` all use these. A pool's free/busy
(``pool_periods``) is busy where no member is free, made of its members' timelines.

Free/busy is asked for often (every organizer's client polls it) and a resource may hold
100,000 occurrences, so each process keeps every resource's ``Timeline`` (its periods, made
once by a sweep over the whole calendar) keyed by the resource's ``calendar_version`` and
capacity: a request costs the resource's row (``store.calendar_owners``, one small
indexed query that carries the version) and a bisect.
The store raises the version in the same transaction as any change of the occurrences.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
import threading
from typing import Any, NamedTuple
from urllib.parse import quote

from sqlalchemy.orm import Session

from mr_engine.core import feed, freebusy
from mr_engine.core.feed import Published
from mr_engine.core.freebusy import Period, Publisher, TimeRange, Timeline, freebusy_line
from mr_engine.core.ical_text import stream
from mr_engine.core.policy import effective_capacity
from mr_engine.core.resource_settings import ResourceSettings
from mr_engine.services import pools
from mr_engine.store import calendar_owners, calendar_store, directory
from mr_engine.store.calendar_owners import CalendarOwner, QuickOwners, QuickReadUnavailable
from mr_engine.store.directories import Directory, NotFound
from mr_engine.store.models import Group, Mailbox

__all__ = ["feed_text", "feed_url", "find_resource", "freebusy_periods", "freebusy_text",
           "new_calendar_token", "pool_freebusy_text", "pool_periods", "published_agenda",
           "published_owner", "published_pool", "quick_freebusy_text", "TIMELINES"]

# The statuses an occurrence is published with (anything else is not in the calendar).
_PUBLISHED = ("booked", "tentative")


def find_resource(directory: Directory, name: str) -> Mailbox | None:
    """The resource whose address or user name is ``name``; None for anything else (a
    user, a group, nobody)."""
    found = _by_address(directory, name) if "@" in name else _by_name(directory, name)
    return None if found is None or found.resource_type == "none" else found


def _by_name(directory: Directory, name: str) -> Mailbox | None:
    try:
        return directory.user(name)
    except NotFound:  # an unreachable directory is no answer: it goes up (503)
        return None


def _by_address(directory: Directory, address: str) -> Mailbox | None:
    """The one mailbox the address is its own (a group's address is not a resource's)."""
    found = directory.resolve(address)
    if len(found) == 1 and found[0].email_lower == _plain(address):
        return found[0]
    return _by_name(directory, address)


def _plain(address: str) -> str:
    """``user+detail@domain`` as ``user@domain``, lower-cased, as ``resolve`` reads it."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def feed_url(public_base: str, resource: Mailbox) -> str | None:
    """Where the resource's ICS feed is, with its token when it has one; None for a user."""
    if resource.resource_type == "none":
        return None
    url = f"{public_base}/calendars/{quote(resource.name, safe='')}.ics"
    return f"{url}?token={resource.calendar_token}" if resource.calendar_token else url


def new_calendar_token() -> str:
    """A secret for a feed URL: 32 URL-safe characters, 192 random bits."""
    return secrets.token_urlsafe(24)


class _Key(NamedTuple):
    version: int
    capacity: int


class TimelineCache:
    """Per process: each resource's free/busy ``Timeline`` for its calendar version.

    Entries are keyed by the database too (a process, a test run say, may read more than
    one). Reads take no lock (a dict lookup); building takes it, so that concurrent
    requests after a change sweep the calendar once. At most ``size`` resources are kept.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: dict[tuple[Any, int], tuple[_Key, Timeline]] = {}
        self._lock = threading.Lock()

    def cached(self, url: Any, owner: CalendarOwner) -> Timeline | None:
        """The owner's timeline if it is kept for its current version, else None."""
        found = self._entries.get((url, owner.id))
        return found[1] if found is not None and found[0] == _key_of(owner) else None

    def timeline(self, session: Session, owner: CalendarOwner) -> Timeline:
        key = _key_of(owner)
        where = (session.get_bind().url, owner.id)
        found = self._entries.get(where)
        if found is not None and found[0] == key:
            return found[1]
        with self._lock:
            found = self._entries.get(where)
            if found is None or found[0] != key:
                found = (key, _sweep(session, owner.id, key.capacity))
                self._keep(where, found)
            return found[1]

    def _keep(self, where: tuple[Any, int], entry: tuple[_Key, Timeline]) -> None:
        self._entries.pop(where, None)
        if len(self._entries) >= self.size:
            del self._entries[next(iter(self._entries))]  # the one kept longest
        self._entries[where] = entry


TIMELINES = TimelineCache()


def _key_of(owner: CalendarOwner) -> _Key:
    return _Key(owner.version, capacity_of(owner))


def capacity_of(owner: CalendarOwner) -> int:
    """How many bookings at once make the resource busy: as booking counts them."""
    return _capacity(owner.resource_type, owner.capacity)


@functools.lru_cache(maxsize=64)
def _capacity(kind: str, capacity: int) -> int:
    # Remembered: building the settings costs more than the rest of a cached answer.
    return effective_capacity(ResourceSettings(kind=kind, capacity=capacity))


def _sweep(session: Session, resource_id: int, capacity: int) -> Timeline:
    booked, tentative = calendar_store.opaque_occurrences(session, resource_id)
    return Timeline(tuple(freebusy.periods(booked, tentative, capacity)))


def published_owner(session: Session, name: str) -> CalendarOwner | None:
    """The resource whose free/busy ``name`` (an address or a user name) asks for; None
    when it names no resource (a user, a group, nobody)."""
    owner = calendar_owners.calendar_owner(session, name)
    return None if owner is None or owner.resource_type == "none" else owner


def freebusy_periods(session: Session, owner: CalendarOwner, span: TimeRange) -> list[Period]:
    """The resource's BUSY and BUSY-TENTATIVE periods in ``span``, clipped to it."""
    return TIMELINES.timeline(session, owner).between(span.start, span.end)


def freebusy_text(session: Session, owner: CalendarOwner, span: TimeRange,
                  now: dt.datetime) -> str:
    """The resource's VFREEBUSY for ``span`` (RFC 5545 §3.6.4), as iCalendar text."""
    return _vfreebusy(TIMELINES.timeline(session, owner), owner, span, now)


def quick_freebusy_text(quick: QuickOwners, name: str, span: TimeRange,
                        now: dt.datetime) -> str | None:
    """As ``freebusy_text`` without a session, when the owner's row can be read quickly
    (``calendar_owners.QuickOwners``) and its timeline is cached; None otherwise (the
    caller then takes the session path). Raises LookupError when ``name`` is no resource."""
    try:
        owner = quick.owner(name)
    except QuickReadUnavailable:
        return None
    if owner is None or owner.resource_type == "none":
        raise LookupError(name)
    timeline = TIMELINES.cached(quick.url, owner)
    return None if timeline is None else _vfreebusy(timeline, owner, span, now)


def published_pool(session: Session, name: str) -> Group | None:
    """The pool whose free/busy ``name`` (its address or group name) asks for, else None."""
    return directory.pool_named(session, name)


def _owner(member: Mailbox) -> CalendarOwner:
    return CalendarOwner(member.id, member.name, member.email, member.fullname,
                         member.resource_type, member.resource_capacity,
                         member.calendar_version)


def pool_periods(session: Session, pool: Group, span: TimeRange) -> list[Period]:
    """The pool's periods in ``span``: busy where none of the members that take requests
    is free (``freebusy.all_busy`` of their cached timelines)."""
    return freebusy.all_busy([freebusy_periods(session, _owner(m), span)
                              for m in pools.members(session, pool)])


def pool_freebusy_text(session: Session, pool: Group, span: TimeRange,
                       now: dt.datetime) -> str:
    """The pool's VFREEBUSY for ``span``, published as the pool (its address and name)."""
    lines = [freebusy_line(p) for p in pool_periods(session, pool, span)]
    return freebusy.vfreebusy(Publisher(pool.email or "", pool.name), span, now, lines)


def _vfreebusy(timeline: Timeline, owner: CalendarOwner, span: TimeRange,
               now: dt.datetime) -> str:
    lines = timeline.lines_between(span.start, span.end)
    return freebusy.vfreebusy(Publisher(owner.email, owner.fullname), span, now, lines)


def published_agenda(session: Session, resource: Mailbox, span: TimeRange) -> list[Published]:
    """The resource's booked occurrences overlapping ``span``, earliest first, each with
    only what its ``calendar_details`` setting shows (the feed's and the pages' view)."""
    level = resource.resource_settings.calendar_details
    entries = calendar_store.agenda(session, resource, span.start, span.end)
    return [feed.published(level, e) for e in entries if e.status in _PUBLISHED]


def feed_text(session: Session, resource: Mailbox, span: TimeRange, now: dt.datetime) -> str:
    """The resource's ICS feed for ``span``: one VEVENT per occurrence, as iCalendar text."""
    title = resource.fullname or resource.name
    return stream(feed.feed(title, published_agenda(session, resource, span), now))
