"""Working hours: the spec, normalized or refused with its reason, and whether an occurrence
lies wholly inside, in wall-clock time of the resource's zone across daylight-saving changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mr_engine.core.working_hours import inside, normalize, parse
from mr_engine.testing.times import BERLIN, UTC


@pytest.mark.parametrize(("spec", "stored"), [
    ("none", "none"),
    ("  NONE ", "none"),
    ("Mon-Fri 08:00-18:00", "Mon-Fri 08:00-18:00"),
    ("mon-thu 8:00-18:00,fri 08:00 - 14:00", "Mon-Thu 08:00-18:00, Fri 08:00-14:00"),
    ("Saturday 10:00-24:00", "Sat 10:00-24:00"),
    ("Fri-Mon 00:00-24:00", "Fri-Mon 00:00-24:00"),
])
def test_a_spec_is_stored_written_the_one_way(spec: str, stored: str) -> None:
    assert normalize(spec) == stored


@pytest.mark.parametrize(("spec", "why"), [
    ("Mon-Fri", "expected DAYS HH:MM-HH:MM"),
    ("Mon-Fri 8-18", "expected DAYS HH:MM-HH:MM"),
    ("Mon-Fry 08:00-18:00", "unknown day 'Fry'"),
    ("Mon 18:00-08:00", "the end must be after the start"),
    ("Mon 08:00-08:00", "the end must be after the start"),
    ("Mon 08:00-24:30", "not a time of day: '24:30'"),
    ("Mon 08:60-09:00", "not a time of day: '08:60'"),
    ("Mon 08:00-18:00,", "expected DAYS HH:MM-HH:MM"),
])
def test_a_bad_spec_says_why(spec: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse(spec)


def local(*args: int, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(*args, tzinfo=zone)


WEEKDAYS = parse("Mon-Fri 08:00-18:00")
SPLIT = parse("Mon-Thu 08:00-18:00, Fri 08:00-14:00")
NIGHTS = parse("Mon 20:00-24:00, Tue 00:00-06:00")  # 17 March 2026 is a Tuesday


@pytest.mark.parametrize(("hours", "start", "minutes", "expected"), [
    (WEEKDAYS, local(2026, 3, 17, 8), 600, True),  # exactly the open hours
    (WEEKDAYS, local(2026, 3, 17, 7, 59), 30, False),
    (WEEKDAYS, local(2026, 3, 17, 17, 30), 31, False),
    (WEEKDAYS, local(2026, 3, 21, 10), 60, False),  # a Saturday
    (WEEKDAYS, local(2026, 3, 17, 17), 24 * 60, False),  # into the next day
    (SPLIT, local(2026, 3, 20, 13), 60, True),  # Friday until 14:00
    (SPLIT, local(2026, 3, 20, 13, 30), 60, False),
    (NIGHTS, local(2026, 3, 16, 23), 6 * 60, True),  # over midnight, the spans join
    (NIGHTS, local(2026, 3, 16, 23), 8 * 60, False),
    (parse("none"), local(2026, 3, 21, 3), 48 * 60, True),
    (WEEKDAYS, datetime(2026, 3, 17, 7, 0, tzinfo=UTC), 60, True),  # 08:00 in Berlin
    (WEEKDAYS, local(2026, 3, 17, 17, 59, 30), 0.5, True),  # ends 18:00:00
    (WEEKDAYS, local(2026, 3, 17, 17, 59, 30), 1, False),  # ends 18:00:30
])
def test_inside_means_wholly_inside(hours, start: datetime, minutes: float,
                                    expected: bool) -> None:
    assert inside(hours, start, start + timedelta(minutes=minutes), BERLIN) is expected


@pytest.mark.parametrize(("utc_start", "expected"), [
    # 07:00 UTC: 08:00 in winter time, 09:00 in summer time (from 29 March, to 25 October)
    (datetime(2026, 3, 27, 7, tzinfo=UTC), True),
    (datetime(2026, 3, 30, 7, tzinfo=UTC), True),
    # 06:30 UTC: 07:30 before the change (closed), 08:30 after it (open)
    (datetime(2026, 3, 27, 6, 30, tzinfo=UTC), False),
    (datetime(2026, 3, 30, 6, 30, tzinfo=UTC), True),
    (datetime(2026, 10, 23, 6, 30, tzinfo=UTC), True),
    (datetime(2026, 10, 26, 6, 30, tzinfo=UTC), False),
    # 16:30 UTC: 17:30 in winter time, 18:30 in summer time
    (datetime(2026, 3, 27, 16, 30, tzinfo=UTC), True),
    (datetime(2026, 3, 30, 16, 30, tzinfo=UTC), False),
])
def test_hours_are_wall_clock_hours_across_daylight_saving_changes(utc_start: datetime,
                                                                   expected: bool) -> None:
    assert inside(WEEKDAYS, utc_start, utc_start + timedelta(minutes=30), BERLIN) is expected


def test_the_same_instant_is_judged_in_the_resource_zone() -> None:
    start = datetime(2026, 3, 17, 14, tzinfo=UTC)  # 15:00 in Berlin, 10:00 in New York
    end = start + timedelta(hours=4)
    assert not inside(WEEKDAYS, start, end, BERLIN)
    assert inside(WEEKDAYS, start, end, ZoneInfo("America/New_York"))
