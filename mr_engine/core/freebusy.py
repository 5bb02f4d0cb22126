"""Free/busy of a resource (RFC 5545 §3.6.4): the range asked for, the periods, the VFREEBUSY.

A resource is BUSY where its booked occurrences use its whole capacity (the peak
concurrency that booking checks, ``busy.saturated``), and BUSY-TENTATIVE (§3.2.9) where
they do only once tentative bookings (pending approval) are counted too. The periods of a
whole calendar are made once into a ``Timeline`` with each period's FREEBUSY line, so a
request is a bisect and a slice. Pure: plain values and ``now`` in.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from .busy import Busy, saturated
from .ical_text import CALENDAR_END, address_line, calendar_head, escape_text, stream, utc_text

BUSY = "BUSY"
TENTATIVE = "BUSY-TENTATIVE"

DEFAULT_BEFORE = dt.timedelta(days=7)  # the default range: now - 7 days ...
DEFAULT_AFTER = dt.timedelta(days=60)  # ... to now + 60 days
LONGEST_RANGE = dt.timedelta(days=366)


class RangeError(ValueError):
    """A range that cannot be asked for; the message says why, for the person asking."""


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 date (midnight UTC) or date-time (UTC when it has no offset), in UTC,
    as free/busy ranges are given (§3.6.4); ValueError when it is neither."""
    text = text.strip()
    if len(text) == 10 or (len(text) == 8 and text.isdigit()):
        day = dt.date.fromisoformat(text)
        value = dt.datetime(day.year, day.month, day.day)
    else:
        value = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


@dataclass(frozen=True)
class TimeRange:
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC, after start


def requested_range(start: dt.datetime | None, end: dt.datetime | None,
                    now: dt.datetime) -> TimeRange:
    """The range asked for: by default now - 7 days to now + 60 days, at most 366 days.

    A start after the default end gets the default length (67 days) as its end."""
    start = start or now - DEFAULT_BEFORE
    end = end or _default_end(start, now)
    if end <= start:
        raise RangeError("end must be after start")
    if end - start > LONGEST_RANGE:
        raise RangeError(f"the range is longer than {LONGEST_RANGE.days} days")
    return TimeRange(start, end)


def _default_end(start: dt.datetime, now: dt.datetime) -> dt.datetime:
    end = now + DEFAULT_AFTER
    return end if end > start else start + DEFAULT_BEFORE + DEFAULT_AFTER


@dataclass(frozen=True)
class Period:
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC
    kind: str  # BUSY | BUSY-TENTATIVE (the FBTYPE)


def periods(booked: Sequence[Busy], tentative: Sequence[Busy], capacity: int) -> list[Period]:
    """The free/busy periods of opaque occurrences: sorted, disjoint, each kind merged
    where it touches or overlaps."""
    busy = saturated(booked, capacity)
    maybe = _without(saturated([*booked, *tentative], capacity), busy) if tentative else []
    found = [Period(b.start, b.end, BUSY) for b in busy]
    found += [Period(m.start, m.end, TENTATIVE) for m in maybe]
    return sorted(found, key=lambda p: p.start)


def all_busy(members: Sequence[Sequence[Period]]) -> list[Period]:
    """A pool's periods: busy where no member is free. Each member's periods are disjoint,
    so "every member" is a capacity of one per member: BUSY where all are BUSY,
    BUSY-TENTATIVE where all are busy but some only tentatively. No members: free."""
    if not members:
        return []
    booked = [Busy(p.start, p.end) for ps in members for p in ps if p.kind == BUSY]
    tentative = [Busy(p.start, p.end) for ps in members for p in ps if p.kind == TENTATIVE]
    return periods(booked, tentative, len(members))


def _without(spans: Sequence[Busy], holes: Sequence[Busy]) -> list[Busy]:
    """``spans`` less ``holes`` (both sorted and disjoint)."""
    left: list[Busy] = []
    first = 0
    for span in spans:
        while first < len(holes) and holes[first].end <= span.start:
            first += 1
        start, index = span.start, first
        while index < len(holes) and holes[index].start < span.end:
            if holes[index].start > start:
                left.append(Busy(start, holes[index].start))
            start, index = max(start, holes[index].end), index + 1
        if start < span.end:
            left.append(Busy(start, span.end))
    return left


def freebusy_line(period: Period) -> str:
    """One FREEBUSY property (§3.8.2.6), a PERIOD in UTC, with its CRLF: one period a line,
    so none is longer than 75 octets and none needs folding."""
    return f"FREEBUSY;FBTYPE={period.kind}:{utc_text(period.start)}/{utc_text(period.end)}\r\n"


@dataclass(frozen=True)
class Timeline:
    """A calendar's periods with their FREEBUSY lines (CRLF-ended, ready to join), made
    once, sliced by range."""

    periods: tuple[Period, ...]
    lines: tuple[str, ...] = field(init=False, repr=False, compare=False)
    starts: tuple[dt.datetime, ...] = field(init=False, repr=False, compare=False)
    ends: tuple[dt.datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(map(freebusy_line, self.periods)))
        object.__setattr__(self, "starts", tuple(p.start for p in self.periods))
        object.__setattr__(self, "ends", tuple(p.end for p in self.periods))

    def _slice(self, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
        """The indexes of the periods overlapping ``[start, end)`` (disjoint and sorted,
        so both bounds are a bisect)."""
        return bisect.bisect_right(self.ends, start), bisect.bisect_left(self.starts, end)

    def between(self, start: dt.datetime, end: dt.datetime) -> list[Period]:
        """The periods overlapping ``[start, end)``, clipped to it."""
        first, last = self._slice(start, end)
        return [_clipped(p, start, end) for p in self.periods[first:last]]

    def lines_between(self, start: dt.datetime, end: dt.datetime) -> list[str]:
        """The FREEBUSY lines of ``between``: the cached ones, but for clipped ends."""
        first, last = self._slice(start, end)
        lines = list(self.lines[first:last])
        for index in {0, len(lines) - 1} if lines else ():
            period = self.periods[first + index]
            if period.start < start or period.end > end:
                lines[index] = freebusy_line(_clipped(period, start, end))
        return lines


def _clipped(period: Period, start: dt.datetime, end: dt.datetime) -> Period:
    if period.start >= start and period.end <= end:
        return period
    return Period(max(period.start, start), min(period.end, end), period.kind)


@dataclass(frozen=True)
class Publisher:
    """Whose free/busy it is: the ORGANIZER of §3.6.4, its address and name."""

    address: str
    name: str = ""


def vfreebusy(who: Publisher, span: TimeRange, stamp: dt.datetime,
              lines: Sequence[str]) -> str:
    """A VCALENDAR with one VFREEBUSY (RFC 5545 §3.6.4, published as RFC 5546 §3.4.1 asks:
    DTSTAMP, DTSTART, DTEND, ORGANIZER, UID, FREEBUSY), as iCalendar text.

    The FREEBUSY lines (``freebusy_line``) are joined as they are: they need no folding."""
    start, end = utc_text(span.start), utc_text(span.end)
    head = stream([*calendar_head(), "BEGIN:VFREEBUSY",
                   f"UID:{escape_text(f'freebusy-{start}-{end}-{who.address}')}",
                   f"DTSTAMP:{utc_text(stamp)}", f"DTSTART:{start}", f"DTEND:{end}",
                   address_line("ORGANIZER", who.address, who.name)])
    return f"{head}{''.join(lines)}END:VFREEBUSY\r\n{CALENDAR_END}\r\n"
