"""The REPLY's hand-written content lines (``core.reply._calendar``) are exactly what
icalendar's components wrote before: the reference below is that code, run on fixtures
from real clients and on hostile text (escapes, quotes, control characters, non-ASCII)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar, Event, vCalAddress

from mr_engine.core import reply
from mr_engine.core.itip import EventData
from mr_engine.core.reply import PRODID, Answer, Delegation
from mr_engine.testing.ical import parse_fixture
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.times import NOW

FIXTURES = checkout_of(__file__) / "fixtures"
ROOM = "room1@example.org"


def _address(email: str, cn: str) -> vCalAddress:
    value = vCalAddress(f"mailto:{reply._clean(email)}")
    if reply._param(cn):
        value.params["CN"] = reply._param(cn)
    return value


def _reference_vevent(answer: Answer, name: str, now: datetime,
                      delegation: Delegation | None) -> Event:
    event = answer.event
    start, end = reply._times(answer)

    def when(moment: datetime):
        if event.all_day:
            return moment.astimezone(event.start.tzinfo).date()
        return moment.astimezone(timezone.utc)

    vevent = Event()
    vevent.add("UID", event.uid)
    vevent.add("SEQUENCE", event.sequence)
    vevent.add("DTSTAMP", now.astimezone(timezone.utc))
    vevent.add("ORGANIZER", _address(event.organizer, event.organizer_cn))
    attendee = _address(ROOM, name)
    attendee.params["PARTSTAT"] = answer.partstat
    if delegation is not None:
        attendee.params[delegation.param] = f"mailto:{reply._param(delegation.address)}"
    vevent.add("ATTENDEE", attendee)
    if answer.recurrence_id is not None:
        vevent.add("RECURRENCE-ID", when(answer.recurrence_id))
    vevent.add("DTSTART", when(start))
    vevent.add("DTEND", when(end))
    vevent.add("SUMMARY", reply._ical_text(event.summary))
    if answer.reason:
        vevent.add("COMMENT", reply._ical_text(answer.reason))
    return vevent


def reference(answers: list[Answer], name: str, delegation: Delegation | None = None,
              method: str = "REPLY") -> list[str]:
    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", method)
    for answer in answers:
        calendar.add_component(_reference_vevent(answer, name, NOW, delegation))
    return [line for line in calendar.content_lines() if line]


def ours(answers: list[Answer], name: str, delegation: Delegation | None = None,
         method: str = "REPLY") -> list[str]:
    return reply._calendar(answers, ROOM, name, NOW, delegation, method)


FIXTURE_FILES = sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".eml", ".ics"))


def _events(path) -> list[EventData]:
    try:
        return list(parse_fixture(path).events)
    except Exception:
        return []


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_fixture_replies_are_unchanged(path) -> None:
    events = _events(path)
    if not events:
        pytest.skip("no usable invitation")
    answers = [Answer(e, "ACCEPTED", "", e.recurrence_id) for e in events]
    assert ours(answers, "Room 1") == reference(answers, "Room 1")
    first = events[0]
    declined = [Answer(first, "DECLINED", "Conflict, with; this: \\N that", NOW, NOW,
                       NOW + timedelta(hours=1))]
    assert ours(declined, "Room 1") == reference(declined, "Room 1")


EVIL = ["", "Plain", "Comma, semi; colon: quote\" apostrophe' curly\u2019", "caret ^ and ^n",
        "back\\slash \\N \\n", "line\r\nbreak\nand\rmore", "tab\there \x01\x7f ctl",
        "Zoë Ünïcödé 会議室 😀", " leading space", "x" * 200]


@pytest.mark.parametrize("text", EVIL)
def test_hostile_text_is_written_as_icalendar_wrote_it(text: str) -> None:
    path = FIXTURES / "mozilla/outlook-test-invite.eml"
    event = replace(parse_fixture(path).events[0], summary=text, organizer_cn=text, uid=text or "u")
    for partstat in ("ACCEPTED", "TENTATIVE", "DECLINED"):
        answers = [Answer(event, partstat, text, None)]
        assert ours(answers, text) == reference(answers, text)
    answers = [Answer(event, "DELEGATED", text, None)]
    delegation = Delegation("DELEGATED-TO", f"a^{text}@example.org")
    assert ours(answers, text, delegation) == reference(answers, text, delegation)
    assert ours(answers, "Room", method="COUNTER") == reference(answers, "Room", method="COUNTER")


def test_all_day_and_several_answers() -> None:
    path = FIXTURES / "mozilla/outlook-test-invite.eml"
    event = parse_fixture(path).events[0]
    day = replace(event, all_day=True)
    occurrence = event.start + timedelta(days=7)
    answers = [Answer(day, "ACCEPTED", "", None),
               Answer(day, "DECLINED", "busy", occurrence),
               Answer(event, "DECLINED", "busy", occurrence),
               Answer(replace(event, sequence=7), "ACCEPTED", "", None, occurrence,
                      occurrence + timedelta(minutes=5))]
    assert ours(answers, "Room 1") == reference(answers, "Room 1")
