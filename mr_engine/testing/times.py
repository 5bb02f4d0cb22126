"""The fixed moments and zones the tests share: the clock's NOW, and a meeting slot after it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
# The clock of every test that needs one: a Monday morning before the meetings below.
NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# A meeting slot a week after NOW, and the usual length of a meeting.
T9 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)


def utc(*args: int) -> dt.datetime:
    """``datetime(*args)`` in UTC."""
    return dt.datetime(*args, tzinfo=UTC)
