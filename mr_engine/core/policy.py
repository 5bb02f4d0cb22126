"""The booking decision for a resource, as a pure function of plain data.

``decide`` gets the resource's settings, the request's occurrences (from
:mod:`mr_engine.recurrence`), the busy intervals of the resource's *other*
bookings and the current time, and returns a :class:`Decision`. It reads no
clock, database or network, so every rule is covered by table-driven tests.

Intervals are half-open, ``[start, end)``: a meeting ending at 10:00 does not
conflict with one starting at 10:00. Capacity is checked against the *peak*
number of concurrent bookings inside an occurrence (a sweep line), not the
number of overlapping bookings: with capacity 2, bookings 9-10 and 10-11 leave
room for 9:30-10:30. The occurrences of one request are not checked against
each other: a series does not overlap itself in practice, and a client that
sends overlapping instances gets what it asked for.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo

from mr_engine.core.recurrence import Instance
from mr_engine.core.resource_settings import ResourceSettings
from mr_engine.core.timezones import format_span

__all__ = ["Busy", "Decision", "ResourcePolicy", "decide", "effective_capacity",
           "decide_extension"]


# The policy reads the resource's settings as they are declared.
ResourcePolicy = ResourceSettings


@dataclass(frozen=True)
class Busy:
    start: datetime  # UTC
    end: datetime  # UTC


@dataclass(frozen=True)
class Decision:
    """``declined_instances`` is filled only when a series is accepted with
    some occurrences declined; a full decline explains itself in ``reasons``."""

    accepted: bool
    reasons: tuple[str, ...]
    booked: tuple[Instance, ...]
    declined_instances: tuple[tuple[Instance, str], ...]


def effective_capacity(policy: ResourcePolicy) -> int:
    """A room holds one meeting at a time; equipment has ``capacity`` units."""
    if policy.kind == "equipment":
        return max(policy.capacity, 1)
    return 1


class _Saturation:
    """The times at which the other bookings already use the whole capacity.

    Built once by a sweep over the sorted start and end times (O(n log n)), as
    merged, sorted, disjoint intervals; each occurrence is then one bisect.
    """

    def __init__(self, busy: Sequence[Busy], capacity: int) -> None:
        starts = sorted(b.start for b in busy if b.end > b.start)
        ends = sorted(b.end for b in busy if b.end > b.start)
        self.starts: list[datetime] = []
        self.ends: list[datetime] = []
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


def _span(instance: Instance, zone: tzinfo) -> str:
    return format_span(instance.start, instance.end, zone)


def _problems(policy: ResourcePolicy, live: Sequence[Instance], busy: Sequence[Busy],
              zone: tzinfo) -> list[tuple[Instance, str]]:
    """Each occurrence that cannot be booked, with the reason."""
    limit = timedelta(minutes=policy.max_duration_minutes)
    saturation = _Saturation(busy, effective_capacity(policy)) if policy.decline_conflict else None
    problems = []
    for instance in live:
        if policy.max_duration_minutes > 0 and instance.end - instance.start > limit:
            reason = f"longer than the maximum duration of {policy.max_duration_minutes} minutes"
            problems.append((instance, f"{reason} ({_span(instance, zone)})"))
        elif saturation is not None and saturation.full_during(instance.start, instance.end):
            problems.append((instance, f"conflict on {_span(instance, zone)}"))
    return problems


def _within_thresholds(policy: ResourcePolicy, problems: int, total: int) -> bool:
    """Kopano's partial-decline settings: both limits, where set, must hold."""
    if policy.max_conflict_instances <= 0 and policy.conflict_percentage <= 0:
        return False
    if policy.max_conflict_instances > 0 and problems > policy.max_conflict_instances:
        return False
    return policy.conflict_percentage <= 0 or problems * 100 <= policy.conflict_percentage * total


def _decline(*reasons: str) -> Decision:
    return Decision(False, tuple(reasons), (), ())


def decide(policy: ResourcePolicy, instances: Sequence[Instance], recurring: bool,
           busy: Sequence[Busy], now: datetime, tz_for_display: tzinfo) -> Decision:
    """Accept or decline a request for *instances* (cancelled ones are skipped).

    Order of the rules: recurring refused, booking window, then duration and
    conflicts for every occurrence. With ``decline_conflict`` off, conflicts
    are ignored (as in Kopano). Too-long and conflicting occurrences decline
    the whole request, unless the request is a series and the partial-decline
    thresholds allow declining just those occurrences.
    """
    if recurring and policy.decline_recurring:
        return _decline("recurring meetings are not allowed")
    live = [i for i in instances if not i.cancelled]
    window = f"starts beyond the booking window of {policy.booking_window_days} days"
    if not live:  # the caller expands to now + window: nothing left means "too far ahead"
        return _decline(window)
    if policy.booking_window_days > 0:
        horizon = now + timedelta(days=policy.booking_window_days)
        if any(i.start > horizon for i in live):
            return _decline(window)
    problems = _problems(policy, live, busy, tz_for_display)
    if not problems:
        return Decision(True, (), tuple(live), ())
    reasons = tuple(reason for _, reason in problems)
    partial = recurring and len(problems) < len(live)
    if not partial or not _within_thresholds(policy, len(problems), len(live)):
        return _decline(*reasons)
    return _partly(live, problems)


def _partly(live: Sequence[Instance], problems: list[tuple[Instance, str]]) -> Decision:
    """Accepted, with the problem occurrences declined one by one."""
    declined = {id(instance) for instance, _ in problems}
    booked = tuple(i for i in live if id(i) not in declined)
    return Decision(True, tuple(reason for _, reason in problems), booked, tuple(problems))


def decide_extension(policy: ResourcePolicy, instances: Sequence[Instance],
                     busy: Sequence[Busy], tz_for_display: tzinfo) -> Decision:
    """Occurrences of an accepted series that became due as time passed (or the booking
    window grew): the series stays accepted, and with ``decline_conflict`` each occurrence
    on a slot that the other bookings already fill is declined; the earlier booking keeps
    it. Duration and window were the request's rules, judged when it was accepted."""
    live = [i for i in instances if not i.cancelled]
    problems = _problems(replace(policy, max_duration_minutes=0), live, busy, tz_for_display)
    return _partly(live, problems)
