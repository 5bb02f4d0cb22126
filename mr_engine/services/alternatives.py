"""The alternatives to offer for a request a resource declines, gathered from the store.

``core.alternatives`` decides (free times on the grid, which resources, in what order); this
module reads what it decides on: the resource's busy times over the days searched, the other
resources of the directory with their busy times during the request, and which of them share
a pool with it (``directory.pools_of``). What the delivery's
declines, ``mr-engine explain`` and pools call. Reads only; the caller holds the session.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core import alternatives as core
from mr_engine.core.alternatives import Alternatives, Candidate, Option, Slot
from mr_engine.core.busy import BusyTimes
from mr_engine.core.recurrence import Instance
from mr_engine.services import finder, horizon
from mr_engine.store import calendar_store as cal
from mr_engine.store import directory
from mr_engine.store.directories import open_directory
from mr_engine.store.models import Mailbox

__all__ = ["Alternatives", "Option", "Slot", "alternatives", "pool_mates"]

def pool_mates(session: Session, resource: Mailbox) -> set[int]:
    """Ids of the members of the pools ``resource`` is in (itself among them)."""
    return {member.id for pool in directory.pools_of(session, resource)
            for member in directory.nested_members(session, pool)}


def _busy(session: Session, resource: Mailbox, start: dt.datetime, end: dt.datetime,
          exclude: int | None = None) -> BusyTimes:
    return BusyTimes(tuple(cal.busy_intervals(session, resource, start, end, exclude)))


def _span(live: Sequence[Instance]) -> tuple[dt.datetime, dt.datetime]:
    return min(i.start for i in live), max(i.end for i in live)


def _times(session: Session, resource: Mailbox, live: Sequence[Instance], now: dt.datetime,
           zone: dt.tzinfo, exclude: int | None) -> tuple[Slot, ...]:
    start, end = core.search_span(live, zone)
    busy = _busy(session, resource, start, end, exclude)
    return core.free_times(live, busy, resource.resource_settings, zone, now)


def _option(other: Mailbox, pooled: bool) -> Option:
    return Option(other.name, other.email, other.resource_type, other.resource_seats,
                  other.resource_capacity, pooled, other.fullname)


def _candidate(session: Session, other: Mailbox, option: Option, live: Sequence[Instance],
               settings: Settings) -> Candidate:
    return Candidate(option, other.resource_settings, _busy(session, other, *_span(live)),
                     horizon.zone_of(other, settings))


def _resources(session: Session, resource: Mailbox, live: Sequence[Instance],
               now: dt.datetime, settings: Settings, people: int,
               need_known_seats: bool) -> tuple[Option, ...]:
    """The first free ones in the order offered, reading the busy times of a few
    resources at a time (a decline runs in the write transaction; a site may have
    thousands of rooms): the core's answer over all of them, without reading them all."""
    mates = pool_mates(session, resource)
    others = sorted(((m, _option(m, m.id in mates))
                     for m in finder.resources(open_directory(settings, session))
                     if m.id != resource.id and m.resource_type == resource.resource_type),
                    key=lambda pair: core.preference(pair[1]))
    found: tuple[Option, ...] = ()
    for first in range(0, len(others), core.SHOWN):
        candidates = [_candidate(session, m, option, live, settings)
                      for m, option in others[first:first + core.SHOWN]]
        found += core.free_resources(resource.resource_type, candidates, live, now, people,
                                     need_known_seats, shown=core.SHOWN - len(found))
        if len(found) == core.SHOWN:
            break
    return found


def alternatives(session: Session, resource: Mailbox, instances: Sequence[Instance],
                 now: dt.datetime, *, settings: Settings = Settings(), people: int = 0,
                 reasons: Sequence[str] | None = None,
                 exclude: int | None = None) -> Alternatives:
    """What to offer instead of ``instances`` on ``resource``: free times like the first
    refused occurrence, and other resources of its kind free for all of them.

    ``people``: the people invited (``itip.people_invited``); ``reasons``: the decline's,
    when known (a decline for seats alone gets no times, and needs rooms of known seats);
    ``exclude``: the meeting's own booking on ``resource`` (an update), not in its way."""
    live = [i for i in instances if not i.cancelled]
    if not live:
        return Alternatives()
    zone = horizon.zone_of(resource, settings)
    times = _times(session, resource, live, now, zone, exclude) \
        if reasons is None or core.times_help(reasons) else ()
    need_known = reasons is not None and core.seats_declined(reasons)
    return Alternatives(times, _resources(session, resource, live, now, settings, people,
                                          need_known))
