"""What a declined organizer may ask for instead: free times on the same resource, and other
resources free for the whole request. Pure: plain data and ``now`` in, plain data out.

*Free* is what booking means by it, checked by booking's own rules (``core.policy``): a
proposed time passes the occurrence rules (duration, working hours, and the conflict check
``BusyTimes.full_during`` at the resource's capacity, whatever ``decline_conflict`` says, as
a person looking for a free slot wants one nobody holds), lies in the booking window and
not in the past. Another resource passes them for every occurrence of the request, and the
seats rule too.

**Times.** Up to ``SHOWN`` starts of the same duration, for the request's first occurrence
that the rules refuse (a single meeting: the meeting). The starts are on a grid of quarter
hours (``GRID``): quarter hours of UTC are quarter hours of every zone in use today (all
offsets are whole quarter hours), so a daylight-saving change skips or repeats wall-clock
times without a special case, and no proposal is at a time that does not exist. The
requested day (in the resource's zone) comes first, nearest to the requested start; then
each following day, up to ``DAYS`` days, nearest to the requested time of day.

**Resources.** Of the requested resource's kind, members of one of its pools first, then
by name; a room needs enough seats for the people invited (one whose seats are unknown
counts only when seats were not the reason of the decline).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from mr_engine.core import policy
from mr_engine.core.busy import BusyTimes
from mr_engine.core.policy import People, RequestFacts, ResourceFacts
from mr_engine.core.recurrence import Instance
from mr_engine.core.resource_settings import ResourceSettings
from mr_engine.core.timezones import format_span, iso_utc

__all__ = ["Alternatives", "Candidate", "GRID", "DAYS", "Option", "SHOWN", "Slot",
           "free_resources", "free_times", "offered_for", "preference", "search_span", "seats_declined",
           "text", "times_help"]

GRID = timedelta(minutes=15)
DAYS = 14  # the requested day and the 13 after it
SHOWN = 3
_GRID_SECONDS = int(GRID.total_seconds())


@dataclass(frozen=True)
class Slot:
    """A proposed time, ``[start, end)`` in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Option:
    """Another resource the organizer may invite instead."""

    name: str  # the user name
    address: str
    kind: str  # "room" | "equipment"
    seats: int  # 0: unknown
    capacity: int
    pooled: bool = False  # a member of a pool the requested resource is in
    fullname: str = ""  # its display name, "" for none


@dataclass(frozen=True)
class Alternatives:
    """What a decline offers (either may be empty)."""

    times: tuple[Slot, ...] = ()
    resources: tuple[Option, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.times or self.resources)

    def as_json(self) -> dict[str, Any]:
        """``{"times": [{"start", "end"}], "resources": [{"name", ...}]}``, times ISO in UTC."""
        return {"times": [{"start": iso_utc(s.start), "end": iso_utc(s.end)}
                          for s in self.times],
                "resources": [dataclasses.asdict(o) for o in self.resources]}


@dataclass(frozen=True)
class Candidate:
    """Another resource as the rules see it: its settings, its busy times around the
    request, its zone."""

    option: Option
    settings: ResourceSettings
    busy: BusyTimes
    zone: tzinfo = timezone.utc


# --- which declines offer what ----------------------------------------------------------------

_TIME_CAUSES = (policy.CONFLICT_ON, policy.OUTSIDE_HOURS)


def _cured_by_time(reason: str) -> bool:
    return reason.startswith(_TIME_CAUSES)


def _seats(reason: str) -> bool:
    return policy.TOO_MANY_PEOPLE in reason


def offered_for(reasons: Sequence[str]) -> bool:
    """Whether a decline for ``reasons`` lists alternatives: conflicts, working hours, seats."""
    return any(_cured_by_time(r) or _seats(r) for r in reasons)


def times_help(reasons: Sequence[str]) -> bool:
    """Whether another time may cure it (a room too small is too small at any time)."""
    return any(_cured_by_time(r) for r in reasons)


def seats_declined(reasons: Sequence[str]) -> bool:
    """Whether the seats were a reason: then only rooms of known, enough seats are offered."""
    return any(_seats(r) for r in reasons)


# --- times ------------------------------------------------------------------------------------

def _strict(settings: ResourceSettings) -> ResourceSettings:
    return dataclasses.replace(settings, decline_conflict=True)


def _facts(occurrences: Sequence[Instance], busy: BusyTimes, zone: tzinfo,
           people: int = 0) -> RequestFacts:
    return RequestFacts(People(individuals=people), False, tuple(occurrences), busy, zone,
                        ResourceFacts(zone=zone))


def _bookable(slot: Instance, facts: RequestFacts, settings: ResourceSettings,
              now: datetime) -> bool:
    """The occurrence rules pass (conflicts checked), in the window, not in the past."""
    single = dataclasses.replace(facts, occurrences=(slot,))
    return slot.start >= now and policy.beyond_booking_window(single, settings, now) is None \
        and policy.occurrence_problem(slot, facts, settings, now) is None


def _target(live: Sequence[Instance], facts: RequestFacts, settings: ResourceSettings,
            now: datetime) -> Instance:
    """The first occurrence the rules refuse; the first one when none is refused."""
    return next((i for i in live if policy.occurrence_problem(i, facts, settings, now)),
                live[0])


