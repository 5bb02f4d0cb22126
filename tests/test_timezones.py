"""TZID resolution (RFC 5545 §3.2.19, §3.6.5): IANA, Windows, globally unique, VTIMEZONE."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Timezone

from mr_engine.core import timezones
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.times import BERLIN

FIXTURES = checkout_of(__file__) / "fixtures"
TOKYO = ZoneInfo("Asia/Tokyo")


def vtimezone_of(path: str) -> Timezone:
    calendar = Calendar.from_ical((FIXTURES / path).read_bytes())
    return calendar.walk("VTIMEZONE")[0]


def custom_vtimezone(tzid: str, offset: str) -> Timezone:
    return Timezone.from_ical(
        f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        f"TZOFFSETFROM:{offset}\r\nTZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )


def offset_at(zone, year: int, month: int, day: int = 15) -> timedelta:
    return datetime(year, month, day, 12, tzinfo=zone).utcoffset()


@pytest.mark.parametrize(
    ("tzid", "same_as"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ('"Europe/Berlin"', "Europe/Berlin"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("w. europe standard time", "Europe/Berlin"),
        ("FLE Standard Time", "Europe/Helsinki"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("GMT Standard Time", "Europe/London"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("/mozilla.org/20070129_1/Europe/Berlin", "Europe/Berlin"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/London", "Europe/London"),
        ("/freeassociation.sourceforge.net/Europe/Berlin", "Europe/Berlin"),
        ("/freeassociation.sourceforge.net/Tzfile/America/Argentina/Buenos_Aires",
         "America/Argentina/Buenos_Aires"),
        ("/Europe/Berlin", "Europe/Berlin"),
    ],
)
def test_rfc5545_3_2_19_tzid_dialects_resolve_to_iana_rules(tzid: str, same_as: str) -> None:
    zone = timezones.lookup(tzid)
    reference = ZoneInfo(same_as)
    assert zone is not None
    for month in (1, 7):  # winter and summer offsets both match
        assert offset_at(zone, 2026, month) == offset_at(reference, 2026, month)


@pytest.mark.parametrize("tzid", ["UTC", "utc", "Z", "GMT", "Etc/UTC"])
def test_utc_aliases_resolve_to_utc(tzid: str) -> None:
    assert offset_at(timezones.lookup(tzid), 2026, 7) == timedelta(0)


@pytest.mark.parametrize(
    "tzid",
    ["", "Nowhere/Special", "Europe", "../../etc/passwd", "/", "\x00", "(UTC-03:00) Brasília",
     "Custom Zone " * 50],
)
def test_unknown_tzid_without_vtimezone_falls_back_to_default_zone(tzid: str) -> None:
    assert timezones.lookup(tzid) is None
    assert timezones.resolve(tzid, TOKYO) is TOKYO


def test_lookup_is_cached_on_the_hot_path() -> None:
    assert timezones.lookup("W. Europe Standard Time") is timezones.lookup("W. Europe Standard Time")


@pytest.mark.parametrize(
    ("path", "when", "offset"),
    [
        # Outlook's custom name with southern-hemisphere rules: May is standard time.
        ("icalendar/issue_237_fail_to_parse_timezone_with_non_ascii_tzid.ics", (2017, 5), -3),
        ("icalendar/issue_237_fail_to_parse_timezone_with_non_ascii_tzid.ics", (2017, 12), -2),
        # Fixed offset with an (invalid) DATE DTSTART in the STANDARD block.
        ("icalendar/issue_218_bad_tzid.ics", (2017, 2), 11),
    ],
)
def test_rfc5545_3_6_5_unknown_name_uses_the_senders_vtimezone(path: str, when: tuple[int, int],
                                                                offset: int) -> None:
    vtimezone = vtimezone_of(path)
    zone = timezones.resolve(str(vtimezone["TZID"]), BERLIN, vtimezone)
    assert offset_at(zone, *when) == timedelta(hours=offset)


def test_known_windows_name_wins_over_its_vtimezone() -> None:
    vtimezone = vtimezone_of("icalendar/issue_836_do_not_quote_tzid.ics")  # Eastern Standard Time
    zone = timezones.resolve("Eastern Standard Time", BERLIN, vtimezone)
    assert zone is timezones.lookup("America/New_York")


def test_same_custom_name_with_different_rules_is_not_confused() -> None:
    plus3 = timezones.resolve("Custom Zone", BERLIN, custom_vtimezone("Custom Zone", "+0300"))
    plus5 = timezones.resolve("Custom Zone", BERLIN, custom_vtimezone("Custom Zone", "+0500"))
    assert offset_at(plus3, 2026, 1) == timedelta(hours=3)
    assert offset_at(plus5, 2026, 1) == timedelta(hours=5)


def test_broken_vtimezone_falls_back_to_default_zone() -> None:
    broken = Timezone()  # no STANDARD/DAYLIGHT: icalendar cannot even parse it back
    broken.add("TZID", "Broken")
    assert timezones.resolve("Broken", TOKYO, broken) is TOKYO


@pytest.mark.parametrize(
    ("zone", "label"),
    [(BERLIN, "Europe/Berlin"), (timezone.utc, "UTC"), (ZoneInfo("UTC"), "UTC")],
)
def test_zone_label_names_the_zone(zone, label: str) -> None:
    assert timezones.zone_label(zone) == label


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        ((2026, 3, 17, 10), (2026, 3, 17, 11), "2026-03-17 11:00-12:00 (Europe/Berlin)"),
        ((2026, 7, 17, 10), (2026, 7, 17, 11), "2026-07-17 12:00-13:00 (Europe/Berlin)"),
        ((2026, 3, 17, 22), (2026, 3, 18, 1), "2026-03-17 23:00-2026-03-18 02:00 (Europe/Berlin)"),
    ],
)
def test_format_span_shows_local_wall_clock(start, end, text: str) -> None:
    utc = timezone.utc
    assert timezones.format_span(datetime(*start, tzinfo=utc), datetime(*end, tzinfo=utc), BERLIN) == text
