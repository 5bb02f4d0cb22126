"""Seats, alternatives and the COUNTER as pure functions: the people a meeting invites, the
seats rule, the free times a decline proposes (near midnight, across daylight-saving changes,
inside working hours and the booking window), the resources it proposes, and the COUNTER
parsed back; a property test checks every proposal against booking's conflict check."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st
from icalendar import Calendar

from mr_engine.core import alternatives as alt
from mr_engine.core import policy
from mr_engine.core import working_hours as hours
from mr_engine.core.alternatives import Alternatives, Candidate, Option, Slot
from mr_engine.core.busy import Busy, BusyTimes
from mr_engine.core.itip import parse_invitation, people_invited
from mr_engine.core.policy import People, facts_of
from mr_engine.core.recurrence import Instance
from mr_engine.core.reply import build_counter
from mr_engine.core.resource_settings import ResourceSettings
from mr_engine.testing.ical import INVITED_ROOM, parse_fixture, vcalendar, vevent
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.times import BERLIN, HOUR, NOW, UTC

ROOM = ResourceSettings(kind="room", decline_conflict=True)
FIXTURES = checkout_of(__file__) / "fixtures"
MINUTE = timedelta(minutes=1)


def at(*args: int) -> datetime:
    """A wall-clock time in Berlin."""
    return datetime(*args, tzinfo=BERLIN)


def meeting(start: datetime, length: timedelta = HOUR) -> Instance:
    return Instance(None, start.astimezone(UTC), (start + length).astimezone(UTC), "Planning",
                    False, False)


def busy(*spans: tuple[datetime, datetime]) -> BusyTimes:
    return BusyTimes(tuple(Busy(s.astimezone(UTC), e.astimezone(UTC)) for s, e in spans))


def local_starts(found: tuple[Slot, ...]) -> list[datetime]:
    return [s.start.astimezone(BERLIN).replace(tzinfo=None) for s in found]


# --- who counts as a person -------------------------------------------------------------------

def test_people_are_individual_attendees_but_the_organizer_and_the_resource() -> None:
    people = [f"ATTENDEE;CUTYPE=INDIVIDUAL:mailto:p{n}@example.org" for n in range(3)]
    inv = parse_invitation(vcalendar(vevent(
        *people, "ATTENDEE;CN=No cutype:mailto:plain@example.org",
        "ATTENDEE;CN=Alice:mailto:alice@example.org",  # the organizer, as Outlook lists her
        "ATTENDEE;CUTYPE=ROOM:mailto:other-room@example.org",
        "ATTENDEE;CUTYPE=RESOURCE:mailto:beamer@example.org",
        "ATTENDEE;CUTYPE=GROUP:mailto:team@example.org",
        f"ATTENDEE;CN=Room 1:mailto:{INVITED_ROOM}")), BERLIN)  # the room, without CUTYPE
    event = inv.events[0]
    assert people_invited(event, [INVITED_ROOM.upper()]) == 4
    assert people_invited(event) == 5


@pytest.mark.parametrize(("fixture", "resource", "people"), [
    ("mozilla/meet-meeting-invite.eml", "room@example.com", 1),  # Google: the organizer listed
    ("mozilla/repeat-event.eml", "receiver@example.com", 1),  # Thunderbird: all INDIVIDUAL
    ("mozilla/outlook-test-invite.eml", "room@example.com", 1),
    ("own/apple-weekly-dst.eml", "room1@example.org", 0),  # the room as CUTYPE=ROOM
    ("own/exchange-series-exception.eml", "beamer2@example.org", 1),  # CUTYPE=RESOURCE
])
def test_people_in_each_clients_invitation(fixture: str, resource: str, people: int) -> None:
    event = parse_fixture(FIXTURES / fixture).events[0]
    assert people_invited(event, [resource]) == people


@pytest.mark.parametrize(("enforce", "seats", "invited", "reason"), [
    (True, 6, 9, "9 attendees, the room seats 6"),
    (True, 6, 6, None),
    (True, 0, 9, None),  # seats unknown
    (False, 6, 9, None),  # the default: not enforced
])
def test_seats_rule(enforce: bool, seats: int, invited: int, reason: str | None) -> None:
    facts = facts_of((meeting(at(2026, 3, 17, 10)),), False, (), BERLIN,
                     People(individuals=invited))
    rules = replace(ROOM, seats=seats, enforce_seats=enforce)
    assert policy.too_many_people(facts, rules, NOW) == reason


def test_too_many_people_decline_the_whole_request() -> None:
    decision = policy.decide(replace(ROOM, seats=6, enforce_seats=True),
                             [meeting(at(2026, 3, 17, 10))], False, [], NOW, BERLIN,
                             People(individuals=9))
    assert (decision.accepted, decision.reasons) == (False, ("9 attendees, the room seats 6",))


@pytest.mark.parametrize(("reasons", "offered", "times"), [
    (["conflict on 2026-03-17 10:00-11:00 (Europe/Berlin)"], True, True),
    (["outside working hours: 2026-03-17 20:00-21:00 (Europe/Berlin) is not within …"],
     True, True),
    (["9 attendees, the room seats 6"], True, False),
    (["recurring meetings are not allowed"], False, False),
    (["longer than the maximum duration of 60 minutes (…)"], False, False),
])
def test_which_declines_offer_what(reasons: list[str], offered: bool, times: bool) -> None:
    assert (alt.offered_for(reasons), alt.times_help(reasons)) == (offered, times)


# --- free times -------------------------------------------------------------------------------

def test_the_requested_day_first_nearest_to_the_start_earlier_on_a_tie() -> None:
    wanted = at(2026, 3, 17, 10)
    found = alt.free_times([meeting(wanted)], busy((wanted, wanted + HOUR)), ROOM, BERLIN, NOW)
    assert local_starts(found) == [datetime(2026, 3, 17, 9), datetime(2026, 3, 17, 11),
                                   datetime(2026, 3, 17, 8, 45)]
    assert all(s.end - s.start == HOUR for s in found)


def test_near_midnight_the_same_day_comes_first() -> None:
    wanted = at(2026, 3, 17, 23)
    taken = busy((at(2026, 3, 17, 21), at(2026, 3, 18, 8)))
    found = alt.free_times([meeting(wanted)], taken, ROOM, BERLIN, NOW)
    assert local_starts(found) == [datetime(2026, 3, 17, 20), datetime(2026, 3, 17, 19, 45),
                                   datetime(2026, 3, 17, 19, 30)]


def test_a_day_taken_to_midnight_proposes_the_next_days_same_time_even_past_midnight() -> None:
    wanted = at(2026, 3, 17, 23)
    taken = busy((at(2026, 3, 17, 0), at(2026, 3, 18, 0)))
    found = alt.free_times([meeting(wanted)], taken, ROOM, BERLIN, NOW)
    assert local_starts(found) == [datetime(2026, 3, 18, 23), datetime(2026, 3, 18, 22, 45),
                                   datetime(2026, 3, 18, 23, 15)]  # ends on the 19th


def test_spring_forward_proposes_only_times_that_exist() -> None:
    # 2026-03-29 02:00 CET is 03:00 CEST: 02:00-02:59 do not exist in Berlin.
    wanted = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 CET
    taken = BusyTimes((Busy(datetime(2026, 3, 29, 0, tzinfo=UTC),
                            datetime(2026, 3, 29, 2, tzinfo=UTC)),))  # 01:00 CET-04:00 CEST
    found = alt.free_times([meeting(wanted)], taken, ROOM, BERLIN, NOW)
    assert local_starts(found) == [datetime(2026, 3, 29, 0), datetime(2026, 3, 29, 4),
                                   datetime(2026, 3, 29, 4, 15)]
    assert all(s.end - s.start == HOUR for s in found)  # an hour of real time each
    for slot in found:  # each wall-clock time reads back as the same instant
        local = slot.start.astimezone(BERLIN)
        assert local.replace(tzinfo=None).replace(tzinfo=BERLIN).astimezone(UTC) == slot.start


def test_fall_back_keeps_the_wall_clock_time_on_the_next_day() -> None:
    # Saturday taken within the working hours; Sunday 2026-10-25 is the change to CET.
    wanted = at(2026, 10, 24, 10)
    rules = replace(ROOM, working_hours="Mon-Sun 08:00-18:00")
    taken = busy((at(2026, 10, 24, 8), at(2026, 10, 24, 18)))
    found = alt.free_times([meeting(wanted)], taken, rules, BERLIN, NOW + timedelta(days=200))
    assert local_starts(found) == [datetime(2026, 10, 25, 10), datetime(2026, 10, 25, 9, 45),
                                   datetime(2026, 10, 25, 10, 15)]
    assert found[0].start == datetime(2026, 10, 25, 9, tzinfo=UTC)  # UTC+1 after the change


@pytest.mark.parametrize(("wanted", "taken", "expected"), [
    # busy until closing: earlier the same day
    (at(2026, 3, 20, 17), (at(2026, 3, 20, 16), at(2026, 3, 20, 18)),
     [datetime(2026, 3, 20, 15), datetime(2026, 3, 20, 14, 45), datetime(2026, 3, 20, 14, 30)]),
    # asked past closing, nothing booked: the latest that still ends by 18:00
    (at(2026, 3, 20, 17, 30), None,
     [datetime(2026, 3, 20, 17), datetime(2026, 3, 20, 16, 45), datetime(2026, 3, 20, 16, 30)]),
    # asked on a Saturday: closed all weekend, Monday nearest the time asked
    (at(2026, 3, 21, 10), None,
     [datetime(2026, 3, 23, 10), datetime(2026, 3, 23, 9, 45), datetime(2026, 3, 23, 10, 15)]),
])
def test_proposals_lie_within_working_hours(wanted: datetime, taken: tuple | None,
                                            expected: list[datetime]) -> None:
    rules = replace(ROOM, working_hours="Mon-Fri 08:00-18:00")
    found = alt.free_times([meeting(wanted)], busy(taken) if taken else busy(), rules, BERLIN,
                           NOW)
    assert local_starts(found) == expected


def test_proposals_keep_to_the_booking_window_and_the_future() -> None:
    now = datetime(2026, 3, 16, 9, 5, tzinfo=UTC)  # 10:05 in Berlin
    wanted = at(2026, 3, 16, 10, 30)
    rules = replace(ROOM, booking_window_days=1)
    taken = busy((at(2026, 3, 16, 0), at(2026, 3, 17, 9)))  # free again from 09:00 tomorrow
    found = alt.free_times([meeting(wanted)], taken, rules, BERLIN, now)
    # tomorrow from 09:00 on, but no start after now + 1 day (10:05)
    assert local_starts(found) == [datetime(2026, 3, 17, 10), datetime(2026, 3, 17, 9, 45),
                                   datetime(2026, 3, 17, 9, 30)]


def test_a_series_gets_times_for_its_first_conflicting_occurrence() -> None:
    series = [meeting(at(2026, 3, 16 + day, 10)) for day in range(3)]
    taken = busy((at(2026, 3, 17, 10), at(2026, 3, 17, 11)))
    found = alt.free_times(series, taken, ROOM, BERLIN, NOW)
    assert local_starts(found)[0] == datetime(2026, 3, 17, 9)


# --- other resources --------------------------------------------------------------------------

def candidate(name: str, kind: str = "room", seats: int = 0, pooled: bool = False,
              taken: tuple[datetime, datetime] | None = None) -> Candidate:
    option = Option(name, f"{name.lower()}@example.org", kind, seats, 1, pooled)
    return Candidate(option, replace(ROOM, kind=kind, seats=seats),
                     busy(taken) if taken else busy(), BERLIN)


def test_resources_pool_members_first_then_by_name_free_and_of_the_kind() -> None:
    wanted = at(2026, 3, 17, 10)
    candidates = [candidate("Delta"), candidate("alpha"), candidate("Zulu", pooled=True),
                  candidate("Busy", pooled=True, taken=(wanted, wanted + HOUR)),
                  candidate("Beamer", kind="equipment"), candidate("Yankee", pooled=True)]
    found = alt.free_resources("room", candidates, [meeting(wanted)], NOW)
    assert [o.name for o in found] == ["Yankee", "Zulu", "alpha"]


@pytest.mark.parametrize(("need_known", "expected"), [
    (False, ["Big", "Unknown"]),
    (True, ["Big"]),  # declined for seats: a room of unknown size is no answer
])
def test_resources_with_enough_seats(need_known: bool, expected: list[str]) -> None:
    candidates = [candidate("Big", seats=10), candidate("Small", seats=4),
                  candidate("Unknown", seats=0)]
    found = alt.free_resources("room", candidates, [meeting(at(2026, 3, 17, 10))], NOW,
                               people=9, need_known_seats=need_known)
    assert [o.name for o in found] == expected


def test_the_alternatives_in_words_and_as_json() -> None:
    offer = Alternatives((Slot(datetime(2026, 3, 17, 8, tzinfo=UTC),
                               datetime(2026, 3, 17, 9, tzinfo=UTC)),),
                         (Option("room-b", "room-b@example.org", "room", 8, 1, True, "Room B"),
                          Option("Beamer", "beamer@example.org", "equipment", 0, 2)))
    assert alt.text(offer, BERLIN) == [
        "Free at these times:", "- 2026-03-17 09:00-10:00 (Europe/Berlin)",
        "Free instead (invite one of them):", "- Room B <room-b@example.org> (8 seats)",
        "- Beamer <beamer@example.org> (capacity 2)"]
    assert offer.as_json()["times"] == [{"start": "2026-03-17T08:00:00Z",
                                         "end": "2026-03-17T09:00:00Z"}]
    assert offer.as_json()["resources"][0] == {
        "name": "room-b", "address": "room-b@example.org", "kind": "room", "seats": 8,
        "capacity": 1, "pooled": True, "fullname": "Room B"}
    assert not Alternatives() and alt.text(Alternatives(), BERLIN) == []


# --- the property: nothing proposed is busy ----------------------------------------------------

BASE = datetime(2026, 3, 16, tzinfo=UTC)  # a Monday; the week spans the spring change
SPECS = ("none", "Mon-Fri 08:00-18:00", "Mon-Sun 07:00-12:00, Mon-Sun 13:00-22:00",
         "Sat-Sun 00:00-24:00")
quarter_hours = st.integers(min_value=0, max_value=14 * 96)


@st.composite
def calendars(draw: st.DrawFn) -> tuple[Instance, BusyTimes, ResourceSettings]:
    spans = draw(st.lists(st.tuples(quarter_hours, st.integers(1, 40)), max_size=30))
    taken = BusyTimes(tuple(Busy(BASE + s * alt.GRID, BASE + (s + n) * alt.GRID)
                            for s, n in spans))
    start = BASE + draw(st.integers(0, 7 * 24 * 60)) * MINUTE
    wanted = Instance(None, start, start + draw(st.integers(1, 240)) * MINUTE, "x", False,
                      False)
    rules = ResourceSettings(kind=draw(st.sampled_from(["room", "equipment"])),
                             capacity=draw(st.integers(1, 3)), decline_conflict=True,
                             working_hours=draw(st.sampled_from(SPECS)))
    return wanted, taken, rules


@settings(max_examples=200, deadline=None)
@given(calendars())
def test_every_proposed_time_passes_the_conflict_check(case) -> None:
    wanted, taken, rules = case
    found = alt.free_times([wanted], taken, rules, BERLIN, BASE)
    assert len(found) <= alt.SHOWN and len(set(found)) == len(found)
    for slot in found:
        assert not taken.full_during(slot.start, slot.end, policy.effective_capacity(rules))
        assert hours.inside(hours.parse(rules.working_hours), slot.start, slot.end, BERLIN)
        assert slot.end - slot.start == wanted.end - wanted.start
        assert slot.start != wanted.start and slot.start >= BASE
    days = [s.start.astimezone(BERLIN).date() for s in found]
    assert days == sorted(days)  # the requested day, then the following ones


@settings(max_examples=200, deadline=None)
@given(calendars(), st.lists(calendars(), min_size=1, max_size=5))
def test_every_proposed_resource_is_free(case, others) -> None:
    wanted, _, _ = case
    candidates = [Candidate(Option(f"r{n}", f"r{n}@example.org", "room", 0, rules.capacity),
                            replace(rules, kind="room"), taken, BERLIN)
                  for n, (_, taken, rules) in enumerate(others)]
    found = alt.free_resources("room", candidates, [wanted], BASE)
    for option in found:
        chosen = candidates[int(option.name[1:])]
        assert not chosen.busy.full_during(wanted.start, wanted.end, 1)
        assert hours.inside(hours.parse(chosen.settings.working_hours), wanted.start,
                            wanted.end, BERLIN)


# --- the COUNTER (RFC 5546 §3.2.7) -------------------------------------------------------------

# RFC 5546 §3.2.7: the properties a COUNTER's VEVENT must have (exactly once each).
COUNTER_REQUIRED = ("ATTENDEE", "DTSTAMP", "DTSTART", "ORGANIZER", "SEQUENCE", "SUMMARY", "UID")


def test_counter_carries_what_rfc_5546_requires() -> None:
    inv = parse_invitation(vcalendar(vevent("SEQUENCE:3")), BERLIN)
    proposal = (datetime(2026, 3, 17, 12, tzinfo=UTC), datetime(2026, 3, 17, 13, tzinfo=UTC))
    raw = build_counter(inv.events[0], proposal, INVITED_ROOM, "Room 1", "<req-1@example.org>",
                        NOW, "mr.example.org")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "New time proposed: Planning" and msg["To"] == "Alice <alice@example.org>"
    assert msg["In-Reply-To"] == "<req-1@example.org>"
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "COUNTER"
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_content()
    assert text.startswith("Room 1 proposes a new time for your meeting request")
    assert "12:00-13:00 (UTC)" in text  # in the meeting's zone
    calendar = Calendar.from_ical(part.get_content())
    assert (str(calendar["METHOD"]), str(calendar["VERSION"])) == ("COUNTER", "2.0")
    assert "PRODID" in calendar
    [event] = calendar.walk("VEVENT")
    for name in COUNTER_REQUIRED:
        assert name in event and not isinstance(event[name], list), name
    assert "DURATION" not in event  # DTEND or DURATION, not both
    assert (str(event["UID"]), int(event["SEQUENCE"])) == ("meeting-1@example.org", 3)
    assert str(event["ORGANIZER"]) == "mailto:alice@example.org"
    assert str(event["ATTENDEE"]) == f"mailto:{INVITED_ROOM}"
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == proposal
    assert event.decoded("DTSTAMP") == NOW