def _quarters(day: date, zone: tzinfo) -> list[datetime]:
    """Every grid start (UTC) whose local date in ``zone`` is ``day``."""
    midnight = datetime.combine(day, time(0), tzinfo=zone).astimezone(timezone.utc)
    first = int(midnight.timestamp()) // _GRID_SECONDS * _GRID_SECONDS - 3600
    moment = datetime.fromtimestamp(first, timezone.utc)
    found = []
    while moment.astimezone(zone).date() <= day:
        if moment.astimezone(zone).date() == day:
            found.append(moment)
        moment += GRID
    return found


def _clock(moment: datetime, zone: tzinfo) -> int:
    local = moment.astimezone(zone)
    return local.hour * 60 + local.minute


def _ordered(wanted: Instance, zone: tzinfo) -> Iterator[datetime]:
    """The grid's starts in the order they are offered: the requested day by distance from
    the requested start, then each later day by distance from its time of day."""
    first = wanted.start.astimezone(zone).date()
    yield from sorted(_quarters(first, zone), key=lambda s: (abs(s - wanted.start), s))
    clock = _clock(wanted.start, zone)
    for offset in range(1, DAYS):
        starts = _quarters(first + timedelta(days=offset), zone)
        yield from sorted(starts, key=lambda s: (abs(_clock(s, zone) - clock), s))


def free_times(occurrences: Sequence[Instance], busy: BusyTimes, settings: ResourceSettings,
               zone: tzinfo, now: datetime, shown: int = SHOWN) -> tuple[Slot, ...]:
    """Up to ``shown`` free times like the first refused occurrence, nearest first.

    ``busy``: the resource's other bookings from the requested day to ``DAYS`` days
    after it; ``zone``: the resource's (working hours and days are read in it)."""
    live = [i for i in occurrences if not i.cancelled]
    if not live:
        return ()
    strict = _strict(settings)
    facts = _facts(live, busy, zone)
    wanted = _target(live, facts, strict, now)
    length = wanted.end - wanted.start
    found: list[Slot] = []
    for start in _ordered(wanted, zone):
        slot = dataclasses.replace(wanted, start=start, end=start + length)
        if start != wanted.start and _bookable(slot, facts, strict, now):
            found.append(Slot(slot.start, slot.end))
            if len(found) == shown:
                break
    return tuple(found)


def search_span(occurrences: Sequence[Instance], zone: tzinfo) -> tuple[datetime, datetime]:
    """The UTC span whose busy times ``free_times`` needs: the requested days, from the
    first occurrence's day to ``DAYS`` days after the last one's (a day of slack either
    side for the zone)."""
    live = [i for i in occurrences if not i.cancelled] or list(occurrences)
    first = min(i.start for i in live).astimezone(zone).date()
    last = max(i.end for i in live).astimezone(zone).date()
    start = datetime.combine(first - timedelta(days=1), time(0), tzinfo=timezone.utc)
    return start, datetime.combine(last + timedelta(days=DAYS + 1), time(0),
                                   tzinfo=timezone.utc)


# --- other resources --------------------------------------------------------------------------

def _seats_enough(candidate: Candidate, people: int, need_known: bool) -> bool:
    seats = candidate.settings.seats
    if candidate.option.kind != "room" or people <= 0:
        return True
    return seats >= people or (seats == 0 and not need_known)


def _free_for_all(candidate: Candidate, live: Sequence[Instance], people: int,
                  now: datetime) -> bool:
    """Every occurrence passes the candidate's rules, and so does the seats rule."""
    strict = _strict(candidate.settings)
    facts = _facts(live, candidate.busy, candidate.zone, people)
    return policy.too_many_people(facts, strict, now) is None \
        and all(_bookable(i, facts, strict, now) for i in live)


def free_resources(kind: str, candidates: Sequence[Candidate],
                   occurrences: Sequence[Instance], now: datetime, people: int = 0,
                   need_known_seats: bool = False, shown: int = SHOWN) -> tuple[Option, ...]:
    """Up to ``shown`` resources of ``kind`` free for the whole request: pool members
    first, then by name. ``people``: the people invited (``itip.people_invited``);
    ``need_known_seats``: the decline was for seats, so unknown seats do not do."""
    live = [i for i in occurrences if not i.cancelled]
    fitting = [c for c in candidates
               if c.option.kind == kind and live
               and _seats_enough(c, people, need_known_seats)
               and _free_for_all(c, live, people, now)]
    fitting.sort(key=lambda c: preference(c.option))
    return tuple(c.option for c in fitting[:shown])


def preference(option: Option) -> tuple[bool, str]:
    """The order resources are offered in: pool members first, then by name."""
    return (not option.pooled, option.name.casefold())


# --- in words ---------------------------------------------------------------------------------

def _described(option: Option) -> str:
    size = f"{option.seats} seats" if option.kind == "room" and option.seats \
        else f"capacity {option.capacity}" if option.kind == "equipment" else option.kind
    return f"{option.fullname or option.name} <{option.address}> ({size})"


def text(offer: Alternatives, zone: tzinfo) -> list[str]:
    """The lines a decline's text part lists the alternatives in (times in ``zone``)."""
    lines: list[str] = []
    if offer.times:
        lines += ["Free at these times:",
                  *(f"- {format_span(s.start, s.end, zone)}" for s in offer.times)]
    if offer.resources:
        lines += ["Free instead (invite one of them):",
                  *(f"- {_described(o)}" for o in offer.resources)]
    return lines
