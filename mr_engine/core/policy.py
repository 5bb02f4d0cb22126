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

Who may book (``core.who_may_book``): an organizer that the book-in list names is decided
automatically; one that only the request-in list names gets an accepting decision marked
``needs_approval`` (the booking service holds it for the resource's delegates); anyone else
is declined by ``not_permitted``. A request that does not fit is declined all the same,
with no approval asked.

A new rule is one function and one line in a list. The occurrences of one request are not
checked against each other: a series does not overlap itself in practice, and a client
that sends overlapping instances gets what it asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable

from mr_engine.core import who_may_book as access
from mr_engine.core import working_hours as hours
from mr_engine.core.busy import Busy, BusyTimes
from mr_engine.core.recurrence import Instance
from mr_engine.core.resource_settings import ResourceSettings
from mr_engine.core.timezones import format_span

__all__ = ["Busy", "Decision", "People", "RequestFacts", "ResourceFacts", "ResourcePolicy",
           "REQUEST_RULES", "OCCURRENCE_RULES", "decide", "decide_extension",
           "effective_capacity", "occurrence_problem"]

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
    # The people among them, as seats count them (``itip.people_invited``): CUTYPE
    # INDIVIDUAL or none, neither the organizer nor the resource.
    individuals: int = 0
    # What the directory and the message's checks say of the organizer (``who_asks``):
    authenticated: bool = False  # a trusted Authentication-Results vouches for it
    user: str = ""  # its directory user name; "" when its address is no user's
    groups: frozenset[str] = frozenset()  # its groups, nested ones too, case-folded
    internal: bool = False  # its domain is a local one

    @property
    def senders(self) -> tuple[str, str, str]:
        return (self.from_address, self.sender_address, self.envelope_sender)


@dataclass(frozen=True)
class ResourceFacts:
    """What the rules know of the resource besides its settings."""

    zone: tzinfo = timezone.utc  # its own zone: working hours are read in it
    delegates: tuple[str, ...] = ()  # addresses of who approves its requests


@dataclass(frozen=True)
class RequestFacts:
    """What the rules know of a request."""

    people: People
    recurring: bool
    occurrences: tuple[Instance, ...]  # the live ones: cancelled occurrences are not asked for
    busy: BusyTimes  # the resource's other bookings
    zone: tzinfo  # the zone the reasons show times in
    resource: ResourceFacts = ResourceFacts()


@dataclass(frozen=True)
class Decision:
    """``declined_instances`` is filled only when a series is accepted with
    some occurrences declined; a full decline explains itself in ``reasons``.

    ``needs_approval``: accepted (``booked`` fits), but only the request-in list names the
    organizer: the booking waits for a delegate's approval. Never set on a decline."""

    accepted: bool
    reasons: tuple[str, ...]
    booked: tuple[Instance, ...]
    declined_instances: tuple[tuple[Instance, str], ...]
    needs_approval: bool = False


RequestRule = Callable[[RequestFacts, ResourcePolicy, datetime], "str | None"]
OccurrenceRule = Callable[[Instance, RequestFacts, ResourcePolicy, datetime], "str | None"]


def effective_capacity(policy: ResourcePolicy) -> int:
    """A room holds one meeting at a time; equipment has ``capacity`` units."""
    if policy.kind == "equipment":
        return max(policy.capacity, 1)
    return 1


def _span(instance: Instance, zone: tzinfo) -> str:
    return format_span(instance.start, instance.end, zone)


def verified(people: People, policy: ResourcePolicy) -> bool:
    """Whether the organizer counts as the one asking, at the resource's level."""
    return access.organizer_verified(policy.verify_organizer, people.organizer,
                                     people.senders, people.authenticated)


def names(listed: Sequence[str], people: People, policy: ResourcePolicy) -> bool:
    """Whether a book-in or request-in list names the organizer."""
    return access.matches(listed, verified(people, policy), people.organizer, people.user,
                          people.groups, people.internal)


def needs_approval(facts: RequestFacts, policy: ResourcePolicy) -> bool:
    """Only the request-in list names the organizer (``not_permitted`` ran first)."""
    return not names(policy.book_in, facts.people, policy)


def _contacts(delegates: Sequence[str]) -> str:
    return f"; contact {' or '.join(delegates)} to ask for it" if delegates else ""


def _unverified(people: People, policy: ResourcePolicy) -> str:
    """Why a list may not have named the organizer: it is not verified as the sender."""
    if not people.organizer or verified(people, policy):
        return ""
    if policy.verify_organizer == "authenticated":
        return " (the organizer's address is not vouched for by a trusted authentication)"
    return " (the organizer's address is not the message's From, Sender or envelope sender)"


# --- the rules ------------------------------------------------------------------------------

def external_refused(facts: RequestFacts, policy: ResourcePolicy, now: datetime) -> str | None:
    # An address of a local domain counts only when verified: anyone can write one.
    people = facts.people
    if policy.allow_external or (people.internal and verified(people, policy)):
        return None
    return f"organizers outside the local domains may not book this resource " \
           f"({people.organizer or 'no organizer'})" + _unverified(people, policy)


def not_permitted(facts: RequestFacts, policy: ResourcePolicy, now: datetime) -> str | None:
    people = facts.people
    if names(policy.book_in, people, policy) or names(policy.request_in, people, policy):
        return None
    return "you are not allowed to book this resource" + _unverified(people, policy) \
        + _contacts(facts.resource.delegates)


# Two reasons the decline texts reword as Kopano does (core.decline_texts).
RECURRING_REFUSED = "recurring meetings are not allowed"
CONFLICT_ON = "conflict on "
# How the reasons that another time or resource may cure begin (``core.alternatives``).
OUTSIDE_HOURS = "outside working hours: "
TOO_MANY_PEOPLE = " attendees, the room seats "


def recurring_refused(facts: RequestFacts, policy: ResourcePolicy, now: datetime) -> str | None:
    if facts.recurring and policy.decline_recurring:
        return RECURRING_REFUSED
    return None


def beyond_booking_window(facts: RequestFacts, policy: ResourcePolicy,
                          now: datetime) -> str | None:
    # The caller expands up to now + window: no occurrence left means "too far ahead".
    horizon = now + timedelta(days=policy.booking_window_days)
    if facts.occurrences and (policy.booking_window_days <= 0
                              or all(i.start <= horizon for i in facts.occurrences)):
        return None
    return f"starts beyond the booking window of {policy.booking_window_days} days"


def too_many_people(facts: RequestFacts, policy: ResourcePolicy, now: datetime) -> str | None:
    # Seats 0 is "unknown": nothing to enforce.
    invited = facts.people.individuals
    if not policy.enforce_seats or policy.seats <= 0 or invited <= policy.seats:
        return None
    return f"{invited}{TOO_MANY_PEOPLE}{policy.seats}"


def too_short(occurrence: Instance, facts: RequestFacts, policy: ResourcePolicy,
              now: datetime) -> str | None:
    limit = policy.min_duration_minutes  # 0: any
    if occurrence.end - occurrence.start >= timedelta(minutes=limit):
        return None
    return f"shorter than the minimum duration of {limit} minutes " \
           f"({_span(occurrence, facts.zone)})"


def too_long(occurrence: Instance, facts: RequestFacts, policy: ResourcePolicy,
             now: datetime) -> str | None:
    limit = policy.max_duration_minutes  # 0: no limit
    if limit <= 0 or occurrence.end - occurrence.start <= timedelta(minutes=limit):
        return None
    return f"longer than the maximum duration of {limit} minutes ({_span(occurrence, facts.zone)})"


def outside_working_hours(occurrence: Instance, facts: RequestFacts, policy: ResourcePolicy,
                          now: datetime) -> str | None:
    open_hours = hours.parse(policy.working_hours)
    zone = facts.resource.zone
    if hours.inside(open_hours, occurrence.start, occurrence.end, zone):
        return None
    return f"{OUTSIDE_HOURS}{_span(occurrence, zone)} is not within {open_hours}"


def conflict(occurrence: Instance, facts: RequestFacts, policy: ResourcePolicy,
             now: datetime) -> str | None:
    # With decline_conflict off, conflicts are ignored (as in Kopano).
    if policy.decline_conflict and facts.busy.full_during(
            occurrence.start, occurrence.end, effective_capacity(policy)):
        return f"{CONFLICT_ON}{_span(occurrence, facts.zone)}"
    return None


REQUEST_RULES: tuple[RequestRule, ...] = (external_refused, not_permitted, recurring_refused,
                                           beyond_booking_window, too_many_people)
OCCURRENCE_RULES: tuple[OccurrenceRule, ...] = (too_short, too_long, outside_working_hours,
                                                conflict)
# Occurrences of an accepted series that became due later: who asks, duration and window
# were judged when the series was accepted; a slot taken since declines one, and so do the
# working hours (a series written in UTC moves in local time at a daylight-saving change).
EXTENSION_RULES: tuple[OccurrenceRule, ...] = (outside_working_hours, conflict)


# --- running them ---------------------------------------------------------------------------

def facts_of(instances: Sequence[Instance], recurring: bool, busy: Sequence[Busy],
             tz_for_display: tzinfo, people: People = People(),
             resource: ResourceFacts = ResourceFacts()) -> RequestFacts:
    live = tuple(i for i in instances if not i.cancelled)
    return RequestFacts(people, recurring, live, BusyTimes(tuple(busy)), tz_for_display,
                        resource)


def _first_reason(rules: Sequence[Callable[..., str | None]], *facts: object) -> str | None:
    return next((reason for rule in rules if (reason := rule(*facts))), None)


def occurrence_problem(occurrence: Instance, facts: RequestFacts, policy: ResourcePolicy,
                       now: datetime) -> str | None:
    """Why ``OCCURRENCE_RULES`` refuse one occurrence, or None: what a proposed time of
    ``core.alternatives`` must pass."""
    return _first_reason(OCCURRENCE_RULES, occurrence, facts, policy, now)


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
           people: People = People(), resource: ResourceFacts = ResourceFacts()) -> Decision:
    """Accept or decline a request for *instances* (cancelled ones are skipped)."""
    facts = facts_of(instances, recurring, busy, tz_for_display, people, resource)
    decision = _judge(facts, policy, now)
    if decision.accepted and needs_approval(facts, policy):
        return dataclasses.replace(decision, needs_approval=True)
    return decision


