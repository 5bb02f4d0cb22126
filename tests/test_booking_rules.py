"""The booking rules as a list: each rule alone, their order, a rule added to the list, and the
request's facts (who asks) reaching the rules from an LMTP delivery and kopano-mr-accept."""

from __future__ import annotations

import io
import smtplib
import sys
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from mr_engine.cli import mr_accept
from mr_engine.core import policy
from mr_engine.core.policy import (Busy, Decision, People, RequestFacts, ResourcePolicy,
                                   decide, facts_of)
from mr_engine.core.recurrence import Instance
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import outbox_rows
from mr_engine.testing.times import BERLIN, HOUR, NOW, T9, UTC

DAY = datetime(2026, 3, 17, tzinfo=UTC)  # Berlin is UTC+1
ROOM_POLICY = ResourcePolicy(kind="room", decline_conflict=True)


def occurrence(start_hour: float, hours: float = 1, day: datetime = DAY) -> Instance:
    start = day + timedelta(hours=start_hour)
    return Instance(None, start, start + timedelta(hours=hours), "Planning", False, False)


def facts(*occurrences: Instance, recurring: bool = False, busy: tuple[Busy, ...] = (),
          people: People = People()) -> RequestFacts:
    return facts_of(occurrences or (occurrence(10),), recurring, busy, BERLIN, people)


def busy_at(start_hour: float, hours: float = 1) -> Busy:
    one = occurrence(start_hour, hours)
    return Busy(one.start, one.end)


def test_the_rules_in_their_order() -> None:
    assert policy.REQUEST_RULES == (policy.external_refused, policy.not_permitted,
                                    policy.recurring_refused, policy.beyond_booking_window,
                                    policy.too_many_people)
    assert policy.OCCURRENCE_RULES == (policy.too_short, policy.too_long,
                                       policy.outside_working_hours, policy.conflict)
    assert policy.EXTENSION_RULES == (policy.outside_working_hours, policy.conflict)


# --- each rule alone ------------------------------------------------------------------------

WINDOW = "starts beyond the booking window of {} days"


@pytest.mark.parametrize(("rule", "request_facts", "settings", "reason"), [
    (policy.recurring_refused, facts(recurring=True), {"decline_recurring": True},
     "recurring meetings are not allowed"),
    (policy.recurring_refused, facts(recurring=True), {}, None),
    (policy.recurring_refused, facts(), {"decline_recurring": True}, None),
    (policy.beyond_booking_window, facts(occurrence(10, day=NOW + timedelta(days=179))),
     {}, None),
    (policy.beyond_booking_window, facts(occurrence(10, day=NOW + timedelta(days=181))),
     {}, WINDOW.format(180)),
    (policy.beyond_booking_window, facts(occurrence(10, day=NOW + timedelta(days=31))),
     {"booking_window_days": 30}, WINDOW.format(30)),
    (policy.beyond_booking_window, facts(occurrence(10, day=NOW + timedelta(days=900))),
     {"booking_window_days": 0}, None),  # 0: no limit
    (policy.beyond_booking_window, facts_of((), False, (), BERLIN), {}, WINDOW.format(180)),
])
def test_request_rule_alone(rule, request_facts: RequestFacts, settings: dict,
                            reason: str | None) -> None:
    assert rule(request_facts, replace(ROOM_POLICY, **settings), NOW) == reason


LONG = "longer than the maximum duration of 120 minutes (2026-03-17 11:00-13:01 (Europe/Berlin))"
CONFLICT = "conflict on 2026-03-17 11:00-12:00 (Europe/Berlin)"


