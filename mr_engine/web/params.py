"""Query parameters of the HTTP front end: moments and ranges, read strictly.

A bad value is a ``BadRequest`` naming the parameter. Moments are ISO 8601 date-times (a
time without an offset is UTC) or dates (midnight UTC), as RFC 5545 free/busy ranges are
given in UTC (§3.6.4).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

from .errors import BadRequest

DEFAULT_BEFORE = dt.timedelta(days=7)  # the default range: now - 7 days ...
DEFAULT_AFTER = dt.timedelta(days=60)  # ... to now + 60 days
LONGEST_RANGE = dt.timedelta(days=366)


@dataclass(frozen=True)
class TimeRange:
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC, after start


def instant(name: str, text: str) -> dt.datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime."""
    text = text.strip()
    try:
        if len(text) == 10 or (len(text) == 8 and text.isdigit()):
            day = dt.date.fromisoformat(text)
            value = dt.datetime(day.year, day.month, day.day)
        else:
            value = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 date or date-time: {text[:40]!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def moment(query: Mapping[str, str], now: dt.datetime, name: str = "at") -> dt.datetime:
    """``?at=`` (or ``name``), default ``now``."""
    return instant(name, query[name]) if query.get(name) else now


def time_range(query: Mapping[str, str], now: dt.datetime) -> TimeRange:
    """``?start=`` and ``?end=``, by default now - 7 days to now + 60 days, at most 366 days.

    A start after the default end gets the default length (67 days) as its end."""
    start = instant("start", query["start"]) if query.get("start") else now - DEFAULT_BEFORE
    end = instant("end", query["end"]) if query.get("end") else _default_end(start, now)
    if end <= start:
        raise BadRequest("end must be after start")
    if end - start > LONGEST_RANGE:
        raise BadRequest(f"the range is longer than {LONGEST_RANGE.days} days")
    return TimeRange(start, end)


def _default_end(start: dt.datetime, now: dt.datetime) -> dt.datetime:
    end = now + DEFAULT_AFTER
    return end if end > start else start + DEFAULT_BEFORE + DEFAULT_AFTER
