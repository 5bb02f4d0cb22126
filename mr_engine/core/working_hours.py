"""Working hours of a resource: the spec ``kopano-cli --mr-working-hours`` takes, and whether an
occurrence lies wholly inside them.

A spec is ``none`` (always open) or comma-separated items ``DAYS HH:MM-HH:MM``, where DAYS is
a day (``Mon``) or a range (``Mon-Fri``, ``Fri-Mon`` wraps over the weekend):
``Mon-Thu 08:00-18:00, Fri 08:00-14:00``. Times are wall-clock times of the resource's zone,
so 08:00 stays 08:00 across a daylight-saving change; ``24:00`` is the end of a day, and an
item cannot pass midnight (give two: ``Mon 22:00-24:00, Tue 00:00-06:00``). An occurrence is
inside when every minute of it is open, days that meet at midnight joining up.

Pure: parsing is cached, since the booking rules ask once per occurrence.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

__all__ = ["ALWAYS", "WorkingHours", "inside", "normalize", "parse"]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALWAYS = "none"
MINUTES_A_DAY = 24 * 60
_ITEM = re.compile(r"(?P<first>[A-Za-z]+)(?:\s*-\s*(?P<last>[A-Za-z]+))?\s+"
                   r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})")


@dataclass(frozen=True)
class Item:
    """One item of a spec: the weekdays (0 = Monday) it names, open from ``start`` to
    ``end`` (minutes of the day)."""

    first: int
    last: int
    start: int
    end: int

    @property
    def weekdays(self) -> tuple[int, ...]:
        count = (self.last - self.first) % 7 + 1
        return tuple((self.first + k) % 7 for k in range(count))

    def __str__(self) -> str:
        days = DAYS[self.first] if self.first == self.last \
            else f"{DAYS[self.first]}-{DAYS[self.last]}"
        return f"{days} {_clock(self.start)}-{_clock(self.end)}"


@dataclass(frozen=True)
class WorkingHours:
    """A parsed spec; no items means always open."""

    items: tuple[Item, ...] = ()

    def __str__(self) -> str:
        return ", ".join(map(str, self.items)) or ALWAYS

    def open_on(self, weekday: int) -> tuple[tuple[int, int], ...]:
        """The open spans of a weekday, merged where they meet or overlap."""
        spans = sorted((i.start, i.end) for i in self.items if weekday in i.weekdays)
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return tuple(merged)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day(name: str) -> int:
    for index, day in enumerate(DAYS):
        if name.lower() in (day.lower(), _FULL[index]):
            return index
    raise ValueError(f"unknown day {name!r} (use {', '.join(DAYS)})")


_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _minutes(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"not a time of day: {text!r} (00:00 to 24:00)")
    return hours * 60 + minutes


def _item(text: str) -> Item:
    match = _ITEM.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected DAYS HH:MM-HH:MM such as Mon-Fri 08:00-18:00, got {text!r}")
    first = _day(match["first"])
    last = _day(match["last"]) if match["last"] else first
    start, end = _minutes(match["start"]), _minutes(match["end"])
    if end <= start:
        raise ValueError(f"{text.strip()!r}: the end must be after the start "
                         "(past midnight, give two items)")
    return Item(first, last, start, end)


@functools.lru_cache(maxsize=256)
def parse(spec: str) -> WorkingHours:
    """The working hours a spec says; ValueError (saying why) for one that is not valid."""
    if spec.strip().lower() in (ALWAYS, ""):
        return WorkingHours()
    return WorkingHours(tuple(_item(part) for part in spec.split(",")))


def normalize(spec: str) -> str:
    """The spec as stored and shown: day names and times written the one way."""
    return str(parse(spec))


def _needed(day: date, start: datetime, end: datetime) -> tuple[int, int]:
    """The minutes of ``day`` that ``[start, end)`` (wall-clock times) covers."""
    low = start.hour * 60 + start.minute if day == start.date() else 0
    # A part of a minute past the hour is a minute used.
    high = end.hour * 60 + end.minute + bool(end.second or end.microsecond) \
        if day == end.date() else MINUTES_A_DAY
    return low, high


def inside(hours: WorkingHours, start: datetime, end: datetime, zone: tzinfo) -> bool:
    """Whether ``[start, end)`` lies wholly inside the working hours, read in ``zone``."""
    if not hours.items:
        return True
    local_start = start.astimezone(zone).replace(tzinfo=None)
    local_end = end.astimezone(zone).replace(tzinfo=None)
    day = local_start.date()
    while datetime.combine(day, datetime.min.time()) < local_end or day == local_start.date():
        low, high = _needed(day, local_start, local_end)
        if low < high and not any(s <= low and high <= e for s, e in hours.open_on(day.weekday())):
            return False
        day += timedelta(days=1)
    return True
