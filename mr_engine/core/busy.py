"""A resource's busy times, and when they use its whole capacity (a sweep line). Pure.

Intervals are half-open, ``[start, end)``: a meeting ending at 10:00 does not conflict with
one starting at 10:00. Capacity is checked against the *peak* number of concurrent bookings
(a sweep line), not the number of overlapping bookings: with capacity 2, bookings 9-10 and
10-11 leave room for 9:30-10:30.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["Busy", "BusyTimes", "saturated"]


@dataclass(frozen=True)
class Busy:
    start: datetime  # UTC
    end: datetime  # UTC


class _Saturation:
    """The times at which the other bookings already use the whole capacity.

    Built once by a sweep over the sorted start and end times (O(n log n)), as
    merged, sorted, disjoint intervals; each occurrence is then one bisect.
    """

    def __init__(self, busy: Sequence[Busy], capacity: int) -> None:
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []
        live = [b for b in busy if b.end > b.start]
        if len(live) < capacity:  # fewer bookings than units: the peak cannot reach it
            return
        starts = sorted(b.start for b in live)
        ends = sorted(b.end for b in live)
        level, i, j = 0, 0, 0
        while i < len(starts):
            if ends[j] <= starts[i]:  # half-open: an end frees the slot before a start takes it
                level -= 1
                if level == capacity - 1:
                    self._close(ends[j])
                j += 1
            else:
                level += 1
                if level == capacity:
                    self._open(starts[i])
                i += 1
        if level >= capacity:
            self._close(ends[j + level - capacity])

    def _open(self, moment: datetime) -> None:
        if self.ends and self.ends[-1] == moment:  # touching: merge
            self.ends.pop()
        else:
            self.starts.append(moment)

    def _close(self, moment: datetime) -> None:
        self.ends.append(moment)

    def full_during(self, start: datetime, end: datetime) -> bool:
        """Whether capacity is exhausted anywhere in ``[start, end)``.

        A zero-length occurrence is taken as the instant ``start``.
        """
        end = max(end, start + timedelta(microseconds=1))
        index = bisect.bisect_right(self.ends, start)  # first saturated span ending after start
        return index < len(self.starts) and self.starts[index] < end


def saturated(busy: Sequence[Busy], capacity: int) -> list[Busy]:
    """The spans in which ``capacity`` of ``busy`` overlap: sorted, disjoint, and merged
    where they touch (what free/busy publishes as BUSY, RFC 5545 §3.2.9)."""
    sweep = _Saturation(busy, capacity)
    return [Busy(start, end) for start, end in zip(sweep.starts, sweep.ends)]


@dataclass(frozen=True)
class BusyTimes:
    """The busy intervals of a resource's other bookings.

    The sweep is made on the first question for a capacity and kept, so a series of a
    thousand occurrences costs one sweep and a thousand bisects.
    """

    intervals: tuple[Busy, ...]
    _swept: dict[int, _Saturation] = field(default_factory=dict, init=False, compare=False,
                                           repr=False)

    def full_during(self, start: datetime, end: datetime, capacity: int) -> bool:
        """Whether ``capacity`` bookings at once are already reached in ``[start, end)``."""
        if capacity not in self._swept:
            self._swept[capacity] = _Saturation(self.intervals, capacity)
        return self._swept[capacity].full_during(start, end)
