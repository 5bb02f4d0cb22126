"""The booking decision: recurring, booking window, duration, capacity (sweep line), thresholds."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from mr_engine.core import busy as busy_module
from mr_engine.core.policy import Busy, Decision, ResourcePolicy, decide, effective_capacity
from mr_engine.core.recurrence import Instance
from mr_engine.testing.times import BERLIN, NOW, UTC

DAY = datetime(2026, 3, 17, tzinfo=UTC)  # a Tuesday, Berlin is UTC+1


def at(hhmm: str, day: datetime = DAY) -> datetime:
    hours, minutes = hhmm.split(":")
    return day + timedelta(hours=int(hours), minutes=int(minutes))


def meeting(start: str, end: str, day: datetime = DAY, cancelled: bool = False) -> Instance:
    return Instance(None, at(start, day), at(end, day), "Planning", False, cancelled)


def busy(*spans: str) -> list[Busy]:
    """Busy intervals like "9:00-10:00" on DAY."""
    return [Busy(at(span.split("-")[0]), at(span.split("-")[1])) for span in spans]


def weekly(count: int, start: str = "10:00", end: str = "11:00") -> list[Instance]:
    days = [DAY + timedelta(weeks=k) for k in range(count)]
    return [Instance(at(start, d), at(start, d), at(end, d), "Weekly", False, False) for d in days]


def policy(kind: str = "room", capacity: int = 1, **settings) -> ResourcePolicy:
    settings.setdefault("decline_conflict", True)
    settings.setdefault("decline_recurring", False)
    return ResourcePolicy(kind=kind, capacity=capacity, **settings)


def verdict(resource: ResourcePolicy, instances, taken, recurring: bool = False) -> Decision:
    return decide(resource, instances, recurring, taken, NOW, BERLIN)


@pytest.mark.parametrize(
    ("kind", "capacity", "effective"),
    [("room", 5, 1), ("room", 0, 1), ("equipment", 3, 3), ("equipment", 0, 1), ("none", 4, 1)],
)
def test_effective_capacity(kind: str, capacity: int, effective: int) -> None:
    assert effective_capacity(policy(kind, capacity)) == effective


@pytest.mark.parametrize(
    ("kind", "capacity", "taken", "wanted", "accepted"),
    [
        # half-open intervals: back-to-back is not a conflict
        ("room", 1, ["9:00-10:00"], ("10:00", "11:00"), True),
        ("room", 1, ["11:00-12:00"], ("10:00", "11:00"), True),
        ("room", 1, ["9:00-10:00"], ("9:59", "10:30"), False),
        ("room", 1, ["10:15-10:30"], ("10:00", "11:00"), False),  # inside
        ("room", 1, ["9:00-12:00"], ("10:00", "11:00"), False),  # around
        # sweep line: the peak, not the number of overlapping bookings, counts
        ("equipment", 2, ["9:00-10:00", "10:00-11:00"], ("9:30", "10:30"), True),
        ("equipment", 2, ["9:00-10:00", "9:15-9:45"], ("9:30", "10:30"), False),
        ("equipment", 2, ["9:00-9:40", "9:20-10:00"], ("9:30", "10:30"), False),
        ("equipment", 2, ["9:00-9:30", "9:30-10:00", "10:00-10:30"], ("9:00", "10:30"), True),
        ("equipment", 3, ["9:00-10:00", "9:00-10:00"], ("9:00", "10:00"), True),
        ("equipment", 3, ["9:00-10:00", "9:00-10:00", "9:30-9:31"], ("9:00", "10:00"), False),
        ("equipment", 3, ["9:00-10:00", "9:00-10:00", "10:00-11:00"], ("9:00", "10:00"), True),
        ("none", 5, ["9:00-10:00"], ("9:30", "10:30"), False),  # not a resource: capacity 1
        # zero-length request: an instant, inside or at the (open) end of a booking
        ("room", 1, ["9:00-10:00"], ("9:30", "9:30"), False),
        ("room", 1, ["9:00-10:00"], ("10:00", "10:00"), True),
        # zero-length and unsorted busy input
        ("room", 1, ["10:30-10:30", "12:00-13:00", "8:00-9:00"], ("10:00", "11:00"), True),
    ],
)
def test_capacity_uses_peak_concurrency_of_half_open_intervals(kind, capacity, taken, wanted, accepted) -> None:
    decision = verdict(policy(kind, capacity), [meeting(*wanted)], busy(*taken))
    assert decision.accepted == accepted
    assert decision.booked == ((meeting(*wanted),) if accepted else ())


def test_conflict_reason_is_shown_in_the_display_zone() -> None:
    decision = verdict(policy(), [meeting("10:00", "11:00")], busy("10:30-12:00"))
    assert decision == Decision(False, ("conflict on 2026-03-17 11:00-12:00 (Europe/Berlin)",), (), ())


def test_conflicts_are_ignored_when_decline_conflict_is_off() -> None:
    decision = verdict(policy(decline_conflict=False), [meeting("10:00", "11:00")], busy("9:00-12:00"))
    assert decision.accepted and len(decision.booked) == 1


def test_recurring_meetings_refused_when_configured() -> None:
    decision = verdict(policy(decline_recurring=True), weekly(3), [], recurring=True)
    assert decision == Decision(False, ("recurring meetings are not allowed",), (), ())


def test_single_meeting_accepted_when_recurring_refused() -> None:
    assert verdict(policy(decline_recurring=True), [meeting("10:00", "11:00")], []).accepted


@pytest.mark.parametrize(
    ("instances", "window_days", "accepted"),
    [
        ([meeting("10:00", "11:00", NOW + timedelta(days=179))], 180, True),
        ([meeting("10:00", "11:00", NOW + timedelta(days=181))], 180, False),
        ([meeting("10:00", "11:00", NOW + timedelta(days=31))], 30, False),
        ([], 180, False),  # the caller's expansion found nothing inside the window
        ([meeting("10:00", "11:00", cancelled=True)], 180, False),
        ([meeting("10:00", "11:00", NOW + timedelta(days=900))], 0, True),  # 0: no limit
    ],
)
def test_booking_window(instances, window_days: int, accepted: bool) -> None:
    decision = verdict(policy(booking_window_days=window_days), instances, [])
    assert decision.accepted == accepted
    if not accepted:
        assert decision.reasons == (f"starts beyond the booking window of {window_days} days",)


@pytest.mark.parametrize(("end", "accepted"), [("12:00", True), ("12:01", False)])
def test_max_duration(end: str, accepted: bool) -> None:
    decision = verdict(policy(max_duration_minutes=120), [meeting("10:00", end)], [])
    assert decision.accepted == accepted
    if not accepted:
        assert decision.reasons[0].startswith("longer than the maximum duration of 120 minutes")


def test_one_conflicting_occurrence_declines_the_whole_series_by_default() -> None:
    decision = verdict(policy(), weekly(10), busy("10:30-11:30"), recurring=True)
    assert not decision.accepted and decision.booked == () and decision.declined_instances == ()
    assert decision.reasons == ("conflict on 2026-03-17 11:00-12:00 (Europe/Berlin)",)


def series_with_conflicts(conflicts: int, total: int = 10) -> tuple[list[Instance], list[Busy]]:
    instances = weekly(total)
    return instances, [Busy(i.start, i.end) for i in instances[:conflicts]]


@pytest.mark.parametrize(
    ("max_instances", "percentage", "conflicts", "accepted"),
    [
        (0, 0, 1, False),  # thresholds unset: one conflict declines all
        (2, 0, 2, True),
        (2, 0, 3, False),
        (0, 20, 2, True),
        (0, 20, 3, False),
        (3, 20, 3, False),  # both set: both must hold
        (3, 30, 3, True),
        (5, 0, 0, True),
        (10, 100, 10, False),  # nothing left to book
    ],
)
def test_partial_decline_thresholds(max_instances: int, percentage: int, conflicts: int, accepted: bool) -> None:
    instances, taken = series_with_conflicts(conflicts)
    resource = policy(max_conflict_instances=max_instances, conflict_percentage=percentage)
    decision = verdict(resource, instances, taken, recurring=True)
    assert decision.accepted == accepted
    if accepted:
        assert decision.booked == tuple(instances[conflicts:])
        assert [i for i, _ in decision.declined_instances] == instances[:conflicts]
        assert all(reason.startswith("conflict on ") for _, reason in decision.declined_instances)


def test_thresholds_do_not_apply_to_a_single_meeting() -> None:
    resource = policy(max_conflict_instances=5, conflict_percentage=100)
    assert not verdict(resource, [meeting("10:00", "11:00")], busy("10:00-11:00")).accepted


def test_too_long_occurrence_is_declined_like_a_conflict_within_thresholds() -> None:
    instances = weekly(10)
    instances[4] = replace(instances[4], end=instances[4].start + timedelta(hours=5))
    decision = verdict(policy(max_duration_minutes=60, max_conflict_instances=1), instances, [], recurring=True)
    assert decision.accepted and len(decision.booked) == 9
    assert decision.declined_instances[0][0] is instances[4]


def test_cancelled_occurrences_are_neither_checked_nor_booked() -> None:
    instances = [meeting("10:00", "11:00", cancelled=True), meeting("12:00", "13:00")]
    decision = verdict(policy(), instances, busy("10:00-11:00"), recurring=True)
    assert decision.accepted and decision.booked == (instances[1],)


def test_every_occurrence_is_checked_and_listed() -> None:
    instances, taken = series_with_conflicts(3)
    decision = verdict(policy(), instances, taken[1:], recurring=True)
    assert decision.reasons == ("conflict on 2026-03-24 11:00-12:00 (Europe/Berlin)",
                                "conflict on 2026-03-31 12:00-13:00 (Europe/Berlin)")


def test_thousand_occurrences_against_ten_thousand_bookings_sweep_once(monkeypatch) -> None:
    """A series is checked by one capacity sweep and a bisect per occurrence (its speed is
    the benchmark's load 3), not by a scan of the busy times per occurrence."""
    sweeps = []
    original = busy_module._Saturation.__init__
    monkeypatch.setattr(busy_module._Saturation, "__init__",
                        lambda self, *a: (sweeps.append(1), original(self, *a))[1])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    taken = [Busy(start + timedelta(minutes=37 * k), start + timedelta(minutes=37 * k + 45))
             for k in range(12_000)]
    instances = [Instance(None, start + timedelta(hours=7 * k),
                          start + timedelta(hours=7 * k, minutes=50), "x", False, False)
                 for k in range(1000)]
    resource = policy("equipment", 2, booking_window_days=0, max_conflict_instances=1000,
                      conflict_percentage=100)
    decision = verdict(resource, instances, taken, recurring=True)
    assert len(sweeps) == 1
    assert not decision.accepted and decision.reasons  # two at once every 37 minutes
