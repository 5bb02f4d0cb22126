"""Free/busy: the periods (capacity, tentative, merging, clipping), GET /freebusy/... over a
real socket parsed with icalendar and compared with the agenda, and ``mr-engine freebusy``."""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import create_engine

from mr_engine.core import freebusy
from mr_engine.core.busy import Busy
from mr_engine.core.freebusy import BUSY, TENTATIVE, Period, RangeError, Timeline
from mr_engine.store.calendar_owners import (QuickOwners, QuickReadUnavailable, calendar_owner,
                                             quick_owners)
from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.calendars import book, freebusy_of, periods_of
from mr_engine.testing.http import get
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import agenda
from mr_engine.testing.times import HOUR, NOW, T9, utc

GEAR = "gear@example.com"
DAY = 24 * HOUR
RANGE = "?start=2026-03-09&end=2026-03-12"


def at(hours: float):
    return T9 + hours * HOUR


def span(a: float, b: float) -> Busy:
    return Busy(at(a), at(b))


# --- the periods, pure ------------------------------------------------------------------------

def test_capacity_two_is_busy_only_where_both_units_are_taken():
    booked = [span(0, 2), span(1, 3), span(5, 6), span(5.5, 7), span(7, 8)]
    assert freebusy.periods(booked, [], 2) == [
        Period(at(1), at(2), BUSY), Period(at(5.5), at(6), BUSY)]
    # Capacity 1: every booking, merged where they touch or overlap.
    assert freebusy.periods(booked, [], 1) == [
        Period(at(0), at(3), BUSY), Period(at(5), at(8), BUSY)]


def test_tentative_bookings_are_busy_tentative_where_they_fill_the_rest():
    booked = [span(0, 2)]
    tentative = [span(1, 4), span(6, 7)]
    assert freebusy.periods(booked, tentative, 1) == [
        Period(at(0), at(2), BUSY), Period(at(2), at(4), TENTATIVE),
        Period(at(6), at(7), TENTATIVE)]
    # With room for two, only the hour that both take is (tentatively) full.
    assert freebusy.periods(booked, tentative, 2) == [Period(at(1), at(2), TENTATIVE)]


def test_timeline_slices_and_clips_to_the_range():
    timeline = Timeline(tuple(freebusy.periods([span(0, 2), span(4, 5), span(8, 9)], [], 1)))
    assert timeline.between(at(1), at(8)) == [
        Period(at(1), at(2), BUSY), Period(at(4), at(5), BUSY)]
    assert timeline.between(at(2), at(4)) == []  # half-open: touching is not overlapping
    assert timeline.lines_between(at(1), at(4.5)) == [
        "FREEBUSY;FBTYPE=BUSY:20260310T100000Z/20260310T110000Z\r\n",
        "FREEBUSY;FBTYPE=BUSY:20260310T130000Z/20260310T133000Z\r\n"]


def test_range_defaults_and_limits():
    default = freebusy.requested_range(None, None, NOW)
    assert (default.start, default.end) == (NOW - 7 * DAY, NOW + 60 * DAY)
    assert freebusy.requested_range(NOW, None, NOW).end == NOW + 60 * DAY
    assert freebusy.requested_range(None, NOW + DAY, NOW).start == NOW - 7 * DAY
    assert freebusy.requested_range(NOW, NOW + 366 * DAY, NOW).end == NOW + 366 * DAY
    for start, end in ((NOW, NOW), (NOW, NOW - HOUR), (NOW, NOW + 366 * DAY + HOUR)):
        with pytest.raises(RangeError):
            freebusy.requested_range(start, end, NOW)


def test_vfreebusy_is_rfc_5545_with_long_lines_folded():
    who = freebusy.Publisher("r@example.com", "A very long name, " * 6)
    text = freebusy.vfreebusy(who, freebusy.requested_range(None, None, NOW), NOW,
                              ["FREEBUSY;FBTYPE=BUSY:20260310T100000Z/20260310T110000Z\r\n"])
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert text.endswith("END:VFREEBUSY\r\nEND:VCALENDAR\r\n")
    component = freebusy_of(text)
    assert str(component["ORGANIZER"]) == "mailto:r@example.com"
    assert component["ORGANIZER"].params["CN"] == who.name
    assert component["DTSTART"].dt == NOW - 7 * DAY and component["DTEND"].dt == NOW + 60 * DAY
    assert component["DTSTAMP"].dt == NOW and component["UID"]


# --- over HTTP, booked through LMTP ---------------------------------------------------------

def _merged(entries: list[dict]) -> list[tuple]:
    """The agenda's entries as capacity-1 periods: merged where they touch or overlap."""
    merged: list[list] = []
    for e in entries:
        start, end = e["start"], e["end"]
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def _iso(period) -> tuple[str, str]:
    return tuple(m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in period[:2])


