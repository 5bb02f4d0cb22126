"""Load 5's calendar: an equipment resource (capacity 2) booked by series of 100 occurrences,
and the busy time it should show (the benchmark's own sweep, to check both servers with).

A day has 16 slots of 90 minutes; a *track* is one of the two units, one slot and, for a
weekly series, one weekday. Slots 0-9 hold weekly series (FREQ=WEEKLY;COUNT=100, two years
each), slots 10-15 weekday series (FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=100, twenty
weeks). A meeting starts 0, 15 or 30 minutes into its slot and lasts 30, 45 or 60 minutes,
so a track never overlaps itself: no unit is double-booked, as the booking path
(decline_conflict) guarantees; the resource is saturated where both units of a slot are
booked at once. Series are laid backwards in time from the end of the booking window
(every occurrence materialized, no horizon), each on the track that reaches least far back,
so all tracks go back about equally: 100,000 occurrences span about ten years, some 1,700
of them in a 60-day window.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from dataclasses import dataclass
from typing import Iterable, Iterator

from dateutil.rrule import rrulestr

from .messages import DOMAIN
from .store import Planned, Slot

CAPACITY = 2
SERIES_LENGTH = 100  # occurrences per series
SLOT = dt.timedelta(minutes=90)
WEEKLY_SLOTS = range(10)
WEEKDAY_SLOTS = range(10, 16)
BOOKING_WINDOW = dt.timedelta(days=180)  # the resource setting's default

Period = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class Track:
    unit: int
    slot: int
    weekday: int | None  # None: a weekday series, Monday to Friday

    @property
    def weeks(self) -> int:
        """How many weeks one series of the track spans."""
        return SERIES_LENGTH if self.weekday is not None else SERIES_LENGTH // 5

    @property
    def rule(self) -> str:
        if self.weekday is not None:
            return f"FREQ=WEEKLY;COUNT={SERIES_LENGTH}"
        return f"FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT={SERIES_LENGTH}"


def tracks() -> list[Track]:
    """Both units of a slot next to each other, so that even a small plan saturates."""
    weekly = [Track(unit, slot, day) for day in range(7) for slot in WEEKLY_SLOTS
              for unit in range(CAPACITY)]
    weekdays = [Track(unit, slot, None) for slot in WEEKDAY_SLOTS for unit in range(CAPACITY)]
    return weekly + weekdays


def last_monday(now: dt.datetime) -> dt.datetime:
    """Midnight UTC of the Monday on or before the end of the booking window."""
    end = (now + BOOKING_WINDOW).astimezone(dt.timezone.utc)
    day = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday())


def plan(occurrences: int, now: dt.datetime, seed: int = 5) -> list[Planned]:
    """``occurrences // 100`` series, each with its occurrences and its RRULE."""
    rng = random.Random(seed)
    anchor = last_monday(now)
    all_tracks = tracks()
    fronts = [(0, i) for i in range(len(all_tracks))]  # (-earliest week booked, track)
    out: list[Planned] = []
    for n in range(occurrences // SERIES_LENGTH):
        back, index = heapq.heappop(fronts)
        track = all_tracks[index]
        first_week = -back - rng.randrange(4) - track.weeks  # a gap of 0-3 weeks
        heapq.heappush(fronts, (-first_week, index))
        out.append(_series(f"fb-{n}@{DOMAIN}", track, anchor, first_week, rng))
    return out


def _series(uid: str, track: Track, anchor: dt.datetime, first_week: int,
            rng: random.Random) -> Planned:
    start = anchor + dt.timedelta(weeks=first_week, days=track.weekday or 0,
                                  minutes=15 * rng.randrange(3)) + SLOT * track.slot
    length = dt.timedelta(minutes=15 * rng.randrange(2, 5))
    rule = track.rule
    slots: list[Slot] = [(s, s, s + length) for s in expand(rule, start)]
    return uid, slots, rule


def expand(rule: str, start: dt.datetime) -> list[dt.datetime]:
    """The starts an RRULE yields from ``start`` (RFC 5545 §3.3.10; UTC, so no DST)."""
    return [s.astimezone(dt.timezone.utc) for s in rrulestr(rule, dtstart=start)]


def touching(series: Iterable[Planned], start: dt.datetime, end: dt.datetime) -> list[Planned]:
    """The series with an occurrence overlapping [start, end)."""
    return [p for p in series if any(s < end and e > start for _, s, e in p[1])]


def busy(series: Iterable[Planned], start: dt.datetime, end: dt.datetime,
         capacity: int) -> list[Period]:
    """Where at least ``capacity`` occurrences overlap inside [start, end): the periods
    clipped to the range, merged where they touch or overlap (RFC 5545 §3.8.2.6)."""
    edges = sorted(_edges(series, start, end))
    periods: list[Period] = []
    count, since = 0, start
    for moment, step in edges:
        if count < capacity <= count + step:
            since = moment
        elif count + step < capacity <= count:
            periods.append((since, moment))
        count += step
    return merge(periods)


def _edges(series: Iterable[Planned], start: dt.datetime,
           end: dt.datetime) -> Iterator[tuple[dt.datetime, int]]:
    """+1 where an occurrence begins, -1 where it ends; an end sorts before a begin at the
    same moment, and ``merge`` joins the periods that only touch there."""
    for _, slots, _ in series:
        for _, s, e in slots:
            if s < end and e > start:
                yield max(s, start), 1
                yield min(e, end), -1


def merge(periods: Iterable[Period]) -> list[Period]:
    out: list[Period] = []
    for s, e in sorted(periods):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out


def seconds(periods: Iterable[Period]) -> int:
    return int(sum((e - s).total_seconds() for s, e in periods))
