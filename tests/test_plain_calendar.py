"""mr_engine.core.plain_calendar against icalendar: the same invitation, or the same error.

``itip.parse_invitation`` reads a calendar with plain_calendar where it can and with
icalendar otherwise; either way the Invitation must be the one icalendar's reading gives,
for every real invitation in fixtures/ and for thousands of calendars made from them by
changing, adding, folding and removing lines. The real invitations of the common kind must
actually be read the plain way (else the tests would hold for a reader that gave up on all).
"""

from __future__ import annotations

import datetime as dt
import email
import pathlib
import zoneinfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bench.messages import invite, invite_template
from mr_engine.core import itip, plain_calendar
from mr_engine.core.imip import find_calendar

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
ZONES = [dt.timezone.utc, zoneinfo.ZoneInfo("Europe/Berlin"), zoneinfo.ZoneInfo("America/New_York")]
PATHS = sorted([*FIXTURES.rglob("*.ics"), *FIXTURES.rglob("*.eml")])
# Real invitations of the kinds the engine meets most (Outlook, Exchange, Teams, Google Meet,
# Thunderbird, Apple), which must take the plain way.
PLAIN = ["outlook-test-invite.eml", "exchange-series-exception.eml", "teams-meeting-invite.eml",
         "meet-meeting-invite.eml", "repeat-event.eml", "exception-major.eml",
         "apple-weekly-dst.eml", "alarm_outlook_in_future.ics", "issue_313_globally_unique_tzid.ics"]


def _calendar_bytes(path: pathlib.Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".eml":
        data = find_calendar(email.message_from_bytes(data)) or b""
    return data


def _bench_invitation() -> bytes:
    start = dt.datetime(2027, 3, 1, 9, tzinfo=dt.timezone.utc)
    raw = invite(invite_template("room@example.org"), "uid-1@example.org", start,
                 start + dt.timedelta(hours=1), "m1@example.org")
    return find_calendar(email.message_from_bytes(raw)) or b""


def _outcome(data: bytes, zone: dt.tzinfo) -> object:
    try:
        return itip.parse_invitation(data, zone)
    except itip.InvitationError as exc:
        return "InvitationError", exc.reason
    except Exception as exc:  # noqa: BLE001 - whatever icalendar raises, both must raise it
        return type(exc).__name__


def _both(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], list[object]]:
    plain = [_outcome(data, zone) for zone in ZONES]
    with monkeypatch.context() as patch:
        patch.setattr(plain_calendar, "read", lambda text: None)
        reference = [_outcome(data, zone) for zone in ZONES]
    return plain, reference


