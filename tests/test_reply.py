"""The iTIP REPLY e-mail (RFC 5546 §3.2.3 carried by iMIP, RFC 6047), parsed back."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from icalendar import Calendar

from mr_engine.core.itip import EventData, Invitation, parse_invitation
from mr_engine.core.reply import PRODID, Answer, build_reply

from mr_engine.testing.ical import INVITED_ROOM, parse_fixture, vcalendar, vevent
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.times import BERLIN, NOW, utc

FIXTURES = checkout_of(__file__) / "fixtures"
ROOM = INVITED_ROOM


def reply(inv: Invitation, answers: list[Answer], message_id: str | None = "<req-1@example.org>",
          name: str = "Room 1") -> tuple[EmailMessage, bytes]:
    raw = build_reply(inv, answers, ROOM, name, message_id, NOW, "mr.example.org")
    return email.message_from_bytes(raw, policy=email.policy.default), raw


def calendar_of(msg: EmailMessage) -> Calendar:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    return Calendar.from_ical(part.get_content())


def accept(event: EventData) -> Answer:
    return Answer(event, "ACCEPTED", "", None)


def test_rfc6047_reply_message_structure() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/outlook-test-invite.eml")
    msg, raw = reply(inv, [accept(inv.events[0])])
    assert msg["From"] == "Room 1 <room1@example.org>"
    assert msg["To"] == "Marge <marge@example.org>"
    assert msg["Subject"] == "Accepted: Testaus"
    assert msg["In-Reply-To"] == msg["References"] == "<req-1@example.org>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@mr.example.org>")
    assert msg.get_content_type() == "multipart/alternative"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/calendar"]
    assert parts[1].get_param("method") == "REPLY" and parts[1].get_content_charset() == "utf-8"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout
    assert "Room 1 has accepted" in parts[0].get_content()
    assert "2021-11-27 09:00-09:30 (FLE Standard Time)" in parts[0].get_content()


def test_rfc5546_3_2_3_reply_vevent() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/outlook-test-invite.eml")
    calendar = calendar_of(reply(inv, [accept(inv.events[0])])[0])
    assert (str(calendar["PRODID"]), str(calendar["VERSION"]), str(calendar["METHOD"])) == (PRODID, "2.0", "REPLY")
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == inv.uid and event["SEQUENCE"] == 0
    assert event["DTSTAMP"].dt == NOW
    assert str(event["ORGANIZER"]) == "mailto:marge@example.org" and event["ORGANIZER"].params["CN"] == "Marge"
    attendee = event["ATTENDEE"]
    assert not isinstance(attendee, list), "exactly one ATTENDEE: the resource"
    assert str(attendee) == f"mailto:{ROOM}"
    assert (attendee.params["CN"], attendee.params["PARTSTAT"]) == ("Room 1", "ACCEPTED")
    assert (event["DTSTART"].dt, event["DTEND"].dt) == (utc(2021, 11, 27, 7), utc(2021, 11, 27, 7, 30))
    assert str(event["SUMMARY"]) == "Testaus"
    assert "RECURRENCE-ID" not in event and "COMMENT" not in event


def test_decline_carries_the_reason_as_comment() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/update-major.eml")
    reason = "conflict on 2022-03-16 06:00-06:30 (Europe/Berlin)"
    msg, _ = reply(inv, [Answer(inv.events[0], "DECLINED", reason, None)])
    (event,) = calendar_of(msg).walk("VEVENT")
    assert msg["Subject"] == "Declined: Single Event"
    assert event["ATTENDEE"].params["PARTSTAT"] == "DECLINED" and str(event["COMMENT"]) == reason
    assert event["SEQUENCE"] == 2  # as received
    assert reason in msg.get_payload()[0].get_content()


def test_declined_occurrence_of_an_accepted_series() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/repeat-event.eml")
    master = inv.events[0]
    rid = utc(2022, 3, 17, 11)
    msg, _ = reply(inv, [accept(master), Answer(master, "DECLINED", "conflict", rid)])
    events = calendar_of(msg).walk("VEVENT")
    assert msg["Subject"] == "Declined: Repeat Event"  # not all answers accepted
    assert [e["ATTENDEE"].params["PARTSTAT"] for e in events] == ["ACCEPTED", "DECLINED"]
    assert "RECURRENCE-ID" not in events[0]
    assert events[1]["RECURRENCE-ID"].dt == rid
    assert (events[1]["DTSTART"].dt, events[1]["DTEND"].dt) == (rid, rid + timedelta(minutes=30))


def test_answer_for_an_override_echoes_its_moved_times() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/exception-major.eml")
    override = inv.events[0]
    (event,) = calendar_of(reply(inv, [Answer(override, "ACCEPTED", "", override.recurrence_id)])[0]).walk("VEVENT")
    assert event["RECURRENCE-ID"].dt == utc(2022, 3, 17, 11)
    assert event["DTSTART"].dt == utc(2022, 3, 17, 5)


def test_all_day_event_answers_with_date_values() -> None:
    inv = parse_invitation(vcalendar(vevent("RRULE:FREQ=DAILY;COUNT=3", start="DTSTART;VALUE=DATE:20260317",
                                            end="")), BERLIN)
    master = inv.events[0]
    rid = datetime(2026, 3, 18, tzinfo=BERLIN).astimezone(timezone.utc)
    msg, _ = reply(inv, [Answer(master, "DECLINED", "conflict", rid)])
    (event,) = calendar_of(msg).walk("VEVENT")
    assert (event["RECURRENCE-ID"].dt, event["DTSTART"].dt, event["DTEND"].dt) == (
        date(2026, 3, 18), date(2026, 3, 18), date(2026, 3, 19))
    assert "2026-03-18 (all day)" in msg.get_payload()[0].get_content()


@pytest.mark.parametrize(
    "evil",
    ["Hello\r\nBcc: victim@example.net", "Hello\nBcc: victim@example.net", "Hello\rBcc: victim@example.net",
     "Hello\x00\x1b[2J\r\n\r\n<html>"],
)
def test_crlf_in_summary_or_cn_cannot_reach_a_header(evil: str) -> None:
    inv = parse_fixture(FIXTURES / "mozilla/single-event.eml")
    event = inv.events[0]
    poisoned = replace(event, summary=evil, organizer_cn=evil)
    msg, raw = reply(Invitation(inv.method, inv.uid, (poisoned,), inv.prodid), [accept(poisoned)],
                     message_id="<id@example.org>\r\nBcc: victim@example.net", name=evil)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and "Bcc" not in msg
    assert "\n" not in msg["Subject"] and msg["Subject"].startswith("Accepted: Hello")
    (vevent_,) = calendar_of(msg).walk("VEVENT")
    summary = str(vevent_["SUMMARY"])  # RFC 5545 §3.3.11: line breaks kept as escapes, other controls gone
    assert summary.startswith("Hello") and not any(ord(c) < 32 and c != "\n" for c in summary)
    assert "\n" not in vevent_["ORGANIZER"].params["CN"]


def test_no_request_message_id_means_no_threading_headers() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/single-event.eml")
    msg, _ = reply(inv, [accept(inv.events[0])], message_id=None)
    assert "In-Reply-To" not in msg and "References" not in msg


def test_message_ids_are_unique() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/single-event.eml")
    ids = {reply(inv, [accept(inv.events[0])])[0]["Message-ID"] for _ in range(5)}
    assert len(ids) == 5


def test_non_ascii_summary_round_trips() -> None:
    inv = parse_fixture(FIXTURES / "own/apple-weekly-dst.eml")
    msg, raw = reply(inv, [accept(inv.events[0])], name="Raum Zürich")
    assert raw.isascii()  # quoted-printable / encoded words only: no 8BITMIME needed
    assert msg["Subject"] == "Accepted: Weekly planning – Büro"
    assert msg["From"].addresses[0].display_name == "Raum Zürich"
    assert str(calendar_of(msg).walk("VEVENT")[0]["SUMMARY"]) == "Weekly planning – Büro"


@pytest.mark.parametrize("organizer, why", [
    ("", "it is empty"), ("not an address", "space"), ("a@b\r\nBcc: x@y", "control character"),
    ("@example.org", "local part is empty"), ("al ice@example.org", "space"),
    ("ali\x07ce@example.org", "control character"), ("@@", "more than one @"),
    ("alice@@example.org", "more than one @"), ("alice@", "domain is empty"),
    ("alice", "no @domain"), ("alice@exa mple.org", "space"),
    ("alice@bad_domain.example", "not a host name")])
def test_unusable_organizer_is_refused_with_the_reason(organizer: str, why: str) -> None:
    inv = parse_fixture(FIXTURES / "mozilla/single-event.eml")
    event = replace(inv.events[0], organizer=organizer)
    with pytest.raises(ValueError, match=f"^organizer: unusable e-mail address .*{why}"):
        build_reply(inv, [accept(event)], ROOM, "Room 1", None, NOW, "mr.example.org")


@pytest.mark.parametrize("organizer, to", [
    ("juergen@bücher.example", "juergen@xn--bcher-kva.example"),  # ASCII: A-labels
    ("jürgen@bücher.example", "jürgen@bücher.example"),  # RFC 6532: only with SMTPUTF8
    ("Marge@Example.org", "Marge@Example.org")])
def test_internationalized_organizer_gets_a_reply(organizer: str, to: str) -> None:
    inv = parse_fixture(FIXTURES / "mozilla/single-event.eml")
    event = replace(inv.events[0], organizer=organizer)
    raw = build_reply(inv, [accept(event)], ROOM, "Room 1", None, NOW, "mr.example.org")
    msg = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == to
    assert raw.isascii() == to.isascii()
    assert str(calendar_of(msg).walk("VEVENT")[0]["ORGANIZER"]) == f"mailto:{organizer}"


@pytest.mark.parametrize("conflicts", [30, 1000])
def test_long_reasons_are_wrapped_in_the_text_part(conflicts: int) -> None:
    inv = parse_fixture(FIXTURES / "mozilla/update-major.eml")
    reason = "; ".join(f"conflict on 2026-03-{d % 28 + 1:02d} 09:00-09:30 (Europe/Berlin)"
                       for d in range(conflicts))
    msg, raw = reply(inv, [Answer(inv.events[0], "DECLINED", reason, None)])
    text = " ".join(msg.get_payload()[0].get_content().split())
    assert max(map(len, raw.split(b"\r\n"))) <= 78
    assert max(map(len, msg.get_payload()[0].get_content().splitlines())) <= 78
    if len(reason) <= 2000:
        assert text.endswith(f"Reason: {reason}")  # all of it, wrapped
    else:  # the text part shows the first 2,000 characters; the COMMENT has all
        assert text.endswith(" …") and reason[:1900] in text and len(text) < 2200
    assert str(calendar_of(msg).walk("VEVENT")[0]["COMMENT"]) == reason


def test_no_answers_is_refused() -> None:
    with pytest.raises(ValueError):
        build_reply(parse_fixture(FIXTURES / "mozilla/single-event.eml"), [], ROOM, "Room 1", None, NOW, "h")
