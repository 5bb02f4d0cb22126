"""A resource's state at a moment, as the pages for people show it. Pure.

From a resource's bookings (``Entry``: plain values, already cut to what its
``calendar_details`` setting shows) and a moment ``at``:

- ``state_at``: free or busy at ``at``, and until when. Busy means the whole capacity is
  taken, decided by ``BusyTimes.full_during``, the check booking makes (``core.policy``):
  equipment with capacity 2 and one booking is still free, and a booking that does not
  block (transparent, or not booked yet) takes nothing;
- ``day_of``: the resource's local day of ``at`` (23 or 25 hours when the clocks change);
- ``timeline``: the day's bookings placed on it, in percent of the day, one lane per
  booking that overlaps another;
- ``upcoming``: the bookings not over yet;
- ``headline`` and ``clock``: the words and times a person reads, in the resource's zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from mr_engine.core.busy import Busy, BusyTimes

UTC = dt.timezone.utc
TICK_HOURS = (6, 12, 18)  # the local hours marked on a timeline


@dataclass(frozen=True)
class Entry:
    """One booked occurrence, as much of it as the details setting shows."""

    start: datetime  # UTC
    end: datetime  # UTC
    title: str  # "Busy" when the setting shows no subject
    organizer_name: str = ""
    blocks: bool = True  # takes capacity: booked or tentative, opaque, as booking counts it
    note: str = ""  # "tentative" (awaiting approval), or why it does not block ("shown as free")


@dataclass(frozen=True)
class Day:
    """A local calendar day of a zone, as UTC instants."""

    date: dt.date
    start: datetime  # local midnight, UTC
    end: datetime  # the next local midnight, UTC


@dataclass(frozen=True)
class State:
    busy: bool  # the whole capacity is taken at the moment
    until: datetime | None  # when that changes; None: not within the bookings given
    in_use: int  # blocking bookings in progress at the moment
    capacity: int  # how many at once (a room: 1)
    current: tuple[Entry, ...]  # bookings in progress at the moment, blocking or not


@dataclass(frozen=True)
class Block:
    """A booking on the day's timeline: where it starts and how long, in percent of the day."""

    entry: Entry
    left: float
    width: float
    lane: int  # 0, or the row below the bookings it overlaps


def day_of(at: datetime, zone: tzinfo) -> Day:
    """The day of ``zone`` that ``at`` falls on."""
    date = at.astimezone(zone).date()
    return Day(date, _midnight(date, zone), _midnight(date + dt.timedelta(days=1), zone))


def _midnight(date: dt.date, zone: tzinfo) -> datetime:
    return _local(date, 0, zone)


def state_at(entries: Sequence[Entry], at: datetime, capacity: int) -> State:
    """Free or busy at ``at`` and until when, from the bookings around it.

    Saturation changes only where a blocking booking starts or ends, so the state lasts
    until the first of those instants after ``at`` where it differs (half-open: a meeting
    ending at 10:00 leaves the resource free at 10:00).
    """
    blocking = [e for e in entries if e.blocks]
    busy_times = BusyTimes(tuple(Busy(e.start, e.end) for e in blocking))

    def full(moment: datetime) -> bool:
        return busy_times.full_during(moment, moment, capacity)

    busy = full(at)
    changes = sorted({t for e in blocking for t in (e.start, e.end) if t > at})
    until = next((t for t in changes if full(t) != busy), None)
    current = tuple(e for e in entries if e.start <= at < e.end)
    return State(busy, until, sum(e.blocks for e in current), capacity, current)


def upcoming(entries: Sequence[Entry], at: datetime, limit: int) -> tuple[Entry, ...]:
    """The first ``limit`` bookings not over at ``at`` (the ones in progress first)."""
    return tuple(sorted((e for e in entries if e.end > at), key=lambda e: e.start)[:limit])


def timeline(entries: Sequence[Entry], day: Day) -> tuple[Block, ...]:
    """The bookings overlapping ``day``, cut to it, placed in percent of its length."""
    inside = sorted((e for e in entries if e.start < day.end and e.end > day.start),
                    key=lambda e: (e.start, e.end))
    lane_ends: list[datetime] = []  # the end of the last booking in each lane
    return tuple(_place(e, day, _lane(e, lane_ends)) for e in inside)


def _lane(entry: Entry, lane_ends: list[datetime]) -> int:
    """The first lane free at the entry's start (entries come by start), which it takes."""
    lane = next((i for i, end in enumerate(lane_ends) if end <= entry.start), len(lane_ends))
    if lane == len(lane_ends):
        lane_ends.append(entry.end)
    else:
        lane_ends[lane] = entry.end
    return lane


def _place(entry: Entry, day: Day, lane: int) -> Block:
    left = position(max(entry.start, day.start), day)
    return Block(entry, left, round(position(min(entry.end, day.end), day) - left, 3), lane)


def position(moment: datetime, day: Day) -> float:
    """Where ``moment`` lies in ``day``, in percent (0 at midnight, 100 at the next)."""
    length = (day.end - day.start).total_seconds()
    return round(100 * (moment - day.start).total_seconds() / length, 3)


def clock(moment: datetime, zone: tzinfo, day: Day) -> str:
    """``14:00`` on ``day``; ``Tue 3 Mar 14:00`` on another day (the local time of ``zone``)."""
    local = moment.astimezone(zone)
    if local.date() == day.date:
        return f"{local:%H:%M}"
    return f"{local:%a} {local.day} {local:%b} {local:%H:%M}"


def headline(state: State, zone: tzinfo, day: Day) -> str:
    """What the door says: "Free until 14:00", "Busy until 15:00".

    Free with nothing taking the resource for the rest of the day says only "Free" (a
    booking tomorrow is in the next bookings, not the headline); busy past midnight says
    until when with the day ("Busy until Tue 3 Mar 10:00").
    """
    if not state.busy:
        return "Free" if state.until is None or state.until >= day.end \
            else f"Free until {clock(state.until, zone, day)}"
    return "Busy" if state.until is None else f"Busy until {clock(state.until, zone, day)}"


def status(state: State, zone: tzinfo, day: Day) -> str:
    """The list's word for the state: "Free now", or when it is busy until."""
    return headline(state, zone, day) if state.busy else "Free now"


def stamp(moment: datetime, zone: tzinfo) -> str:
    """``Mon 2 Mar 2026 09:00``, the local time of ``zone``: the moment a page shows."""
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def ticks(day: Day, zone: tzinfo) -> tuple[tuple[str, float], ...]:
    """The timeline's hour marks: each one's label and position (on a DST day too)."""
    return tuple((f"{hour:02d}:00", position(_local(day.date, hour, zone), day))
                 for hour in TICK_HOURS)


def _local(date: dt.date, hour: int, zone: tzinfo) -> datetime:
    return datetime.combine(date, dt.time(hour), zone).astimezone(UTC)
