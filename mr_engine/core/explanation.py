"""A booking decision explained: every rule of ``core.policy`` with its result. Pure.

``policy.decide`` stops at the first rule that declines, as a booking must; an administrator
asking why (``mr-engine explain``, ``kopano-mr-accept --dry-run``) wants every rule's word.
``explain`` runs each rule of ``REQUEST_RULES`` and ``OCCURRENCE_RULES`` (the same
functions, no copy) on the same facts, without stopping, and gives ``decide``'s own
decision beside them, so the verdict shown is the verdict delivery makes.

A rule's result is ``pass``, ``decline`` (with the rule's reason; an occurrence rule names
the first occurrence it refuses and how many more) or ``not applicable``: the resource's
settings leave it nothing to check (``--mr-decline-conflict no``, no working hours, ...),
or there is no occurrence to judge. A rule that ``_IDLE`` does not list always applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from mr_engine.core import who_may_book as access
from mr_engine.core import working_hours as hours
from mr_engine.core.policy import (OCCURRENCE_RULES, REQUEST_RULES, Busy, Decision, People,
                                   RequestFacts, ResourceFacts, ResourcePolicy, conflict,
                                   decide, facts_of)
from mr_engine.core.recurrence import Instance
from mr_engine.core.resource_settings import SETTINGS

__all__ = ["DECLINE", "NOT_APPLICABLE", "PASS", "Explanation", "RuleResult", "explain"]

PASS, DECLINE, NOT_APPLICABLE = "pass", "decline", "not applicable"


@dataclass(frozen=True)
class RuleResult:
    rule: str  # the rule function's name, e.g. "conflict"
    result: str  # PASS | DECLINE | NOT_APPLICABLE
    reason: str = ""  # why it declines, or why it does not apply; "" for a pass


@dataclass(frozen=True)
class Explanation:
    decision: Decision  # ``policy.decide``'s, unchanged
    rules: tuple[RuleResult, ...]  # REQUEST_RULES, then OCCURRENCE_RULES, in their order
    conflicts: tuple[Instance, ...]  # the occurrences the ``conflict`` rule refuses


def _flag(name: str, value: str) -> str:
    """A setting as ``kopano-cli`` sets it: ``--mr-decline-conflict no``."""
    return next(f"{s.flag} {value}" for s in SETTINGS if s.name == name)


def _single(facts: RequestFacts, policy: ResourcePolicy) -> str | None:
    if not facts.recurring:
        return "not a recurring meeting"
    return None if policy.decline_recurring else _flag("decline_recurring", "no")


def _seats_unchecked(facts: RequestFacts, policy: ResourcePolicy) -> str | None:
    if not policy.enforce_seats:
        return _flag("enforce_seats", "no")
    return _flag("seats", "0") if policy.seats <= 0 else None


def _unless(condition: Callable[[ResourcePolicy], bool], why: str
            ) -> Callable[[RequestFacts, ResourcePolicy], str | None]:
    return lambda facts, policy: why if condition(policy) else None


# When a rule has nothing to check: why (a function of the facts and settings), else None.
_IDLE: dict[str, Callable[[RequestFacts, ResourcePolicy], str | None]] = {
    "external_refused": _unless(lambda p: p.allow_external, _flag("allow_external", "yes")),
    "not_permitted": _unless(lambda p: access.ALL in p.book_in, _flag("book_in", access.ALL)),
    "recurring_refused": _single,
    "beyond_booking_window": _unless(lambda p: p.booking_window_days <= 0,
                                     "no booking window"),
    "too_many_people": _seats_unchecked,
    "too_short": _unless(lambda p: p.min_duration_minutes <= 0,
                         _flag("min_duration_minutes", "0")),
    "too_long": _unless(lambda p: p.max_duration_minutes <= 0,
                        _flag("max_duration_minutes", "0")),
    "outside_working_hours": _unless(lambda p: not hours.parse(p.working_hours).items,
                                     _flag("working_hours", hours.ALWAYS)),
    "conflict": _unless(lambda p: not p.decline_conflict, _flag("decline_conflict", "no")),
}


def _verdict(rule: Callable[..., object], reason: str | None, facts: RequestFacts,
             policy: ResourcePolicy) -> RuleResult:
    """DECLINE with ``reason``; else NOT_APPLICABLE when the rule has nothing to check."""
    if reason:
        return RuleResult(rule.__name__, DECLINE, reason)
    check = _IDLE.get(rule.__name__)
    idle = check(facts, policy) if check else None
    return RuleResult(rule.__name__, NOT_APPLICABLE, idle) if idle \
        else RuleResult(rule.__name__, PASS)


def refused_by(rule: Callable[..., str | None], facts: RequestFacts, policy: ResourcePolicy,
               now: datetime) -> list[tuple[Instance, str]]:
    """The occurrences one occurrence rule refuses, with its reasons."""
    judged = ((i, rule(i, facts, policy, now)) for i in facts.occurrences)
    return [(instance, reason) for instance, reason in judged if reason]


def _occurrence_result(rule: Callable[..., str | None], facts: RequestFacts,
                       policy: ResourcePolicy, now: datetime) -> RuleResult:
    if not facts.occurrences:
        return RuleResult(rule.__name__, NOT_APPLICABLE, "no occurrence to check")
    refused = refused_by(rule, facts, policy, now)
    return _verdict(rule, _first_and_more(refused, facts) if refused else None, facts, policy)


def _first_and_more(refused: Sequence[tuple[Instance, str]], facts: RequestFacts) -> str:
    """The first refused occurrence's reason, and how many more of the request's."""
    first = refused[0][1]
    more = len(refused) - 1
    return f"{first} (and {more} more of {len(facts.occurrences)} occurrences)" if more \
        else first


def explain(policy: ResourcePolicy, instances: Sequence[Instance], recurring: bool,
            busy: Sequence[Busy], now: datetime, tz_for_display: tzinfo,
            people: People = People(), resource: ResourceFacts = ResourceFacts()) -> Explanation:
    """``decide``'s decision on these facts (the same arguments), and every rule's result."""
    facts = facts_of(instances, recurring, busy, tz_for_display, people, resource)
    rules = tuple(_verdict(rule, rule(facts, policy, now), facts, policy)
                  for rule in REQUEST_RULES) \
        + tuple(_occurrence_result(rule, facts, policy, now) for rule in OCCURRENCE_RULES)
    conflicts = tuple(i for i, _ in refused_by(conflict, facts, policy, now))
    return Explanation(decide(policy, instances, recurring, busy, now, tz_for_display, people,
                              resource), rules, conflicts)