def _judge(facts: RequestFacts, policy: ResourcePolicy, now: datetime) -> Decision:
    refused = _first_reason(REQUEST_RULES, facts, policy, now)
    if refused:
        return _decline(refused)
    problems = _problems(OCCURRENCE_RULES, facts, policy, now)
    if not problems:
        return Decision(True, (), facts.occurrences, ())
    total = len(facts.occurrences)
    partial = facts.recurring and len(problems) < total
    if not partial or not _within_thresholds(policy, len(problems), total):
        return _decline(*(reason for _, reason in problems))
    return _partly(facts.occurrences, problems)


def _partly(live: Sequence[Instance], problems: list[tuple[Instance, str]]) -> Decision:
    """Accepted, with the problem occurrences declined one by one."""
    declined = {id(instance) for instance, _ in problems}
    booked = tuple(i for i in live if id(i) not in declined)
    return Decision(True, tuple(reason for _, reason in problems), booked, tuple(problems))


def decide_extension(policy: ResourcePolicy, instances: Sequence[Instance],
                     busy: Sequence[Busy], now: datetime, tz_for_display: tzinfo,
                     resource: ResourceFacts = ResourceFacts()) -> Decision:
    """Occurrences of an accepted series that became due as time passed (or the booking
    window grew): the series stays accepted, and each occurrence that ``EXTENSION_RULES``
    refuse (a slot the other bookings already fill) is declined; the earlier booking
    keeps it."""
    facts = facts_of(instances, True, busy, tz_for_display, resource=resource)
    return _partly(facts.occurrences, _problems(EXTENSION_RULES, facts, policy, now))
