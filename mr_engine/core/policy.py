"""The booking decision for a resource: an ordered list of small pure rules.

``decide`` gathers the request's facts (``RequestFacts``: who asks, recurring or not, the
occurrences from :mod:`mr_engine.core.recurrence`, the busy times of the resource's *other*
bookings), then runs the rules on them with the resource's settings and the current time.
It reads no clock, database or network, so every rule is covered by table-driven tests.

Two lists, each rule a function returning a reason or None:

* ``REQUEST_RULES`` judge the whole request; the first reason declines it.
* ``OCCURRENCE_RULES`` judge each occurrence; the first reason is that occurrence's
  problem. Problem occurrences decline the whole request, unless it is a series and the
  resource's partial-decline thresholds allow declining just those occurrences.

A new rule is one function and one line in a list. The occurrences of one request are not
checked against each other: a series does not overlap itself in practice, and a client
that sends overlapping instances gets what it asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Callable

from mr_engine.core.busy import Busy, BusyTimes
from mr_engine.core.recurrence import Instance
from mr_engine.core.resource_settings import ResourceSettings
from mr_engine.core.timezones import format_span

__all__ = ["Busy", "Decision", "People", "RequestFacts", "ResourcePolicy", "REQUEST_RULES",
           "OCCURRENCE_RULES", "decide", "decide_extension", "effective_capacity"]

# The booking rules read the resource's settings as they are declared.
ResourcePolicy = ResourceSettings


@dataclass(frozen=True)
class People:
    """Who asks: the meeting's organizer, who sent the message, and how many it invites."""

    organizer: str = ""  # ORGANIZER, without mailto:
    envelope_sender: str = ""  # MAIL FROM; "" for the null sender or when not known
    from_address: str = ""  # the From header's address
    sender_address: str = ""  # the Sender header's address; "" without one
    attendees: int = 0  # ATTENDEEs of the meeting, the resource among them


@dataclass(frozen=True)
class RequestFacts:
    """What the rules know of a request."""

    people: People
    recurring: bool
    occurrences: tuple[Instance, ...]  # the live ones: cancelled occurrences are not asked for
    busy: BusyTimes  # the resource's other bookings
    zone: tzinfo  # the zone the reasons show times in


@dataclass(frozen=True)
class Decision:
    """``declined_instances`` is filled only when a series is accepted with
    some occurrences declined; a full decline explains itself in ``reasons``."""

    accepted: bool
    reasons: tuple[str, ...]
    booked: tuple[Instance, ...]
    declined_instances: tuple[tuple[Instance, str], ...]


RequestRule = Callable[[RequestFacts, ResourcePolicy, datetime], "str | None"]
OccurrenceRule = Callable[[Instance, RequestFacts, ResourcePolicy, datetime], "str | None"]


def effective_capacity(policy: ResourcePolicy) -> int:
    """A room holds one meeting at a time; equipment has ``capacity`` units."""
    if policy.kind == "equipment":
        return max(policy.capacity, 1)
    return 1


def _span(instance: Instance, zone: tzinfo) -> str:
    return format_span(instance.start, instance.end, zone)


# --- the rules ------------------------------------------------------------------------------

def recurring_refused(facts: RequestFacts, policy: ResourcePolicy, now: datetime) -> str | None:
    if facts.recurring and policy.decline_recurring:
        return "recurring meetings are not allowed"
    return None


def beyond_booking_window(facts: RequestFacts, policy: ResourcePolicy,
                          now: datetime) -> str | None:
    # The caller expands up to now + window: no occurrence left means "too far ahead".
    horizon = now + timedelta(days=policy.booking_window_days)
    if facts.occurrences and (policy.booking_window_days <= 0
                              or all(i.start <= horizon for i in facts.occurrences)):
        return None
    return f"starts beyond the booking window of {policy.booking_window_days} days"


def too_long(occurrence: Instance, facts: RequestFacts, policy: ResourcePolicy,
             now: datetime) -> str | None:
    limit = policy.max_duration_minutes  # 0: no limit
    if limit <= 0 or occurrence.end - occurrence.start <= timedelta(minutes=limit):
        return None
    return f"longer than the maximum duration of {limit} minutes ({_span(occurrence, facts.zone)})"


def conflict(occurrence: Instance, facts: RequestFacts, policy: ResourcePolicy,
             now: datetime) -> str | None:
    # With decline_conflict off, conflicts are ignored (as in Kopano).
    if policy.decline_conflict and facts.busy.full_during(
            occurrence.start, occurrence.end, effective_capacity(policy)):
        return f"conflict on {_span(occurrence, facts.zone)}"
    return None


REQUEST_RULES: tuple[RequestRule, ...] = (recurring_refused, beyond_booking_window)
OCCURRENCE_RULES: tuple[OccurrenceRule, ...] = (too_long, conflict)
# Occurrences of an accepted series that became due later: duration and window were
# judged when the series was accepted; only a slot taken since declines one.
EXTENSION_RULES: tuple[OccurrenceRule, ...] = (conflict,)


# --- running them ---------------------------------------------------------------------------

def facts_of(instances: Sequence[Instance], recurring: bool, busy: Sequence[Busy],
             tz_for_display: tzinfo, people: People = People()) -> RequestFacts:
    live = tuple(i for i in instances if not i.cancelled)
    return RequestFacts(people, recurring, live, BusyTimes(tuple(busy)), tz_for_display)


def _first_reason(rules: Sequence[Callable[..., str | None]], *facts: object) -> str | None:
    return next((reason for rule in rules if (reason := rule(*facts))), None)


def _problems(rules: Sequence[OccurrenceRule], facts: RequestFacts, policy: ResourcePolicy,
              now: datetime) -> list[tuple[Instance, str]]:
    """Each occurrence that cannot be booked, with the reason of the first rule refusing it."""
    judged = ((i, _first_reason(rules, i, facts, policy, now)) for i in facts.occurrences)
    return [(instance, reason) for instance, reason in judged if reason]


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
           busy: Sequence[Busy], now: datetime, tz_for_display: tzinfo,
           people: People = People()) -> Decision:
    """Accept or decline a request for *instances* (cancelled ones are skipped)."""
    facts = facts_of(instances, recurring, busy, tz_for_display, people)
    refused = _first_reason(REQUEST_RULES, facts, policy, now)
    if refused:
        return _decline(refused)
    problems = _problems(OCCURRENCE_RULES, facts, policy, now)
    if not problems:
        return Decision(True, (), facts.occurrences, ())
    partial = recurring and len(problems) < len(facts.occurrences)
    if not partial or not _within_thresholds(policy, len(problems), len(facts.occurrences)):
        return _decline(*(reason for _, reason in problems))
    return _partly(facts.occurrences, problems)


def _partly(live: Sequence[Instance], problems: list[tuple[Instance, str]]) -> Decision:
    """Accepted, with the problem occurrences declined one by one."""
    declined = {id(instance) for instance, _ in problems}
    booked = tuple(i for i in live if id(i) not in declined)
    return Decision(True, tuple(reason for _, reason in problems), booked, tuple(problems))


def decide_extension(policy: ResourcePolicy, instances: Sequence[Instance],
                     busy: Sequence[Busy], now: datetime, tz_for_display: tzinfo) -> Decision:
    """Occurrences of an accepted series that became due as time passed (or the booking
    window grew): the series stays accepted, and each occurrence that ``EXTENSION_RULES``
    refuse (a slot the other bookings already fill) is declined; the earlier booking
    keeps it."""
    facts = facts_of(instances, True, busy, tz_for_display)
    return _partly(facts.occurrences, _problems(EXTENSION_RULES, facts, policy, now))
