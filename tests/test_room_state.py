"""The room state of the pages for people, as pure functions of bookings and a moment."""

from __future__ import annotations

import pytest

from mr_engine.core.room_state import (Entry, day_of, headline, position, state_at, status,
                                       ticks, timeline, upcoming)
from mr_engine.testing.times import BERLIN, UTC, utc


def booked(start: int, end: int, blocks: bool = True) -> Entry:
    """A booking from ``start`` to ``end`` o'clock UTC on 2 March 2026."""
    return Entry(utc(2026, 3, 2, start), utc(2026, 3, 2, end), f"{start}-{end}", blocks=blocks,
                 note="" if blocks else "shown as free")


DAY = [booked(9, 10), booked(10, 11), booked(13, 14), booked(15, 16, blocks=False)]
BEAMER = [booked(9, 11), booked(10, 12)]  # two units taken 10-11


@pytest.mark.parametrize("entries, capacity, hour, words", [
    (DAY, 1, 8, "Free until 10:00"),  # Berlin: the first meeting is at 09:00Z
    (DAY, 1, 9, "Busy until 12:00"),  # back to back: busy through both
    (DAY, 1, 11, "Free until 14:00"),  # half-open: the 10-11 meeting is over at 11
    (DAY, 1, 14, "Free"),  # only a transparent booking follows
    (DAY, 1, 15, "Free"),  # a transparent booking in progress takes nothing
    (BEAMER, 2, 9, "Free until 11:00"),  # one of two in use
    (BEAMER, 2, 10, "Busy until 12:00"),
    (BEAMER, 1, 9, "Busy until 13:00"),
    ([], 1, 12, "Free"),
])
def test_headline(entries, capacity, hour, words):
    at = utc(2026, 3, 2, hour)
    assert headline(state_at(entries, at, capacity), BERLIN, day_of(at, BERLIN)) == words


def test_state_counts_what_is_in_use():
    state = state_at(BEAMER, utc(2026, 3, 2, 10, 30), 2)
    assert (state.busy, state.in_use, state.capacity) == (True, 2, 2)
    assert [e.title for e in state.current] == ["9-11", "10-12"]
    free = state_at(DAY, utc(2026, 3, 2, 15, 30), 1)
    assert (free.busy, free.in_use, [e.note for e in free.current]) == \
        (False, 0, ["shown as free"])
    assert status(free, BERLIN, day_of(free.current[0].start, BERLIN)) == "Free now"


def test_busy_past_midnight_names_the_day():
    night = [Entry(utc(2026, 3, 2, 20), utc(2026, 3, 3, 7), "Night shift")]
    at = utc(2026, 3, 2, 21)
    assert headline(state_at(night, at, 1), BERLIN, day_of(at, BERLIN)) \
        == "Busy until Tue 3 Mar 08:00"


def test_day_of_follows_the_zone_and_its_clock_changes():
    late = utc(2026, 3, 2, 23, 30)  # already Tuesday in Berlin
    assert day_of(late, BERLIN).date.isoformat() == "2026-03-03"
    assert day_of(late, UTC).date.isoformat() == "2026-03-02"
    spring = day_of(utc(2026, 3, 29, 12), BERLIN)  # clocks go forward: 23 hours
    assert (spring.start, spring.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert ticks(spring, BERLIN) == (("06:00", round(500 / 23, 3)),
                                     ("12:00", round(1100 / 23, 3)),
                                     ("18:00", round(1700 / 23, 3)))


def test_timeline_places_bookings_in_lanes_and_cuts_them_to_the_day():
    day = day_of(utc(2026, 3, 2, 12), UTC)
    overnight = Entry(utc(2026, 3, 1, 22), utc(2026, 3, 2, 6), "overnight")
    blocks = timeline([*BEAMER, overnight, booked(11, 12)], day)
    assert [(b.entry.title, b.left, b.width, b.lane) for b in blocks] == [
        ("overnight", 0.0, 25.0, 0), ("9-11", 37.5, 8.333, 0), ("10-12", 41.667, 8.333, 1),
        ("11-12", 45.833, 4.167, 0)]
    assert position(utc(2026, 3, 2, 18), day) == 75.0


def test_upcoming_starts_with_what_is_in_progress():
    assert [e.title for e in upcoming(DAY, utc(2026, 3, 2, 10, 30), 2)] == ["10-11", "13-14"]
    assert upcoming(DAY, utc(2026, 3, 2, 17), 5) == ()