@pytest.mark.parametrize(("rule", "asked", "taken", "settings", "reason"), [
    (policy.too_long, occurrence(10, 2), (), {"max_duration_minutes": 120}, None),
    (policy.too_long, occurrence(10, 2 + 1 / 60), (), {"max_duration_minutes": 120}, LONG),
    (policy.too_long, occurrence(10, 9), (), {}, None),  # 0: no limit
    (policy.conflict, occurrence(10), (busy_at(10.5),), {}, CONFLICT),
    (policy.conflict, occurrence(10), (busy_at(11),), {}, None),  # back-to-back
    (policy.conflict, occurrence(10), (busy_at(10.5),), {"decline_conflict": False}, None),
    (policy.conflict, occurrence(10), (busy_at(10.5),),
     {"kind": "equipment", "capacity": 2}, None),
    (policy.conflict, occurrence(10), (busy_at(10), busy_at(10.5)),
     {"kind": "equipment", "capacity": 2}, CONFLICT),
])
def test_occurrence_rule_alone(rule, asked: Instance, taken: tuple[Busy, ...], settings: dict,
                               reason: str | None) -> None:
    assert rule(asked, facts(asked, busy=taken), replace(ROOM_POLICY, **settings), NOW) == reason


# --- the order decides which reason is given -------------------------------------------------

@pytest.mark.parametrize(("asked", "recurring", "taken", "settings", "reasons"), [
    # recurring refused comes before the booking window
    ([occurrence(10, day=NOW + timedelta(days=400))], True, [],
     {"decline_recurring": True}, ("recurring meetings are not allowed",)),
    # the request rules before any occurrence rule
    ([occurrence(10, day=NOW + timedelta(days=400))], False, [busy_at(10)], {},
     (WINDOW.format(180),)),
    # too long comes before the conflict on the same occurrence
    ([occurrence(10, 2 + 1 / 60)], False, [busy_at(10.5)], {"max_duration_minutes": 120},
     (LONG,)),
    # occurrence reasons in the order of the occurrences
    ([occurrence(10), occurrence(10, 2 + 1 / 60, DAY - timedelta(days=7))], False,
     [busy_at(10.5)], {"max_duration_minutes": 120},
     (CONFLICT, LONG.replace("2026-03-17", "2026-03-10"))),
])
def test_the_first_rule_in_the_list_gives_the_reason(asked, recurring: bool, taken,
                                                     settings: dict, reasons) -> None:
    decision = decide(replace(ROOM_POLICY, **settings), asked, recurring, taken, NOW, BERLIN)
    assert decision == Decision(False, reasons, (), ())


# --- a rule added to the list ----------------------------------------------------------------

def outsiders_refused(facts: RequestFacts, settings: ResourcePolicy, now: datetime) -> str | None:
    """An example rule: only organizers of the resource's own domain may book it."""
    if facts.people.organizer.endswith("@example.com"):
        return None
    return f"organizer {facts.people.organizer} is not of example.com"


def not_on_sundays(asked: Instance, facts: RequestFacts, settings: ResourcePolicy,
                   now: datetime) -> str | None:
    return "on a Sunday" if asked.start.astimezone(facts.zone).weekday() == 6 else None


@pytest.mark.parametrize(("organizer", "reasons"), [
    ("alice@example.com", ()),
    ("mallory@elsewhere.example", ("organizer mallory@elsewhere.example is not of example.com",)),
])
def test_a_request_rule_added_to_the_list_is_applied(monkeypatch, organizer: str,
                                                     reasons: tuple[str, ...]) -> None:
    monkeypatch.setattr(policy, "REQUEST_RULES", policy.REQUEST_RULES + (outsiders_refused,))
    decision = decide(ROOM_POLICY, [occurrence(10)], False, [], NOW, BERLIN,
                      People(organizer=organizer))
    assert (decision.accepted, decision.reasons) == (not reasons, reasons)


def test_an_occurrence_rule_added_to_the_list_declines_just_those(monkeypatch) -> None:
    monkeypatch.setattr(policy, "OCCURRENCE_RULES", policy.OCCURRENCE_RULES + (not_on_sundays,))
    daily = [occurrence(10, day=DAY + timedelta(days=k)) for k in range(7)]  # Tuesday on
    decision = decide(replace(ROOM_POLICY, max_conflict_instances=1), daily, True, [], NOW,
                      BERLIN)
    assert decision.accepted and decision.declined_instances == ((daily[5], "on a Sunday"),)
    assert decision.booked == tuple(daily[:5] + daily[6:])


