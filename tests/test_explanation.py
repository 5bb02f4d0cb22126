"""Every rule explained (``core.explanation``): on the cases of tests/test_policy.py, the
explanation's decision is ``decide``'s, and the rule results account for it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from mr_engine.core.explanation import _IDLE, DECLINE, NOT_APPLICABLE, PASS, RuleResult, explain
from mr_engine.core.policy import OCCURRENCE_RULES, REQUEST_RULES, People, decide
from mr_engine.testing.times import BERLIN, NOW
from tests.test_policy import busy, meeting, policy, series_with_conflicts, weekly

RULES = [rule.__name__ for rule in (*REQUEST_RULES, *OCCURRENCE_RULES)]


def _long(count: int, which: int) -> list:
    instances = weekly(count)
    instances[which] = replace(instances[which], end=instances[which].start + timedelta(hours=5))
    return instances


# (settings, instances, busy, recurring): the situations of tests/test_policy.py.
CASES = [
    ({}, [meeting("10:00", "11:00")], busy("9:00-10:00"), False),
    ({}, [meeting("9:59", "10:30")], busy("9:00-10:00"), False),
    ({"kind": "equipment", "capacity": 2}, [meeting("9:30", "10:30")],
     busy("9:00-10:00", "10:00-11:00"), False),
    ({"kind": "equipment", "capacity": 2}, [meeting("9:30", "10:30")],
     busy("9:00-10:00", "9:15-9:45"), False),
    ({}, [meeting("9:30", "9:30")], busy("9:00-10:00"), False),
    ({"decline_conflict": False}, [meeting("10:00", "11:00")], busy("9:00-12:00"), False),
    ({"decline_recurring": True}, weekly(3), [], True),
    ({"decline_recurring": True}, [meeting("10:00", "11:00")], [], False),
    ({"booking_window_days": 180}, [meeting("10:00", "11:00", NOW + timedelta(days=181))], [],
     False),
    ({"booking_window_days": 0}, [meeting("10:00", "11:00", NOW + timedelta(days=900))], [],
     False),
    ({}, [], [], False),
    ({}, [meeting("10:00", "11:00", cancelled=True)], [], False),
    ({"max_duration_minutes": 120}, [meeting("10:00", "12:01")], [], False),
    ({"min_duration_minutes": 30}, [meeting("10:00", "10:15")], busy("10:00-11:00"), False),
    ({}, weekly(10), busy("10:30-11:30"), True),
    *(({"max_conflict_instances": m, "conflict_percentage": p},
       *series_with_conflicts(c), True)
      for m, p, c in [(0, 0, 1), (2, 0, 2), (2, 0, 3), (0, 20, 2), (3, 30, 3), (10, 100, 10)]),
    ({"max_conflict_instances": 5, "conflict_percentage": 100}, [meeting("10:00", "11:00")],
     busy("10:00-11:00"), False),
    ({"max_duration_minutes": 60, "max_conflict_instances": 1}, _long(10, 4), [], True),
    ({}, [meeting("10:00", "11:00", cancelled=True), meeting("12:00", "13:00")],
     busy("10:00-11:00"), True),
    ({"working_hours": "Mon-Fri 08:00-10:00"}, [meeting("10:00", "11:00")],
     busy("10:00-11:00"), False),
    ({"allow_external": False}, [meeting("10:00", "11:00")], [], False),
    ({"book_in": ("none",)}, [meeting("10:00", "11:00")], [], False),
    ({"book_in": ("none",), "request_in": ("all",)}, [meeting("10:00", "11:00")], [], False),
    ({"enforce_seats": True, "seats": 2}, [meeting("10:00", "11:00")], [], False),
]


def _results(case):
    settings, instances, taken, recurring = case
    resource = policy(**settings)
    people = People(organizer="ann@example.com", from_address="ann@example.com")
    return (explain(resource, instances, recurring, taken, NOW, BERLIN, people),
            decide(resource, instances, recurring, taken, NOW, BERLIN, people))


@pytest.mark.parametrize("case", CASES)
def test_the_decision_is_decides_and_the_rules_account_for_it(case) -> None:
    explained, decided = _results(case)
    assert explained.decision == decided
    assert [r.rule for r in explained.rules] == RULES
    assert all(r.result in (PASS, DECLINE, NOT_APPLICABLE) for r in explained.rules)
    declining = [r for r in explained.rules if r.result == DECLINE]
    # Something declines exactly when the decision declines (a request or some occurrences),
    # and the decision's first reason is among the declining rules' reasons.
    assert bool(declining) == (not decided.accepted or bool(decided.declined_instances))
    if declining:
        assert any(r.reason.startswith(decided.reasons[0]) for r in declining)
    assert all(r.reason for r in explained.rules if r.result != PASS)


def test_every_rule_is_judged_without_stopping_at_the_first_decline() -> None:
    """Too short and in conflict: ``decide`` names the first, the explanation both."""
    explained, decided = _results(CASES[13])
    assert decided.reasons == ("shorter than the minimum duration of 30 minutes "
                               "(2026-03-17 11:00-11:15 (Europe/Berlin))",)
    results = {r.rule: (r.result, r.reason) for r in explained.rules}
    assert results["too_short"][0] == results["conflict"][0] == DECLINE
    assert results["conflict"][1] == "conflict on 2026-03-17 11:00-11:15 (Europe/Berlin)"
    assert explained.conflicts == (CASES[13][1][0],)


@pytest.mark.parametrize(("case", "rule", "reason"), [
    (CASES[5], "conflict", "--mr-decline-conflict no"),
    (CASES[7], "recurring_refused", "not a recurring meeting"),
    (CASES[14], "recurring_refused", "--mr-decline-recurring no"),
    (CASES[9], "beyond_booking_window", "no booking window"),
    (CASES[10], "conflict", "no occurrence to check"),
    (CASES[0], "too_long", "--mr-max-duration 0"),
    (CASES[0], "outside_working_hours", "--mr-working-hours none"),
    (CASES[0], "external_refused", "--mr-allow-external yes"),
])
def test_a_rule_with_nothing_to_check_says_why(case, rule, reason) -> None:
    explained, _ = _results(case)
    assert RuleResult(rule, NOT_APPLICABLE, reason) in explained.rules


def test_an_occurrence_rule_names_its_first_refusal_and_counts_the_rest() -> None:
    explained, _ = _results(({}, *series_with_conflicts(3), True))
    [conflict] = [r for r in explained.rules if r.rule == "conflict"]
    assert conflict.reason == ("conflict on 2026-03-17 11:00-12:00 (Europe/Berlin) "
                               "(and 2 more of 10 occurrences)")
    assert len(explained.conflicts) == 3


def test_every_rule_said_idle_is_a_rule() -> None:
    """A renamed rule keeps its "not applicable": ``_IDLE`` names only rules there are."""
    assert set(_IDLE) <= set(RULES)
