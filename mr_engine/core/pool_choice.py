"""Which member of a pool (a resource collection) takes a meeting request. Pure.

Each member has been asked, with its own booking rules, whether it would accept the whole
request (every occurrence); of the members that would, the one with the fewest booked hours
on the day of the request's first occurrence (that day in the member's own zone) takes it,
ties by name. So the load spreads over the pool, and the same calendars always give the
same member.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import tzinfo

from mr_engine.core.alternatives import SHOWN, Alternatives
from mr_engine.core.busy import Busy

__all__ = ["Candidate", "booked_time", "choose", "day_of", "merged"]


@dataclass(frozen=True)
class Candidate:
    """One member as the choice sees it: ``free`` (its rules accept every occurrence),
    its ``booked`` time that day, and why it would not take the request."""

    name: str
    free: bool
    booked: dt.timedelta = dt.timedelta(0)
    reasons: tuple[str, ...] = ()


def day_of(moment: dt.datetime, zone: tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """The calendar day holding ``moment`` in ``zone``, as [start, end) in UTC. Computed
    from the local dates, so a day with a DST change is 23 or 25 hours long."""
    local = moment.astimezone(zone).date()
    start = dt.datetime.combine(local, dt.time(), zone)
    end = dt.datetime.combine(local + dt.timedelta(days=1), dt.time(), zone)
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def booked_time(busy: Iterable[Busy], start: dt.datetime, end: dt.datetime) -> dt.timedelta:
    """How much of [start, end) the busy intervals cover (overlaps counted each time: two
    units of equipment booked for an hour are two booked hours)."""
    total = dt.timedelta(0)
    for b in busy:
        total += max(min(b.end, end) - max(b.start, start), dt.timedelta(0))
    return total


def choose(candidates: Sequence[Candidate]) -> Candidate | None:
    """The free candidate with the least booked time, ties by name; None if none is free."""
    free = [c for c in candidates if c.free]
    return min(free, key=lambda c: (c.booked, c.name), default=None)


def merged(offers: Sequence[Alternatives], wanted: dt.datetime, members: Iterable[str],
           shown: int = SHOWN) -> Alternatives:
    """What a pool's decline offers: the times some member is free (each member's own
    offer), nearest to the ``wanted`` start first, and the other resources its members'
    offers name, not the members themselves (they were all asked)."""
    times = sorted({s for o in offers for s in o.times},
                   key=lambda s: (abs(s.start - wanted), s.start))
    inside = set(members)
    others = {r.name: r for o in offers for r in o.resources if r.name not in inside}
    return Alternatives(tuple(times[:shown]), tuple(others.values())[:shown])