def test_room_freebusy_matches_the_agenda_for_every_url_form(db, db_url):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        deliver(server.port, invite("a", at(0), at(1), ROOM))
        deliver(server.port, invite("b", at(1), at(2), ROOM))  # touches a: one period
        deliver(server.port, invite("c", at(4), at(5), ROOM))
        deliver(server.port, invite("s", at(24), at(25), ROOM, rrule="FREQ=DAILY;COUNT=3"))
        answers = [get(server.http_port, f"/freebusy/{path}{RANGE}")
                   for path in (f"{ROOM}.vfb", f"{ROOM}.ifb", ROOM, "room", "ROOM@Example.COM")]
    assert {(a.status, a.content_type) for a in answers} == {(200, "text/calendar; charset=utf-8")}
    assert len({a.body for a in answers}) == 1
    periods = periods_of(answers[0].body)
    booked = agenda(db_url, "room", "2026-03-09T00:00:00Z", "2026-03-12T00:00:00Z")
    assert [_iso(p) for p in periods] == _merged(booked)
    # The series' third day, the 12th, is past the range.
    assert [p[:2] for p in periods] == [(at(0), at(2)), (at(4), at(5)), (at(24), at(25))]
    assert {p[2] for p in periods} == {BUSY}
    component = freebusy_of(answers[0].body)
    assert str(component["ORGANIZER"]) == f"mailto:{ROOM}"
    assert (component["DTSTART"].dt, component["DTEND"].dt) == (utc(2026, 3, 9), utc(2026, 3, 12))


def test_equipment_of_capacity_two_is_busy_where_both_are_booked(db, db_url):
    add_resource(db, "gear", GEAR, resource_type="equipment", resource_capacity=2)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        for uid, start, end in (("x", 0, 2), ("y", 1, 3), ("z", 2.5, 4), ("w", 6, 7)):
            deliver(server.port, invite(uid, at(start), at(end), GEAR), to=GEAR)
        answer = get(server.http_port, f"/freebusy/{GEAR}.vfb{RANGE}")
    assert len(agenda(db_url, "gear")) == 4  # all four accepted: never more than two at once
    assert periods_of(answer.body) == [(at(1), at(2), BUSY), (at(2.5), at(3), BUSY)]


def test_a_change_of_the_calendar_is_seen_at_once(db, db_url):
    """The cached periods are keyed by calendar_version: booking and cancelling raise it."""
    add_resource(db, "room", ROOM)
    path = f"/freebusy/{ROOM}.vfb{RANGE}"
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        before = periods_of(get(server.http_port, path).body)
        deliver(server.port, invite("a", at(0), at(1), ROOM))
        booked = periods_of(get(server.http_port, path).body)
        deliver(server.port, invite("a", at(0), at(1), ROOM, method="CANCEL", sequence=1))
        cancelled = periods_of(get(server.http_port, path).body)
    assert (before, booked, cancelled) == ([], [(at(0), at(1), BUSY)], [])


def test_tentative_and_transparent_bookings(db, db_url):
    add_resource(db, "room", ROOM)
    book(db, "room", "held", [(at(0), at(1))])
    book(db, "room", "pending", [(at(0.5), at(2))], status="tentative")
    book(db, "room", "free", [(at(3), at(4))], transparent=True)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        answer = get(server.http_port, f"/freebusy/room{RANGE}")
    assert periods_of(answer.body) == [(at(0), at(1), BUSY), (at(1), at(2), TENTATIVE)]


def test_default_range_and_range_clipping(db, db_url):
    add_resource(db, "room", ROOM)
    book(db, "room", "long", [(at(0), at(10))])
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        default = get(server.http_port, f"/freebusy/{ROOM}.vfb")
        clipped = get(server.http_port, f"/freebusy/{ROOM}.vfb?start=2026-03-10T10:00:00Z"
                                        f"&end=2026-03-10T12:00:00%2B01:00")
    component = freebusy_of(default.body)
    assert (component["DTSTART"].dt, component["DTEND"].dt) == (NOW - 7 * DAY, NOW + 60 * DAY)
    assert component["DTSTAMP"].dt == NOW
    assert periods_of(default.body) == [(at(0), at(10), BUSY)]
    assert periods_of(clipped.body) == [(at(1), at(2), BUSY)]


