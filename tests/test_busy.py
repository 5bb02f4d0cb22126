"""``core.busy``: where the other bookings use a resource's whole capacity, against a
count of the bookings in progress at every moment that matters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from mr_engine.core.busy import Busy, BusyTimes, saturated

_T0 = datetime(2026, 3, 10, 8, tzinfo=timezone.utc)
_AT = st.integers(0, 12).map(lambda q: _T0 + timedelta(minutes=15 * q))
_INTERVALS = st.lists(st.tuples(_AT, _AT).map(lambda t: Busy(*t)), max_size=8)


def _in_progress(busy: list[Busy], moment: datetime) -> int:
    return sum(1 for b in busy if b.start <= moment < b.end)


@settings(max_examples=1000, deadline=None)
@given(_INTERVALS, st.integers(1, 9), _AT, _AT)
def test_full_exactly_where_capacity_bookings_are_in_progress(busy, capacity, start, end) -> None:
    until = max(end, start + timedelta(microseconds=1))  # an empty span is the instant start
    moments = [m for m in {start, *(b.start for b in busy)} if start <= m < until]
    full = any(_in_progress(busy, m) >= capacity for m in moments)
    assert BusyTimes(tuple(busy)).full_during(start, end, capacity) is full


@settings(max_examples=500, deadline=None)
@given(_INTERVALS, st.integers(1, 9))
def test_saturated_spans_are_where_capacity_is_reached(busy, capacity) -> None:
    spans = saturated(busy, capacity)
    for q in range(13 * 4):
        moment = _T0 + timedelta(minutes=15 * q / 4)
        inside = any(s.start <= moment < s.end for s in spans)
        assert inside is (_in_progress(busy, moment) >= capacity)
