"""The pure choice of a pool's member (``core.pool_choice``): fewest booked hours that day in
the member's zone, ties by name; only free members."""

from __future__ import annotations

import datetime as dt

import pytest

from mr_engine.core.alternatives import Alternatives, Option, Slot
from mr_engine.core.busy import Busy
from mr_engine.core.pool_choice import Candidate, booked_time, choose, day_of, merged
from mr_engine.testing.times import BERLIN, HOUR, utc

H = HOUR


@pytest.mark.parametrize("candidates, chosen", [
    ([], None),
    ([Candidate("a", False)], None),
    ([Candidate("b", True, 2 * H), Candidate("a", True, 3 * H)], "b"),  # fewest hours
    ([Candidate("b", True, H), Candidate("a", True, H)], "a"),  # ties by name
    ([Candidate("a", False), Candidate("b", True, 8 * H)], "b"),  # only the free ones
])
def test_choose_fewest_hours_then_name(candidates, chosen):
    picked = choose(candidates)
    assert (picked.name if picked else None) == chosen


@pytest.mark.parametrize("moment, zone, bounds", [
    (utc(2026, 3, 10, 9), dt.timezone.utc, (utc(2026, 3, 10), utc(2026, 3, 11))),
    # 23:30 UTC is the next day in Berlin
    (utc(2026, 3, 10, 23, 30), BERLIN, (utc(2026, 3, 10, 23), utc(2026, 3, 11, 23))),
    # the day of the spring DST change in Berlin has 23 hours
    (utc(2026, 3, 29, 12), BERLIN, (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))),
])
def test_day_of_is_the_members_local_day(moment, zone, bounds):
    assert day_of(moment, zone) == bounds


@pytest.mark.parametrize("busy, hours", [
    ([], 0),
    ([Busy(utc(2026, 3, 10, 9), utc(2026, 3, 10, 11))], 2),
    ([Busy(utc(2026, 3, 9, 23), utc(2026, 3, 10, 1))], 1),  # only the part inside the day
    ([Busy(utc(2026, 3, 11, 9), utc(2026, 3, 11, 10))], 0),
    ([Busy(utc(2026, 3, 10, 9), utc(2026, 3, 10, 10))] * 2, 2),  # two units, two hours
])
def test_booked_time_counts_the_day_only(busy, hours):
    assert booked_time(busy, utc(2026, 3, 10), utc(2026, 3, 11)) == hours * H


def _slot(hour: int) -> Slot:
    return Slot(utc(2026, 3, 10, hour), utc(2026, 3, 10, hour + 1))


def _room(name: str) -> Option:
    return Option(name, f"{name}@example.com", "room", 6, 1, False)


def test_merged_offers_nearest_times_and_no_members():
    offers = [Alternatives((_slot(12), _slot(10)), (_room("b"), _room("x"))),
              Alternatives((_slot(10), _slot(7), _slot(11)), (_room("y"), _room("x")))]
    offer = merged(offers, utc(2026, 3, 10, 9), ["a", "b"])
    assert offer.times == (_slot(10), _slot(7), _slot(11))  # 1 h, 2 h (earlier first), 2 h
    assert [r.name for r in offer.resources] == ["x", "y"]
