"""Query parameters of the HTTP front end: moments and ranges, read strictly.

A bad value is a ``BadRequest`` naming the parameter. Moments are ISO 8601 date-times (a
time without an offset is UTC) or dates (midnight UTC), as RFC 5545 free/busy ranges are
given in UTC (§3.6.4).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Mapping

from mr_engine.core.freebusy import RangeError, TimeRange, parse_instant, requested_range

from .errors import BadRequest

__all__ = ["TimeRange", "instant", "moment", "time_range"]


# A "+" written unescaped in a query string arrives as a space (form encoding): in a UTC
# offset after a time, it can only have been a "+".
_SPACED_OFFSET = re.compile(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


def instant(name: str, text: str) -> dt.datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime (``freebusy.parse_instant``)."""
    try:
        return parse_instant(_SPACED_OFFSET.sub(r"\1+\2", text.strip()))
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 date or date-time: "
                         f"{text.strip()[:40]!r}") from None


def moment(query: Mapping[str, str], now: dt.datetime, name: str = "at") -> dt.datetime:
    """``?at=`` (or ``name``), default ``now``."""
    return instant(name, query[name]) if query.get(name) else now


def time_range(query: Mapping[str, str], now: dt.datetime) -> TimeRange:
    """``?start=`` and ``?end=``, by default and at most as ``freebusy.requested_range``."""
    start = instant("start", query["start"]) if query.get("start") else None
    end = instant("end", query["end"]) if query.get("end") else None
    try:
        return requested_range(start, end, now)
    except RangeError as exc:
        raise BadRequest(str(exc)) from None