# --- the facts come from the message ---------------------------------------------------------

@pytest.fixture
def seen(monkeypatch) -> list[People]:
    """What a first request rule sees of who asks (it refuses nothing)."""
    people: list[People] = []

    def record(facts: RequestFacts, settings: ResourcePolicy, now: datetime) -> None:
        people.append(facts.people)

    monkeypatch.setattr(policy, "REQUEST_RULES", (record, *policy.REQUEST_RULES))
    return people


def _sent_by_an_assistant(uid: str) -> bytes:
    message = invite(uid, T9, T9 + HOUR, ROOM, organizer="boss@remote.example")
    return message.replace(b"\nTo:", b"\nSender: Assistant <assistant@remote.example>\nTo:", 1)


def test_the_rules_see_who_asks_over_lmtp(db, db_url, seen) -> None:
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW, workers=1) as server:  # in this process, where the rule is
        with smtplib.LMTP("127.0.0.1", server.port) as client:
            refused = client.sendmail("bounces@lists.remote.example", [ROOM],
                                      _sent_by_an_assistant("u1"))
    assert refused == {}
    assert seen == [People(organizer="boss@remote.example",
                           envelope_sender="bounces@lists.remote.example",
                           from_address="boss@remote.example",
                           sender_address="assistant@remote.example", attendees=1)]
    assert [row.subject for row in outbox_rows(db)] == ["Accepted: Planning"]


def test_kopano_mr_accept_has_no_envelope_sender(db, db_url, seen, monkeypatch,
                                                 capsys) -> None:
    add_resource(db, "room", ROOM, mr_booking_window_days=100_000)  # the real clock runs
    stdin = io.TextIOWrapper(io.BytesIO(_sent_by_an_assistant("u2")))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert mr_accept.main(["--database-url", db_url, "room"]) == 0
    assert capsys.readouterr().out == "accepted\n"
    assert [(p.envelope_sender, p.sender_address) for p in seen] == \
        [("", "assistant@remote.example")]


# --- who may book -----------------------------------------------------------------------------

ALICE = People(organizer="alice@example.com", from_address="alice@example.com",
               user="alice", groups=frozenset({"everyone", "staff", "all-staff"}),
               internal=True)
FORGED = replace(ALICE, from_address="mallory@evil.example")  # organizer is not the sender
OUTSIDER = People(organizer="olga@partner.example", envelope_sender="olga@partner.example")
NOT_ALLOWED = "you are not allowed to book this resource"
NOT_MATCHED = (" (the organizer's address is not the message's From, Sender or envelope "
               "sender)")
NOT_VOUCHED = " (the organizer's address is not vouched for by a trusted authentication)"
EXTERNAL = "organizers outside the local domains may not book this resource ({})"


def who(people: People, delegates: tuple[str, ...] = ()) -> RequestFacts:
    return facts_of((occurrence(10),), False, (), BERLIN, people,
                    policy.ResourceFacts(delegates=delegates))