@pytest.mark.parametrize("query, reason", [
    ("?start=2026-01-01&end=2027-01-03", "the range is longer than 366 days"),
    ("?start=2026-03-10&end=2026-03-10", "end must be after start"),
    ("?start=2026-03-10&end=2026-03-09", "end must be after start"),
    ("?start=yesterday", "start: not an ISO 8601 date or date-time: 'yesterday'"),
    ("?end=2026-02-30", "end: not an ISO 8601 date or date-time: '2026-02-30'"),
])
def test_bad_ranges_are_400_with_the_reason(db, db_url, query, reason):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        answer = get(server.http_port, f"/freebusy/{ROOM}.vfb{query}")
    assert (answer.status, answer.content_type, answer.body) == (
        400, "text/plain; charset=utf-8", reason + "\n")


def test_users_and_unknown_addresses_are_404(db, db_url):
    add_users(db, "alice")
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        answers = [get(server.http_port, f"/freebusy/{name}")
                   for name in ("alice@example.com.vfb", "alice", "nobody@example.com.ifb",
                                "everyone")]
    assert [a.status for a in answers] == [404] * 4
    assert answers[0].body == "no resource 'alice@example.com'\n"


# --- mr-engine freebusy -------------------------------------------------------------------

def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return commands.run([str(BIN / "mr-engine"), "freebusy", *args],
                        env={"MR_ENGINE_DATABASE_URL": db_url}, capture_output=True, text=True)


def test_cli_prints_the_periods_http_serves(db, db_url):
    add_resource(db, "gear", GEAR, resource_type="equipment", resource_capacity=2)
    book(db, "gear", "x", [(at(0), at(2))])
    book(db, "gear", "y", [(at(1), at(3))])
    book(db, "gear", "z", [(at(1.5), at(4))], status="tentative")
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        served = periods_of(get(server.http_port, f"/freebusy/{GEAR}{RANGE}").body)
    done = _cli(db_url, GEAR, "--start", "2026-03-09", "--end", "2026-03-12", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"start": "2026-03-10T10:00:00Z", "end": "2026-03-10T11:00:00Z", "type": "BUSY"},
        {"start": "2026-03-10T11:00:00Z", "end": "2026-03-10T12:00:00Z",
         "type": "BUSY-TENTATIVE"}]
    assert [(*_iso(p), p[2]) for p in served] == [
        (r["start"], r["end"], r["type"]) for r in json.loads(done.stdout)]
    text = _cli(db_url, "gear", "--start", "2026-03-10T10:30:00Z", "--end", "2026-03-11")
    assert text.stdout.splitlines() == [
        "2026-03-10T10:30:00Z  2026-03-10T11:00:00Z  BUSY",
        "2026-03-10T11:00:00Z  2026-03-10T12:00:00Z  BUSY-TENTATIVE"]


def test_cli_bad_input(db, db_url):
    add_users(db, "alice")
    assert (_cli(db_url, "alice").returncode, _cli(db_url, "alice").stderr) == (
        1, "error: no resource 'alice'\n")
    too_long = _cli(db_url, "alice", "--start", "2026-01-01", "--end", "2027-06-01")
    assert (too_long.returncode, too_long.stderr) == (2, "error: the range is longer than 366 days\n")
    bad = _cli(db_url, "alice", "--start", "soon")
    assert bad.returncode == 2 and "not an ISO 8601 date or date-time: 'soon'" in bad.stderr


def test_the_quick_owner_lookup_reads_as_the_session_does(db, db_url, tmp_path):
    """SQLite's session-less lookup (free/busy on the event loop) finds the same rows as the
    session's, and a file it cannot read sends the caller to the session path."""
    add_resource(db, "room", ROOM)
    add_users(db, "alice")
    quick = quick_owners(db.engine)
    if not db.is_sqlite:
        assert quick is None
        return
    local, domain = ROOM.split("@")
    with db.read() as session:
        for name in (ROOM, ROOM.upper(), f"{local}+x@{domain}", "room", "alice", "nobody"):
            assert quick.owner(name) == calendar_owner(session, name)
    gone = QuickOwners(create_engine(f"sqlite:///{tmp_path}/missing.db"))
    with pytest.raises(QuickReadUnavailable):
        gone.owner(ROOM)


def test_on_postgresql_the_owner_lookup_is_a_prepared_statement_of_the_wire(db):
    # Free/busy's one statement a request: through SQLAlchemy and a psycopg cursor it was a
    # third of the request's CPU; on the wire its BEGIN goes with it (store.pg_wire).
    if db.is_sqlite:
        pytest.skip("the wire is PostgreSQL's")
    from mr_engine.store import pg_wire
    add_resource(db, "room", ROOM)
    with db.read() as session:
        assert calendar_owner(session, ROOM).email == ROOM
        wire = pg_wire.Wire.of(session.connection().connection.driver_connection)
        assert any(b"calendar_version" in key[0] for key in wire.names)