def _plain_read(data: bytes) -> bool:
    return plain_calendar.read(itip._text(data)) is not None


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_every_real_invitation_reads_as_icalendar_reads_it(
        path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain, reference = _both(_calendar_bytes(path), monkeypatch)
    assert plain == reference


@pytest.mark.parametrize("name", PLAIN)
def test_the_common_kinds_are_read_the_plain_way(name: str) -> None:
    path = next(p for p in PATHS if p.name == name)
    assert _plain_read(_calendar_bytes(path))


def test_the_benchmarks_meeting_request_is_read_the_plain_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = _bench_invitation()
    assert _plain_read(data)
    plain, reference = _both(data, monkeypatch)
    assert plain == reference and isinstance(plain[0], itip.Invitation)


@pytest.mark.parametrize("text", [
    # icalendar gives these a meaning of its own, or one that depends on what it has seen.
    "DTSTART;TZID=Europe/Berlin:20270301",  # a DATE with a TZID: a date-time if zone known
    "DTSTART;TZID=Custom Zone:20270301T090000",  # only the sender's VTIMEZONE says
    "CATEGORIES:a,b", "RDATE:", "BEGIN:X-THING", "begin:VALARM", "SEQUENCE:99999999999",
    'ATTENDEE;VALUE="a","b":mailto:a@b',
    "ORGANIZER:mailto:a\\nb@example.org",  # icalendar's vCalAddress refuses a line end
])
def test_what_only_icalendar_reads_is_left_to_it(text: str) -> None:
    assert not _plain_read(_with_line(text))


@pytest.mark.parametrize("text", [
    "RRULE;VALUE=DATE:20270301T090000",  # icalendar's own value object, with its Parameters
    "RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE;TZID=Europe/Berlin:20270308T090000,20270315T090000",
    "RDATE;VALUE=PERIOD:20270310T090000Z/PT1H", "SEQUENCE:7", "SUMMARY:a\\, b\\; c",
    'ATTENDEE;CN="Doe, Jane";PARTSTAT=ACCEPTED:mailto:jane@example.org',
    "RECURRENCE-ID;RANGE=THISANDFUTURE:20270301T090000Z", "DTEND;VALUE=DATE:20270302",
])
def test_lines_the_plain_way_reads_as_icalendar_does(
        text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _with_line(text)
    plain, reference = _both(data, monkeypatch)
    assert _plain_read(data) and plain == reference


def _with_line(text: str) -> bytes:
    """The benchmark's meeting request with the line *text* added to its VEVENT."""
    lines = _bench_invitation().decode().replace("\r\n", "\n").split("\n")
    lines.insert(lines.index("END:VEVENT"), text)
    return "\n".join(lines).encode()


def test_a_zone_after_the_events_or_inside_one_is_left_to_icalendar() -> None:
    data = _calendar_bytes(next(p for p in PATHS if p.name == "outlook-test-invite.eml"))
    text = itip._text(data)
    zone = plain_calendar.VTIMEZONE.search(text)
    assert zone is not None and _plain_read(data)
    rest = text.replace(zone.group(), "")
    after = rest.replace("END:VCALENDAR", zone.group() + "END:VCALENDAR")
    inside = rest.replace("END:VEVENT", zone.group() + "END:VEVENT", 1)
    assert not _plain_read(after.encode()) and not _plain_read(inside.encode())


# --- calendars made from the real ones ------------------------------------------------------

_BASES = [_bench_invitation(), *(_calendar_bytes(p) for p in PATHS if p.name in PLAIN)]
_NAMES = ["DTSTART", "DTEND", "DTSTAMP", "RECURRENCE-ID", "RDATE", "EXDATE", "DURATION",
          "RRULE", "SEQUENCE", "UID", "SUMMARY", "ORGANIZER", "ATTENDEE", "STATUS", "TRANSP",
          "METHOD", "PRODID", "CATEGORIES", "CREATED", "PRIORITY", "TRIGGER", "GEO", "URL",
          "X-FOO", "BEGIN", "END", "dtstart", "Attendee", "TZID", "TZOFFSETFROM"]
_PARAMS = ["TZID=Europe/Berlin", "TZID=W. Europe Standard Time", "TZID=Custom Zone",
           'TZID="Europe/Berlin"', "TZID=/mozilla.org/20070129_1/Europe/Berlin", "VALUE=DATE",
           "VALUE=DATE-TIME", "VALUE=PERIOD", "VALUE=TEXT", "value=date", "CN=X", 'CN="Doe, J"',
           "RANGE=THISANDFUTURE", "PARTSTAT=ACCEPTED", "RSVP=FALSE", "CUTYPE=ROOM",
           "EMAIL=a@b.example", "X-P=1", "CN=", "CN=a^nb"]
_VALUES = ["20270301", "20270301T090000", "20270301T090000Z", "20271301T000000", "PT1H",
           "-PT15M", "P1D", "FREQ=WEEKLY;COUNT=3", "FREQ=DAILY;UNTIL=20270310T000000Z",
           "freq=weekly", "FREQ=YEARLY;BYDAY=1SU;BYMONTH=3", "5", "-1", "99999999999",
           "mailto:a@b.example", "urn:uuid:x", "a\\,b\\;c\\nd\\\\", "", "VEVENT", "VALARM",
           "VTIMEZONE", "STANDARD", "20270301T090000/PT1H", "20270301T090000Z,20270302T090000Z",
           "20270301,20270302", "1.5;2.5", "TRANSPARENT", "CANCELLED", "REQUEST", "x:y;z",
           "Jörg", "+0100"]
_LINES = st.builds(
    lambda name, params, value: name + "".join(f";{p}" for p in params) + ":" + value,
    st.sampled_from(_NAMES), st.lists(st.sampled_from(_PARAMS), max_size=2),
    st.sampled_from(_VALUES))
# (what, where in the calendar's lines, a line, where in a line to fold)
_CHANGES = st.lists(st.tuples(st.sampled_from(["insert", "replace", "delete", "fold", "upper"]),
                              st.integers(0, 10**6), _LINES, st.integers(0, 10**6)),
                    min_size=1, max_size=3)


def _changed(data: bytes, changes: list[tuple[str, int, str, int]]) -> bytes:
    lines = itip._text(data).split("\n")
    for what, where, line, cut in changes:
        i = 1 + where % max(len(lines) - 2, 1)
        if what == "insert":
            lines.insert(i, line)
        elif what == "replace":
            lines[i] = line
        elif what == "delete":
            del lines[i]
        elif what == "fold" and lines[i]:
            at = 1 + cut % len(lines[i])
            lines[i] = lines[i][:at] + "\n " + lines[i][at:]
        elif what == "upper":
            lines[i] = lines[i].upper()
    return "\n".join(lines).encode()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(range(len(_BASES))), changes=_CHANGES)
def test_changed_invitations_read_as_icalendar_reads_them(
        base: int, changes: list[tuple[str, int, str, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    plain, reference = _both(_changed(_BASES[base], changes), monkeypatch)
    assert plain == reference


@pytest.mark.parametrize("name", PLAIN)
def test_one_read_serves_every_zone(name: str) -> None:
    """The LMTP handler reads a message's calendar once and each resource's zone from it."""
    data = _calendar_bytes(next(p for p in PATHS if p.name == name))
    calendar = itip._load_calendar(data)
    assert isinstance(calendar, plain_calendar.PlainComponent)
    for zone in [*ZONES, *reversed(ZONES)]:
        assert itip.invitation_in(calendar, zone) == itip.parse_invitation(data, zone)