@pytest.mark.parametrize(("rule", "request_facts", "settings", "reason"), [
    (policy.external_refused, who(OUTSIDER), {}, None),  # allowed by default
    (policy.external_refused, who(OUTSIDER), {"allow_external": False},
     EXTERNAL.format("olga@partner.example")),
    (policy.external_refused, who(ALICE), {"allow_external": False}, None),
    (policy.external_refused, who(FORGED), {"allow_external": False},
     EXTERNAL.format("alice@example.com") + NOT_MATCHED),  # a local address, but unverified
    (policy.external_refused, who(People()), {"allow_external": False},
     EXTERNAL.format("no organizer")),
    # the defaults: everyone, verified or not
    (policy.not_permitted, who(FORGED), {}, None),
    (policy.not_permitted, who(OUTSIDER), {}, None),
    # each kind of entry
    (policy.not_permitted, who(ALICE), {"book_in": ("alice",)}, None),
    (policy.not_permitted, who(ALICE), {"book_in": ("bob",)}, NOT_ALLOWED),
    (policy.not_permitted, who(ALICE), {"book_in": ("alice@example.com",)}, None),
    (policy.not_permitted, who(ALICE), {"book_in": ("group:Staff",)}, None),
    (policy.not_permitted, who(ALICE), {"book_in": ("group:all-staff",)}, None),  # nested
    (policy.not_permitted, who(ALICE), {"book_in": ("group:board",)}, NOT_ALLOWED),
    (policy.not_permitted, who(ALICE), {"book_in": ("domain:example.com",)}, None),
    (policy.not_permitted, who(ALICE), {"book_in": ("domain:ample.com",)}, NOT_ALLOWED),
    (policy.not_permitted, who(ALICE), {"book_in": ("internal",)}, None),
    (policy.not_permitted, who(OUTSIDER), {"book_in": ("internal",)}, NOT_ALLOWED),
    (policy.not_permitted, who(ALICE), {"book_in": ("none",)}, NOT_ALLOWED),
    # the request-in list allows too (with approval: see needs_approval below)
    (policy.not_permitted, who(OUTSIDER), {"book_in": ("internal",),
                                           "request_in": ("domain:partner.example",)}, None),
    # an unverified organizer is named only by all
    (policy.not_permitted, who(FORGED), {"book_in": ("alice",)}, NOT_ALLOWED + NOT_MATCHED),
    (policy.not_permitted, who(FORGED), {"book_in": ("alice",), "request_in": ("all",)}, None),
    (policy.not_permitted, who(FORGED), {"book_in": ("alice",), "verify_organizer": "none"},
     None),
    # authenticated: the match and a trusted Authentication-Results
    (policy.not_permitted, who(ALICE), {"book_in": ("alice",),
                                        "verify_organizer": "authenticated"},
     NOT_ALLOWED + NOT_VOUCHED),
    (policy.not_permitted, who(replace(ALICE, authenticated=True)),
     {"book_in": ("alice",), "verify_organizer": "authenticated"}, None),
    (policy.not_permitted, who(replace(FORGED, authenticated=True)),
     {"book_in": ("alice",), "verify_organizer": "authenticated"}, NOT_ALLOWED + NOT_VOUCHED),
    # the decline names whom to ask
    (policy.not_permitted, who(OUTSIDER, ("boss@example.com", "deputy@example.com")),
     {"book_in": ("internal",)},
     NOT_ALLOWED + "; contact boss@example.com or deputy@example.com to ask for it"),
])
def test_who_may_book_rule_alone(rule, request_facts: RequestFacts, settings: dict,
                                 reason: str | None) -> None:
    assert rule(request_facts, replace(ROOM_POLICY, **settings), NOW) == reason


@pytest.mark.parametrize(("settings", "people", "accepted", "approval"), [
    ({}, OUTSIDER, True, False),
    ({"book_in": ("internal",), "request_in": ("all",)}, ALICE, True, False),
    ({"book_in": ("internal",), "request_in": ("all",)}, OUTSIDER, True, True),
    ({"book_in": ("internal",), "request_in": ("all",)}, FORGED, True, True),
    ({"book_in": ("none",), "request_in": ("group:staff",)}, ALICE, True, True),
    ({"book_in": ("none",), "request_in": ("group:staff",)}, OUTSIDER, False, False),
])
def test_only_the_request_in_list_means_the_decision_needs_approval(
        settings: dict, people: People, accepted: bool, approval: bool) -> None:
    decision = decide(replace(ROOM_POLICY, **settings), [occurrence(10)], False, [], NOW,
                      BERLIN, people)
    assert (decision.accepted, decision.needs_approval) == (accepted, approval)


