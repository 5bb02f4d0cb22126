"""iMIP message -> Invitation: finding the calendar part (RFC 6047) and parsing it (RFC 5545/5546)."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta
from email.message import EmailMessage, Message
from zoneinfo import ZoneInfo

import pytest

from mr_engine.core.imip import find_calendar
from mr_engine.core.itip import InvitationError, is_attendee, parse_invitation, read_calendar
from mr_engine.testing.ical import INVITED_ROOM, parse_fixture, vcalendar, vevent
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.times import BERLIN, utc

FIXTURES = checkout_of(__file__) / "fixtures"
ROOM = INVITED_ROOM
# itip.py silences this at import; pytest restores the default filters per test.
pytestmark = pytest.mark.filterwarnings("ignore::icalendar.error.GloballyUniqueTZIDGuessed")


# --- every Thunderbird fixture ---------------------------------------------------------

RECEIVER = "receiver@example.com"
MOZILLA = [
    # file, method, uid prefix, first start (UTC), minutes, invited address (None: nobody of ours)
    ("single-event.eml", "REQUEST", "02e79b96", utc(2022, 3, 16, 11), 30, RECEIVER),  # DTEND over DURATION
    ("update-minor.eml", "REQUEST", "02e79b96", utc(2022, 3, 16, 11), 30, RECEIVER),
    ("update-major.eml", "REQUEST", "02e79b96", utc(2022, 3, 16, 5), 30, RECEIVER),
    ("cancel-single-event.eml", "CANCEL", "02e79b96", utc(2022, 3, 16, 11), 30, RECEIVER),
    ("event-with-file-attachment.eml", "REQUEST", "02e79b96-file", utc(2022, 3, 16, 11), 30, RECEIVER),
    ("repeat-event.eml", "REQUEST", "02e79b96", utc(2022, 3, 16, 11), 30, RECEIVER),
    ("repeat-update-minor.eml", "REQUEST", "02e79b96", utc(2022, 3, 16, 11), 30, RECEIVER),
    ("repeat-update-major.eml", "REQUEST", "02e79b96", utc(2022, 3, 16, 5), 30, RECEIVER),
    ("exception-minor.eml", "REQUEST", "02e79b96", utc(2022, 3, 17, 11), 30, RECEIVER),
    ("exception-major.eml", "REQUEST", "02e79b96", utc(2022, 3, 17, 5), 30, RECEIVER),
    # DTSTART missing on purpose: a CANCEL still parses, its start taken from DTEND.
    ("cancel-repeat-event.eml", "CANCEL", "02e79b96", utc(2022, 3, 16, 11, 30), 0, RECEIVER),
    # FLE Standard Time is Helsinki/Kyiv time: 09:00 EET is 07:00 UTC.
    ("outlook-test-invite.eml", "REQUEST", "0300000082", utc(2021, 11, 27, 7), 30, "homer@example.org"),
    ("teams-meeting-invite.eml", "REQUEST", "0560000082", utc(2020, 12, 2, 17), 120, "homer@example.com"),
    ("meet-meeting-invite.eml", "REQUEST", "65m17hsdol", utc(2021, 3, 22, 9, 30), 60, "homer@example.com"),
    ("message-non-invite.eml", "PUBLISH", "1e5fd4e6", utc(2021, 11, 29, 8, 55), 5, None),
    ("message-containing-event.eml", "PUBLISH", "20160824T2", utc(2016, 9, 1, 6, 25), 25, None),
]


@pytest.mark.parametrize(("name", "method", "uid", "start", "minutes", "invited"), MOZILLA)
def test_rfc6047_every_thunderbird_fixture_parses(name, method, uid, start, minutes, invited) -> None:
    inv = parse_fixture(FIXTURES / f"mozilla/{name}")
    first = inv.events[0]
    assert (inv.method, first.start, first.end) == (method, start, start + timedelta(minutes=minutes))
    assert inv.uid.startswith(uid) and first.uid == inv.uid
    found = is_attendee(inv, [invited or "john.doe@example.com", "foo@example.com", ROOM])
    assert (found.address if found else None) == invited


@pytest.mark.parametrize("name", ["message-non-invite.eml", "message-containing-event.eml"])
def test_publish_with_organizer_but_no_attendee_is_not_an_invitation(name: str) -> None:
    inv = parse_fixture(FIXTURES / f"mozilla/{name}")
    assert inv.method == "PUBLISH"
    assert inv.events[0].organizer and not any(e.attendees for e in inv.events)


def test_outlook_cn_folded_mid_word_and_windows_zone_label() -> None:
    event = parse_fixture(FIXTURES / "mozilla/outlook-test-invite.eml").events[0]
    assert event.attendees[0].cn == "Homer" and event.attendees[0].rsvp
    assert (event.tzid, event.organizer, event.organizer_cn) == ("FLE Standard Time", "marge@example.org", "Marge")
    assert event.start.astimezone(ZoneInfo("Europe/Helsinki")).hour == 9


def test_google_invite_with_duplicated_calendar_part_yields_one_event() -> None:
    inv = parse_fixture(FIXTURES / "mozilla/meet-meeting-invite.eml")
    assert len(inv.events) == 1 and inv.prodid.startswith("-//Google Inc//")


def test_cancel_without_dtstart_keeps_rrule_and_exdate() -> None:
    event = parse_fixture(FIXTURES / "mozilla/cancel-repeat-event.eml").events[0]
    assert event.status == "CANCELLED" and event.sequence == 1
    assert event.rrule and event.exdates == (utc(2022, 3, 17, 11),)


# --- finding the calendar part ---------------------------------------------------------

CALENDAR = vcalendar(vevent("LOCATION:Büro"))


def mail(*parts: tuple[str, str | None, bytes, str | None]) -> Message:
    """multipart/mixed of (content type, transfer encoding, payload, filename)."""
    msg = EmailMessage()
    msg["Subject"] = "Invitation"
    msg.set_content("see attachment")
    for ctype, cte, payload, filename in parts:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(payload, maintype=maintype.lower(), subtype=subtype.lower(), cte=cte,
                           filename=filename)
        if ctype != ctype.lower():
            del msg.get_payload()[-1]["Content-Type"]
            msg.get_payload()[-1]["Content-Type"] = f"{ctype}; method=REQUEST"
    return email.message_from_bytes(msg.as_bytes(policy=email.policy.SMTP))


@pytest.mark.parametrize("cte", ["base64", "quoted-printable", "7bit", "8bit"])
@pytest.mark.parametrize("ctype", ["text/calendar", "TEXT/CALENDAR", "Text/Calendar"])
def test_rfc6047_text_calendar_part_in_any_case_and_encoding(ctype: str, cte: str) -> None:
    data = CALENDAR if cte != "7bit" else CALENDAR.replace("Büro".encode(), b"Buero")
    assert find_calendar(mail((ctype, cte, data, None))) == data


@pytest.mark.parametrize(
    "parts",
    [
        [("application/ics", "base64", CALENDAR, "invite.ics")],
        [("application/octet-stream", "base64", CALENDAR, "Meeting.ICS")],
        # text/calendar wins even when an application/ics copy comes first
        [("application/ics", "base64", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "x.ics"),
         ("text/calendar", "base64", CALENDAR, None)],
    ],
)
def test_calendar_attachment_fallbacks(parts) -> None:
    assert find_calendar(mail(*parts)) == CALENDAR


def test_whole_message_may_be_the_calendar() -> None:
    msg = email.message_from_bytes(b"Content-Type: text/calendar; method=REQUEST\r\n\r\n" + CALENDAR)
    assert find_calendar(msg) == CALENDAR


def test_empty_calendar_part_is_skipped() -> None:
    assert find_calendar(mail(("text/calendar", "7bit", b"", None),
                              ("text/calendar", "base64", CALENDAR, None))) == CALENDAR


def test_no_calendar_part_gives_none() -> None:
    assert find_calendar(mail(("application/pdf", "base64", b"%PDF-1.4", "agenda.pdf"))) is None


def test_invitation_inside_a_forwarded_message_is_not_ours() -> None:
    inner = mail(("text/calendar", "base64", CALENDAR, None))
    outer = EmailMessage()
    outer.set_content("forwarded")
    outer.add_attachment(inner)
    assert find_calendar(email.message_from_bytes(outer.as_bytes())) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/calendar\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
        b"Content-Type: text/calendar; charset=no-such-charset\r\n\r\nBEGIN:VCALENDAR\r\n",
        b"\x00\xff garbage",
    ],
)
def test_broken_mime_never_raises(raw: bytes) -> None:
    find_calendar(email.message_from_bytes(raw))


def test_declared_charset_is_converted_to_utf8() -> None:
    latin = CALENDAR.decode("utf-8").encode("latin-1")
    msg = email.message_from_bytes(b"Content-Type: text/calendar; charset=iso-8859-1\r\n"
                                   b"Content-Transfer-Encoding: 8bit\r\n\r\n" + latin)
    assert find_calendar(msg) == CALENDAR


# --- tolerated dialects ----------------------------------------------------------------

VTIMEZONE_HELSINKI = "\r\n".join([
    "BEGIN:VTIMEZONE", "TZID:FLE Standard Time", "BEGIN:STANDARD", "DTSTART:16010101T040000",
    "TZOFFSETFROM:+0300", "TZOFFSETTO:+0200", "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", "END:STANDARD",
    "BEGIN:DAYLIGHT", "DTSTART:16010101T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0300",
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT", "END:VTIMEZONE"])


def quirk(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("plain", CALENDAR),
        ("utf-8 BOM", b"\xef\xbb\xbf" + CALENDAR),
        ("bare LF", CALENDAR.replace(b"\r\n", b"\n")),
        ("no VERSION/PRODID", quirk(CALENDAR, b"VERSION:2.0\r\nPRODID:-//mr-engine tests//EN\r\n", b"")),
        ("MAILTO upper case", quirk(CALENDAR, b"mailto:room1", b"MAILTO:ROOM1")),
        ("CN folded mid-word", quirk(CALENDAR, b"CN=Room 1;", b"CN=Ro\r\n om 1;")),
        ("folded with TAB", quirk(CALENDAR, b"CN=Room 1;", b"CN=Room\r\n\t 1;")),
        ("blank line", quirk(CALENDAR, b"SUMMARY:Planning\r\n", b"SUMMARY:Planning\r\n\r\n")),
        ("quoted TZID", vcalendar(VTIMEZONE_HELSINKI, vevent(
            start='DTSTART;TZID="FLE Standard Time":20260317T120000',
            end='DTEND;TZID="FLE Standard Time":20260317T130000'))),
        ("unquoted TZID with spaces", vcalendar(VTIMEZONE_HELSINKI, vevent(
            start="DTSTART;TZID=FLE Standard Time:20260317T120000",
            end="DTEND;TZID=FLE Standard Time:20260317T130000"))),
        ("Windows name without VTIMEZONE", vcalendar(vevent(
            start="DTSTART;TZID=FLE Standard Time:20260317T120000",
            end="DTEND;TZID=FLE Standard Time:20260317T130000"))),
    ],
)
def test_client_dialects_are_tolerated(case: str, data: bytes) -> None:
    inv = parse_invitation(data, ZoneInfo("Asia/Tokyo"))
    event = inv.events[0]
    assert (event.start, event.end) == (utc(2026, 3, 17, 10), utc(2026, 3, 17, 11)), case
    attendee = is_attendee(inv, [ROOM])
    assert attendee is not None and attendee.cn == "Room 1", case


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no VEVENT"),
        (b"hello world", "unparseable calendar"),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "no VEVENT"),
        ((FIXTURES / "icalendar/bom_calendar.ics").read_bytes(), "no VEVENT"),
        ((FIXTURES / "icalendar/issue_27_multiple_periods_in_freebusy_multiple_freebusies.ics").read_bytes(),
         "no VEVENT"),
        ((FIXTURES / "icalendar/issue_165_missing_event.ics").read_bytes(), "without UID"),
        (vcalendar(vevent(start="")), "DTSTART"),
        (vcalendar(vevent(start="DTSTART:garbage")), "DTSTART"),
        (vcalendar(vevent(start="", end=""), method="CANCEL"), "DTSTART"),
    ],
)
def test_unusable_calendar_raises_invitation_error(data: bytes, reason: str) -> None:
    with pytest.raises(InvitationError) as raised:
        parse_invitation(data, BERLIN)
    assert reason in raised.value.reason


# --- times (RFC 5545 §3.3.4, §3.3.5, §3.6.1) ------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("DTSTART:20260317T100000Z", "DTEND:20260317T113000Z", (utc(2026, 3, 17, 10), utc(2026, 3, 17, 11, 30))),
        ("DTSTART:20260317T100000Z", "DURATION:PT45M", (utc(2026, 3, 17, 10), utc(2026, 3, 17, 10, 45))),
        ("DTSTART:20260317T100000Z", "DTEND:20260317T103000Z\r\nDURATION:PT1H",
         (utc(2026, 3, 17, 10), utc(2026, 3, 17, 10, 30))),  # both present: DTEND wins
        ("DTSTART:20260317T100000Z", "", (utc(2026, 3, 17, 10), utc(2026, 3, 17, 10))),  # zero length
        ("DTSTART:20260317T100000Z", "DTEND:20260317T090000Z", (utc(2026, 3, 17, 10), utc(2026, 3, 17, 10))),
        # floating time: read in the default zone (Berlin, UTC+1 in March)
        ("DTSTART:20260317T100000", "DTEND:20260317T110000", (utc(2026, 3, 17, 9), utc(2026, 3, 17, 10))),
        # all-day: midnight to midnight in the default zone, one day when DTEND is missing
        ("DTSTART;VALUE=DATE:20260317", "", (utc(2026, 3, 16, 23), utc(2026, 3, 17, 23))),
        ("DTSTART;VALUE=DATE:20260317", "DTEND;VALUE=DATE:20260319", (utc(2026, 3, 16, 23), utc(2026, 3, 18, 23))),
        # all-day across the DST switch: a nominal day is 23 hours (RFC 5545 §3.3.6)
        ("DTSTART;VALUE=DATE:20260329", "DURATION:P1D", (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))),
        # an unknown TZID without VTIMEZONE falls back to the default zone
        ("DTSTART;TZID=Nowhere/Special:20260317T100000", "", (utc(2026, 3, 17, 9), utc(2026, 3, 17, 9))),
    ],
)
def test_rfc5545_3_6_1_start_and_end(start: str, end: str, expected) -> None:
    event = parse_invitation(vcalendar(vevent(start=start, end=end)), BERLIN).events[0]
    assert (event.start, event.end) == expected
    assert event.all_day == ("VALUE=DATE" in start)


@pytest.mark.parametrize(
    ("name", "start", "tzid"),
    [
        ("icalendar/timezone_same_start.ics", utc(2017, 2, 24, 20), "Pacific Standard Time"),
        ("icalendar/timezone_same_start_and_offset.ics", utc(2017, 2, 24, 3), "Tokyo Standard Time"),
        ("icalendar/issue_836_do_not_quote_tzid.ics", utc(2024, 10, 28, 21), "Eastern Standard Time"),
        ("icalendar/issue_218_bad_tzid.ics", utc(2017, 2, 28, 12), "UTC+11"),
        ("icalendar/issue_313_globally_unique_tzid.ics", utc(2020, 4, 26, 12),
         "/freeassociation.sourceforge.net/Europe/Berlin"),
        ("icalendar/america_new_york_forward_reference.ics", utc(2014, 8, 29, 12),
         "custom_America/New_York_Forward_reference"),
        ("icalendar/issue_350.ics", utc(2022, 2, 22, 18, 30), "UTC"),
        ("icalendar/x_location.ics", utc(2016, 10, 28, 12), "Europe/Zurich"),
        ("icalendar/property_params.ics", utc(2012, 8, 13, 22), "Europe/Berlin"),  # all-day, default zone
        ("own/exchange-series-exception.eml", utc(2026, 3, 16, 13), "W. Europe Standard Time"),
        ("own/apple-weekly-dst.eml", utc(2026, 3, 17, 8), "Europe/Berlin"),
    ],
)
def test_rfc5545_3_2_19_zones_of_real_clients(name: str, start: datetime, tzid: str) -> None:
    event = parse_fixture(FIXTURES / name).events[0]
    assert (event.start, event.tzid) == (start, tzid)


def test_broken_vtimezone_does_not_lose_the_invitation() -> None:
    broken = "BEGIN:VTIMEZONE\r\nTZID:Broken\r\nEND:VTIMEZONE"
    data = vcalendar(broken, vevent(start="DTSTART;TZID=Broken:20260317T100000", end=""))
    assert parse_invitation(data, BERLIN).events[0].start == utc(2026, 3, 17, 9)


# --- recurrence data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected", "future"),
    [
        ("RECURRENCE-ID:20260317T100000Z", utc(2026, 3, 17, 10), False),
        ("RECURRENCE-ID;TZID=Europe/Berlin:20260317T100000", utc(2026, 3, 17, 9), False),
        ("RECURRENCE-ID;VALUE=DATE:20260317", utc(2026, 3, 16, 23), False),  # midnight in the zone
        ("RECURRENCE-ID;RANGE=THISANDFUTURE:20260317T100000Z", utc(2026, 3, 17, 10), True),
    ],
)
def test_rfc5545_3_8_4_4_recurrence_id(line: str, expected: datetime, future: bool) -> None:
    event = parse_invitation(vcalendar(vevent(line)), BERLIN).events[0]
    assert (event.recurrence_id, event.this_and_future) == (expected, future)


def test_rdate_periods_keep_their_duration() -> None:
    master = parse_fixture(FIXTURES / "icalendar/rfc_7265_appendix_example_2_ical.ics").events[0]
    assert master.rrule == ("FREQ=DAILY;COUNT=5",)
    assert master.rdates == (datetime(2006, 1, 2, 15, tzinfo=ZoneInfo("US/Eastern")),)
    assert master.rdate_periods == ((master.rdates[0], timedelta(hours=2)),)


def test_lotus_thisandfuture_override_with_rdate_period_list() -> None:
    (event,) = parse_fixture(FIXTURES / "icalendar/issue_156_RDATE_with_PERIOD_TZID_khal_2.ics").events
    assert event.this_and_future and event.recurrence_id == utc(2021, 11, 1, 15)
    assert [length for _, length in event.rdate_periods] == [timedelta(minutes=30)] * 4


def test_outlook_date_time_exdate_on_all_day_series_keeps_its_zone() -> None:
    event = parse_fixture(FIXTURES / "icalendar/alarm_outlook_in_future.ics").events[0]
    assert event.all_day and event.exdate_days == ()
    assert [e.date().isoformat() for e in event.exdates] == ["2024-07-15"]


def test_exdate_value_date_is_kept_as_a_day() -> None:
    data = vcalendar(vevent("RRULE:FREQ=DAILY;COUNT=3", "EXDATE;VALUE=DATE:20260318"))
    event = parse_invitation(data, BERLIN).events[0]
    assert [d.isoformat() for d in event.exdate_days] == ["2026-03-18"]


def test_unparseable_rrule_is_kept_raw_for_recurrence_to_judge() -> None:
    data = vcalendar(vevent("RRULE:FREQ=DAILY;COUNT=3;BYDAY=MO, TU"))
    assert parse_invitation(data, BERLIN).events[0].rrule == ("FREQ=DAILY;COUNT=3;BYDAY=MO, TU",)


def test_master_first_then_overrides_by_recurrence_id_and_only_the_first_uid() -> None:
    data = vcalendar(
        vevent("RECURRENCE-ID:20260324T100000Z", "SUMMARY:second"),
        vevent("RRULE:FREQ=WEEKLY;COUNT=4"),
        vevent("RECURRENCE-ID:20260317T100000Z", "SUMMARY:first"),
        vevent(uid="someone-else@example.org"),
    )
    inv = parse_invitation(data, BERLIN)
    assert inv.master is inv.events[0] and inv.master.rrule
    assert [e.recurrence_id for e in inv.events[1:]] == [utc(2026, 3, 17, 10), utc(2026, 3, 24, 10)]
    assert {e.uid for e in inv.events} == {"meeting-1@example.org"}


def test_override_only_request_has_no_master() -> None:
    assert parse_fixture(FIXTURES / "mozilla/exception-minor.eml").master is None


# --- people and the rest ---------------------------------------------------------------------


@pytest.mark.parametrize("address", [ROOM, "ROOM1@EXAMPLE.ORG", "mailto:Room1@Example.org", " room1@example.org "])
def test_is_attendee_ignores_case_and_mailto(address: str) -> None:
    assert is_attendee(parse_invitation(CALENDAR, BERLIN), [address]) is not None


def test_is_attendee_none_for_other_addresses_and_organizer() -> None:
    assert is_attendee(parse_invitation(CALENDAR, BERLIN), ["alice@example.org", "room2@example.org"]) is None


def test_rfc5545_attendee_parameters_and_upper_case_mailto() -> None:
    inv = parse_fixture(FIXTURES / "icalendar/property_params.ics")
    event = inv.events[0]
    assert event.organizer == "rembrand@daxlab.com" and event.sequence == 2
    assert [(a.address, a.cn, a.partstat, a.rsvp) for a in event.attendees][:2] == [
        ("rembrand@xs4all.nl", "RembrandXS", "NEEDS-ACTION", True),
        ("rembrand@daxlab.com", "RembrandDX", "NEEDS-ACTION", True)]


def test_own_fixtures_apple_and_exchange_name_the_resource() -> None:
    apple = parse_fixture(FIXTURES / "own/apple-weekly-dst.eml")
    exchange = parse_fixture(FIXTURES / "own/exchange-series-exception.eml")
    assert is_attendee(apple, [ROOM]).cn == "Room 1 (Berlin)"
    assert apple.events[0].summary == "Weekly planning – Büro"
    assert is_attendee(exchange, ["beamer2@example.org"]).address == "beamer2@example.org"
    assert exchange.events[0].organizer == "bob.organizer@example.org"
    assert len(exchange.events) == 2 and exchange.events[1].summary == "Status review (moved)"


@pytest.mark.parametrize(
    ("lines", "sequence", "transparent", "status"),
    [
        ((), 0, False, ""),
        (("SEQUENCE:3", "TRANSP:TRANSPARENT", "STATUS:confirmed"), 3, True, "CONFIRMED"),
        (("SEQUENCE:not-a-number", "TRANSP:OPAQUE", "STATUS:CANCELLED"), 0, False, "CANCELLED"),
    ],
)
def test_sequence_transparency_and_status(lines, sequence: int, transparent: bool, status: str) -> None:
    event = parse_invitation(vcalendar(vevent(*lines)), BERLIN).events[0]
    assert (event.sequence, event.transparent, event.status) == (sequence, transparent, status)
    assert event.dtstamp == utc(2026, 3, 1, 12)


def test_vevent_is_kept_serialized_for_storage() -> None:
    event = parse_invitation(CALENDAR, BERLIN).events[0]
    assert event.ical.startswith("BEGIN:VEVENT") and "UID:meeting-1@example.org" in event.ical


LONG = "DESCRIPTION:" + "x" * 100  # folded when serialized, not when kept as received


def test_vevent_is_kept_as_received() -> None:
    # The sender's text, long line and order of properties as they were, CRLF-terminated.
    text = vevent(LONG, "X-ORDER:last")
    event = parse_invitation(vcalendar(text), BERLIN).events[0]
    assert event.ical == text + "\r\n"


@pytest.mark.parametrize("calendar", [
    vcalendar(vevent(LONG)).replace(b"BEGIN:VEVENT", b"Begin:VEvent"),  # not cut from the text
    vcalendar(vevent(LONG)) + vcalendar(vevent(uid="other@example.org")),  # which one is read?
    vcalendar(vevent(LONG, "CREATED:x")),  # icalendar noted an error in the VEVENT
])
def test_vevent_is_serialized_again_when_its_text_is_not_known(calendar: bytes) -> None:
    event = parse_invitation(calendar, BERLIN).events[0]
    assert event.ical.startswith("BEGIN:VEVENT") and "UID:meeting-1@example.org" in event.ical
    assert "x" * 100 not in event.ical


def custom_zone(offset: str) -> str:
    return "\r\n".join(["BEGIN:VTIMEZONE", "TZID:Customized Time Zone", "BEGIN:STANDARD",
                        "DTSTART:19700101T000000", f"TZOFFSETFROM:{offset}",
                        f"TZOFFSETTO:{offset}", "END:STANDARD", "END:VTIMEZONE"])


def test_senders_vtimezone_is_cached_by_its_text_as_received(monkeypatch) -> None:
    # Another message with the zone finds its tzinfo without serializing the zone again
    # (icalendar's parse and its first build of the zone may); a zone of the same name
    # with other rules is another zone.
    local = "DTSTART;TZID=Customized Time Zone:20260317T100000"
    for offset, hour in (("+0300", 7), ("+0500", 5)):
        data = vcalendar(custom_zone(offset), vevent(start=local, end="DURATION:PT1H"))
        message = b"Content-Type: text/calendar\n\n" + data
        assert parse_invitation(data, BERLIN).events[0].start == utc(2026, 3, 17, hour)
        calendar = read_calendar(email.message_from_bytes(message))
        with monkeypatch.context() as patch:
            patch.setattr("icalendar.Timezone.to_ical", lambda self: pytest.fail("serialized"))
            assert parse_invitation(calendar, BERLIN).events[0].start == utc(2026, 3, 17, hour)
