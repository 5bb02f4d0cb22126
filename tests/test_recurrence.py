"""Recurrence expansion (RFC 5545 §3.8.5, §3.8.4.4): rules, dates, overrides, bounds."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mr_engine.core.itip import Invitation, parse_invitation
from mr_engine.core.recurrence import RecurrenceError, expand, is_recurring

from mr_engine.testing.ical import parse_fixture, vcalendar, vevent
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.times import BERLIN, utc

FIXTURES = checkout_of(__file__) / "fixtures"
FAR = utc(2030, 1, 1)


def invitation(*vevents: str, zone=BERLIN) -> Invitation:
    return parse_invitation(vcalendar(*vevents), zone)


def master(*lines: str) -> str:
    """A VEVENT starting Monday 2026-03-02 10:00-11:00 UTC."""
    return vevent(*lines, start="DTSTART:20260302T100000Z", end="DTEND:20260302T110000Z")


def series(rule: str, *lines: str, start: str = "DTSTART:20260302T100000Z",
           end: str = "DTEND:20260302T110000Z") -> Invitation:
    return invitation(vevent(f"RRULE:{rule}", *lines, start=start, end=end))


def starts(instances, zone=timezone.utc) -> list[str]:
    return [i.start.astimezone(zone).strftime("%Y-%m-%d %H:%M") for i in instances]


# --- wall clock across DST -----------------------------------------------------------


@pytest.mark.parametrize(
    "inv",
    [
        parse_fixture(FIXTURES / "own/apple-weekly-dst.eml"),  # Apple, VTIMEZONE Europe/Berlin
        series("FREQ=WEEKLY;COUNT=4", start="DTSTART;TZID=W. Europe Standard Time:20260317T090000",
               end="DTEND;TZID=W. Europe Standard Time:20260317T100000"),  # Windows name, no VTIMEZONE
    ],
)
def test_weekly_meeting_keeps_local_time_across_dst_switch(inv: Invitation) -> None:
    instances = expand(inv, FAR, 100)
    assert starts(instances, BERLIN) == ["2026-03-17 09:00", "2026-03-24 09:00", "2026-03-31 09:00",
                                         "2026-04-07 09:00"]
    assert starts(instances) == ["2026-03-17 08:00", "2026-03-24 08:00", "2026-03-31 07:00", "2026-04-07 07:00"]
    assert all(i.end - i.start == timedelta(hours=1) for i in instances)
    assert [i.recurrence_id for i in instances] == [i.start for i in instances]


def test_exchange_series_with_exdate_and_moved_exception() -> None:
    instances = expand(parse_fixture(FIXTURES / "own/exchange-series-exception.eml"), FAR, 100)
    assert starts(instances, BERLIN) == ["2026-03-16 14:00", "2026-03-23 14:00", "2026-03-30 14:00",
                                         "2026-04-13 16:00", "2026-04-20 14:00"]  # 04-06 excluded
    moved = instances[3]
    assert moved.recurrence_id == utc(2026, 4, 13, 12) and moved.summary == "Status review (moved)"


# --- RDATE, EXDATE ------------------------------------------------------------------------


def test_rfc7265_rdate_period_and_override() -> None:
    instances = expand(parse_fixture(FIXTURES / "icalendar/rfc_7265_appendix_example_2_ical.ics"), FAR, 100)
    eastern = ZoneInfo("US/Eastern")
    assert starts(instances, eastern) == ["2006-01-02 12:00", "2006-01-02 15:00", "2006-01-03 12:00",
                                          "2006-01-04 14:00", "2006-01-05 12:00", "2006-01-06 12:00"]
    assert [i.end - i.start for i in instances] == [timedelta(hours=h) for h in (1, 2, 1, 1, 1, 1)]


def test_rdate_period_and_exdate_with_tzid_across_dst() -> None:
    instances = expand(parse_fixture(FIXTURES / "icalendar/period_with_timezone.ics"), FAR, 100)
    local = starts(instances, ZoneInfo("America/Vancouver"))
    assert len(local) == 9 and all(s.endswith("12:00") for s in local)
    assert "2023-12-20 12:00" not in local and "2023-12-13 12:00" in local
    rdate = instances[local.index("2023-12-13 12:00")]
    assert rdate.end - rdate.start == timedelta(hours=3)


@pytest.mark.parametrize(
    ("exdate", "expected"),
    [
        ("EXDATE:20260303T100000Z", ["2026-03-02 10:00", "2026-03-04 10:00"]),
        ("EXDATE;TZID=Europe/Berlin:20260303T110000", ["2026-03-02 10:00", "2026-03-04 10:00"]),
        ("EXDATE;VALUE=DATE:20260304", ["2026-03-02 10:00", "2026-03-03 10:00"]),  # date on a timed series
        ("EXDATE:20260303T100100Z", ["2026-03-02 10:00", "2026-03-03 10:00", "2026-03-04 10:00"]),
    ],
)
def test_rfc5545_3_8_5_1_exdate(exdate: str, expected: list[str]) -> None:
    assert starts(expand(series("FREQ=DAILY;COUNT=3", exdate), FAR, 100)) == expected


def test_outlook_date_time_exdate_removes_day_of_all_day_series() -> None:
    inv = parse_fixture(FIXTURES / "icalendar/alarm_outlook_in_future.ics", ZoneInfo("Europe/London"))
    instances = expand(inv, FAR, 100)
    london = ZoneInfo("Europe/London")
    assert starts(instances, london) == ["2024-07-01 00:00", "2024-07-29 00:00"]  # 07-15 excluded
    assert all(i.end - i.start == timedelta(days=7) for i in instances)


# --- overrides ----------------------------------------------------------------------------


def test_rfc5545_3_8_4_4_thisandfuture_shifts_all_later_instances() -> None:
    inv = invitation(
        master("RRULE:FREQ=WEEKLY;COUNT=5"),
        vevent("RECURRENCE-ID;RANGE=THISANDFUTURE:20260316T100000Z", "SUMMARY:moved",
               start="DTSTART:20260316T120000Z", end="DTEND:20260316T133000Z"))
    instances = expand(inv, FAR, 100)
    assert starts(instances) == ["2026-03-02 10:00", "2026-03-09 10:00", "2026-03-16 12:00",
                                 "2026-03-23 12:00", "2026-03-30 12:00"]
    assert [i.summary for i in instances] == ["Planning"] * 2 + ["moved"] * 3
    assert instances[4].end - instances[4].start == timedelta(minutes=90)
    assert instances[4].recurrence_id == utc(2026, 3, 30, 10)


def test_thisandfuture_shift_back_pulls_an_instance_into_the_window() -> None:
    inv = invitation(
        master("RRULE:FREQ=DAILY"),
        vevent("RECURRENCE-ID;RANGE=THISANDFUTURE:20260303T100000Z",
               start="DTSTART:20260303T070000Z", end="DTEND:20260303T080000Z"))
    assert starts(expand(inv, utc(2026, 3, 5, 9), 100)) == [
        "2026-03-02 10:00", "2026-03-03 07:00", "2026-03-04 07:00", "2026-03-05 07:00"]


def test_lotus_lone_thisandfuture_override_expands_its_rdates() -> None:
    instances = expand(parse_fixture(FIXTURES / "icalendar/issue_156_RDATE_with_PERIOD_TZID_khal_2.ics"), FAR, 100)
    assert starts(instances) == ["2021-11-01 15:00", "2021-12-06 15:00", "2022-01-03 15:00", "2022-02-07 15:00"]


@pytest.mark.parametrize(
    ("rid", "moved_to", "included"),
    [
        ("20260323T100000Z", "20260319T100000Z", True),  # original after window_end, moved inside
        ("20260309T100000Z", "20260325T100000Z", False),  # moved beyond window_end
    ],
)
def test_override_counts_by_its_own_time(rid: str, moved_to: str, included: bool) -> None:
    inv = invitation(master("RRULE:FREQ=WEEKLY;COUNT=4"),
                     vevent(f"RECURRENCE-ID:{rid}", start=f"DTSTART:{moved_to}", end=""))
    instances = expand(inv, utc(2026, 3, 20), 100)
    rids = [i.recurrence_id for i in instances]
    assert (datetime.strptime(rid, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) in rids) == included
    assert sorted(i.start for i in instances) == [i.start for i in instances]


def test_cancelled_override_is_marked_cancelled() -> None:
    inv = invitation(master("RRULE:FREQ=DAILY;COUNT=3"),
                     vevent("RECURRENCE-ID:20260303T100000Z", "STATUS:CANCELLED", start="DTSTART:20260303T100000Z"))
    assert [i.cancelled for i in expand(inv, FAR, 100)] == [False, True, False]


@pytest.mark.parametrize(
    ("name", "recurrence_id", "start"),
    [
        ("mozilla/single-event.eml", None, utc(2022, 3, 16, 11)),
        ("mozilla/exception-major.eml", utc(2022, 3, 17, 11), utc(2022, 3, 17, 5)),  # override only
        ("icalendar/issue_1231_recurrence.ics", utc(2025, 4, 28, 16, 5), utc(2025, 4, 28, 16, 5)),
    ],
)
def test_single_event_and_lone_override_yield_one_instance(name: str, recurrence_id, start) -> None:
    (instance,) = expand(parse_fixture(FIXTURES / name), FAR, 100)
    assert (instance.recurrence_id, instance.start) == (recurrence_id, start)


# --- bounds --------------------------------------------------------------------------------


def test_cap_exceeded_is_refused() -> None:
    with pytest.raises(RecurrenceError, match="more than 10 occurrences in the booking window"):
        expand(series("FREQ=DAILY"), utc(2026, 3, 31), 10)


def test_cap_reached_exactly_is_fine() -> None:
    assert len(expand(series("FREQ=DAILY"), utc(2026, 3, 11, 12), 10)) == 10


@pytest.mark.parametrize("freq", ["MINUTELY", "SECONDLY"])
def test_minutely_and_secondly_are_refused(freq: str) -> None:
    with pytest.raises(RecurrenceError, match=f"FREQ={freq}"):
        expand(series(f"FREQ={freq};COUNT=2"), FAR, 100)


@pytest.mark.parametrize(
    "rule",
    ["FREQ=FORTNIGHTLY", "GARBAGE", "COUNT=3", "FREQ=DAILY;INTERVAL=0", "FREQ=DAILY;INTERVAL=x",
     "FREQ=DAILY;UNTIL=tomorrow", "FREQ=DAILY;BYDAY=XX", "FREQ=HOURLY;INTERVAL=24;BYHOUR=5",
     # would make dateutil scan to year 9999: refused up front
     "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30,31", "FREQ=DAILY;BYYEARDAY=1;BYMONTH=6", "FREQ=DAILY;BYSETPOS=5",
     "FREQ=MONTHLY;BYWEEKNO=20", "FREQ=WEEKLY;BYMONTHDAY=31"],
)
def test_unusable_rrule_is_refused(rule: str) -> None:
    with pytest.raises(RecurrenceError):
        expand(series(rule), FAR, 100)


def test_open_ended_rule_is_bounded_by_the_window() -> None:
    inv = parse_fixture(FIXTURES / "icalendar/x_location.ics")  # weekdays since 2016, no COUNT/UNTIL
    instances = expand(inv, utc(2026, 3, 16), 100, window_start=utc(2026, 3, 2))
    assert len(instances) == 10 and starts(instances, ZoneInfo("Europe/Zurich"))[0] == "2026-03-02 14:00"


def test_window_start_leaves_out_occurrences_that_ended() -> None:
    instances = expand(series("FREQ=DAILY;COUNT=5"), FAR, 100, window_start=utc(2026, 3, 4, 10, 30))
    assert starts(instances) == ["2026-03-04 10:00", "2026-03-05 10:00", "2026-03-06 10:00"]


@pytest.mark.parametrize(
    ("rule", "count"),
    [
        ("FREQ=DAILY;UNTIL=20260304T100000Z", 3),  # UTC UNTIL with a zoned DTSTART
        ("FREQ=DAILY;UNTIL=20260304T110000", 3),  # floating UNTIL, read in the series' zone
        ("FREQ=DAILY;UNTIL=20260304T105959", 2),
        ("FREQ=DAILY;UNTIL=20260304", 3),  # DATE UNTIL includes the whole day
        ("FREQ=DAILY;COUNT=2;UNTIL=20260310T000000Z", 2),  # both (not allowed): whichever ends first
        ("FREQ=WEEKLY;BYDAY=MO, TU;COUNT=4", 4),  # Exchange CDO puts spaces into lists
    ],
)
def test_rfc5545_3_3_10_until_forms_with_zoned_dtstart(rule: str, count: int) -> None:
    inv = series(rule, start="DTSTART;TZID=Europe/Berlin:20260302T110000",
                 end="DTEND;TZID=Europe/Berlin:20260302T120000")
    assert len(expand(inv, FAR, 100)) == count


def test_rfc5545_3_8_5_3_dtstart_always_counts_as_first_instance() -> None:
    inv = series("FREQ=WEEKLY;BYDAY=WE;COUNT=2")  # DTSTART is a Monday
    assert starts(expand(inv, FAR, 100)) == ["2026-03-02 10:00", "2026-03-04 10:00", "2026-03-11 10:00"]


def test_several_rrules_and_rdates_merge_without_duplicates() -> None:
    inv = invitation(master("RRULE:FREQ=DAILY;COUNT=3", "RRULE:FREQ=WEEKLY;COUNT=2",
                            "RDATE:20260303T100000Z,20260320T100000Z"))
    assert starts(expand(inv, FAR, 100)) == [
        "2026-03-02 10:00", "2026-03-03 10:00", "2026-03-04 10:00", "2026-03-09 10:00", "2026-03-20 10:00"]


def test_long_history_before_the_window_is_skipped_quickly() -> None:
    inv = series("FREQ=DAILY", start="DTSTART:20000101T100000Z", end="DTEND:20000101T110000Z")
    assert len(expand(inv, utc(2026, 3, 9), 10, window_start=utc(2026, 3, 2))) == 7


@pytest.mark.parametrize(
    ("name", "recurring"),
    [("mozilla/single-event.eml", False), ("mozilla/repeat-event.eml", True),
     ("mozilla/exception-minor.eml", True), ("icalendar/rfc_7265_appendix_example_2_ical.ics", True)],
)
def test_is_recurring(name: str, recurring: bool) -> None:
    assert is_recurring(parse_fixture(FIXTURES / name)) == recurring


UTC = timezone.utc


def _cal(rule_lines: str, vtimezone: str = "", tzid: str = "") -> bytes:
    start = f"DTSTART;TZID={tzid}:20260302T090000" if tzid else "DTSTART:20260302T090000Z"
    end = f"DTEND;TZID={tzid}:20260302T100000" if tzid else "DTEND:20260302T100000Z"
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n" + vtimezone +
            "BEGIN:VEVENT\r\nUID:dos\r\nDTSTAMP:20260101T000000Z\r\n" + start + "\r\n" + end +
            "\r\n" + rule_lines + "ORGANIZER:mailto:o@x.org\r\nATTENDEE:mailto:r@x.org\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


@pytest.mark.parametrize("rule", ["FREQ=HOURLY;INTERVAL=168;BYDAY=TU",
                                  "FREQ=DAILY;INTERVAL=7;BYDAY=TU"])
def test_rules_whose_interval_never_reaches_their_weekdays_are_refused_at_once(rule):
    inv = parse_invitation(_cal(f"RRULE:{rule}\r\n" * 10), UTC)
    started = time.perf_counter()
    with pytest.raises(RecurrenceError, match="matches no date"):
        expand(inv, datetime(2026, 9, 1, tzinfo=UTC), 1000)
    assert time.perf_counter() - started < 1.0


def test_a_vtimezone_with_an_hourly_rule_is_not_used():
    evil = ("BEGIN:VTIMEZONE\r\nTZID:Evil\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\n"
            "RRULE:FREQ=HOURLY\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\n"
            "END:VTIMEZONE\r\n")
    inv = parse_invitation(_cal("", evil, "Evil"), UTC)  # the default zone instead
    assert inv.events[0].start == datetime(2026, 3, 2, 9, tzinfo=UTC)