def test_a_request_that_needs_approval_but_does_not_fit_is_declined_without_it() -> None:
    settings = replace(ROOM_POLICY, book_in=("none",), request_in=("all",))
    decision = decide(settings, [occurrence(10)], False, [busy_at(10)], NOW, BERLIN, OUTSIDER)
    assert decision == Decision(False, ("conflict on 2026-03-17 11:00-12:00 (Europe/Berlin)",), (), ())


# --- when it may be booked -------------------------------------------------------------------

SHORT = "shorter than the minimum duration of 30 minutes (2026-03-17 11:00-11:29 (Europe/Berlin))"
HOURS = "Mon-Fri 08:00-18:00"
OUTSIDE = "outside working hours: {} (Europe/Berlin) is not within Mon-Fri 08:00-18:00"


def in_berlin(asked: Instance) -> RequestFacts:
    return facts_of((asked,), False, (), BERLIN, People(), policy.ResourceFacts(zone=BERLIN))


@pytest.mark.parametrize(("rule", "asked", "settings", "reason"), [
    (policy.too_short, occurrence(10, 29 / 60), {"min_duration_minutes": 30}, SHORT),
    (policy.too_short, occurrence(10, 0.5), {"min_duration_minutes": 30}, None),
    (policy.too_short, occurrence(10, 0), {}, None),  # 0: any
    # DAY is a Tuesday; 10:00 UTC is 11:00 in Berlin
    (policy.outside_working_hours, occurrence(7, 10), {"working_hours": HOURS}, None),
    (policy.outside_working_hours, occurrence(6.5, 1), {"working_hours": HOURS},
     OUTSIDE.format("2026-03-17 07:30-08:30")),
    (policy.outside_working_hours, occurrence(16.5, 1), {"working_hours": HOURS},
     OUTSIDE.format("2026-03-17 17:30-18:30")),
    (policy.outside_working_hours, occurrence(10, day=DAY + timedelta(days=4)),
     {"working_hours": HOURS}, OUTSIDE.format("2026-03-21 11:00-12:00")),  # a Saturday
    (policy.outside_working_hours, occurrence(2), {}, None),  # none: always
])
def test_when_rule_alone(rule, asked: Instance, settings: dict, reason: str | None) -> None:
    assert rule(asked, in_berlin(asked), replace(ROOM_POLICY, **settings), NOW) == reason


# 16:30 UTC weekly from Tuesday 24 March: 17:30 CET, then 18:30 CEST once Berlin moved its
# clocks on 29 March (and back on 25 October).
def _weekly(start: datetime, weeks: int, hours: float = 0.5) -> list[Instance]:
    return [occurrence(0, hours, start + timedelta(weeks=k)) for k in range(weeks)]


@pytest.mark.parametrize(("first", "settings", "booked"), [
    # inside in March's winter time, outside once summer time began
    (datetime(2026, 3, 24, 16, 30, tzinfo=UTC), {"max_conflict_instances": 1}, [0]),
    # outside in October's summer time, inside once it ended
    (datetime(2026, 10, 20, 16, 30, tzinfo=UTC), {"max_conflict_instances": 1}, [1]),
    (datetime(2026, 3, 24, 16, 30, tzinfo=UTC), {}, []),  # no partial acceptance: declined
])
def test_working_hours_count_like_conflicts_for_a_series_across_a_dst_change(
        first: datetime, settings: dict, booked: list[int]) -> None:
    series = _weekly(first, 2)
    rules = replace(ROOM_POLICY, working_hours="Mon-Fri 08:00-18:00", booking_window_days=0,
                    **settings)
    decision = decide(rules, series, True, [], NOW, BERLIN, People(),
                      policy.ResourceFacts(zone=BERLIN))
    assert decision.booked == tuple(series[k] for k in booked)
    assert decision.accepted == bool(booked)
    assert len(decision.reasons) == 1 and decision.reasons[0].startswith("outside working hours: ")
