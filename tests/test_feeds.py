"""ICS feeds: GET /calendars/<name>.ics over a real socket, parsed with icalendar and
compared with the agenda; what each calendar_details level shows; the secret link."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from mr_engine.core import feed
from mr_engine.core.calendar_view import shown
from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.calendars import book, events_of
from mr_engine.testing.http import get
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import agenda
from mr_engine.testing.times import HOUR, NOW, T9

RANGE = "?start=2026-03-09&end=2026-03-20"
SUMMARY = "Budget, Q2; draft\nsecond line"
SENT_SUMMARY = "Budget\\, Q2\\; draft\\nsecond line"  # as the invitation's TEXT has it


def at(hours: float):
    return T9 + hours * HOUR


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _book_by_mail(port: int) -> None:
    """A single meeting and a daily series of three, as an organizer's client sends them."""
    deliver(port, invite("single", at(0), at(1), ROOM, summary=SENT_SUMMARY))
    deliver(port, invite("series", at(3), at(4), ROOM, rrule="FREQ=DAILY;COUNT=3",
                         summary="Stand-up"))


def _feed(db, db_url, details: str | None = None, query: str = RANGE):
    fields = {"mr_calendar_details": details} if details else {}
    add_resource(db, "room", ROOM, fullname="Room 1", **fields)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        _book_by_mail(server.port)
        return get(server.http_port, f"/calendars/room.ics{query}")


def test_feed_has_one_vevent_per_agenda_entry(db, db_url):
    answer = _feed(db, db_url)
    assert (answer.status, answer.content_type) == (200, "text/calendar; charset=utf-8")
    booked = agenda(db_url, "room", "2026-03-09T00:00:00Z", "2026-03-20T00:00:00Z")
    events = events_of(answer.body)
    assert [(str(e["UID"]), _iso(e["DTSTART"].dt), _iso(e["DTEND"].dt)) for e in events] == [
        (b["uid"], b["start"], b["end"]) for b in booked]
    rids = [_iso(e["RECURRENCE-ID"].dt) if "RECURRENCE-ID" in e else None for e in events]
    assert rids == [b["recurrence_id"] for b in booked]
    assert rids[0] is None and len({(str(e["UID"]), r) for e, r in zip(events, rids)}) == 4
    assert {(str(e["STATUS"]), str(e["TRANSP"])) for e in events} == {("CONFIRMED", "OPAQUE")}
    assert all(e["DTSTART"].dt.tzname() == "UTC" and e["DTSTAMP"].dt == NOW for e in events)


def test_feed_defaults_to_the_free_busy_range(db, db_url):
    answer = _feed(db, db_url, query="")
    assert len(events_of(answer.body)) == 4  # all within now - 7 days .. now + 60 days
    later = _later_range(db_url)
    assert later.status == 200 and events_of(later.body) == []


def _later_range(db_url):
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        return get(server.http_port, "/calendars/room.ics?start=2026-04-01")


def test_busy_level_shows_the_time_only(db, db_url):
    events = events_of(_feed(db, db_url).body)
    assert {str(e["SUMMARY"]) for e in events} == {"Busy"}
    assert not any("ORGANIZER" in e or "DESCRIPTION" in e for e in events)


def test_subject_level_adds_summary_and_organizer_name(db, db_url):
    first, *_ = events_of(_feed(db, db_url, "subject").body)
    assert str(first["SUMMARY"]) == SUMMARY  # escaped in the feed, the same once parsed
    assert str(first["DESCRIPTION"]) == "Organizer: Organizer"
    assert "ORGANIZER" not in first


def test_full_level_adds_address_and_attendee_count(db, db_url):
    answer = _feed(db, db_url, "full")
    first, *_ = events_of(answer.body)
    assert str(first["ORGANIZER"]) == "mailto:organizer@remote.example"
    assert first["ORGANIZER"].params["CN"] == "Organizer"
    assert str(first["DESCRIPTION"]) == "Organizer: Organizer <organizer@remote.example>\n" \
                                        "Attendees: 1"
    assert "SUMMARY:Budget\\, Q2\\; draft\\nsecond line\r\n" in answer.body
    assert "X-WR-CALNAME:Room 1\r\n" in answer.body


def test_tentative_and_transparent_occurrences(db, db_url):
    add_resource(db, "room", ROOM)
    book(db, "room", "pending", [(at(0), at(1))], status="tentative")
    book(db, "room", "free", [(at(2), at(3)), (at(26), at(27))], transparent=True,
         recurring=True)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        events = events_of(get(server.http_port, f"/calendars/room.ics{RANGE}").body)
    assert [(str(e["UID"]), str(e["STATUS"]), str(e["TRANSP"])) for e in events] == [
        ("pending", "TENTATIVE", "OPAQUE"), ("free", "CONFIRMED", "TRANSPARENT"),
        ("free", "CONFIRMED", "TRANSPARENT")]
    assert [e["RECURRENCE-ID"].dt for e in events[1:]] == [at(2), at(26)]


def _kopano(db_url: str, *args: str) -> str:
    return commands.run([str(BIN / "kopano-cli"), *args], capture_output=True, text=True,
                        env={"MR_ENGINE_DATABASE_URL": db_url,
                             "MR_ENGINE_PUBLIC_URL": "https://rooms.example.org"},
                        check=True).stdout


def test_a_calendar_token_guards_the_feed(db, db_url):
    add_resource(db, "room", ROOM)
    printed = _kopano(db_url, "--user", "room", "--calendar-token", "new")
    # A change prints nothing (as Kopano's tool); the new secret link is the one line.
    assert printed.startswith("Calendar feed: https://rooms.example.org/")
    url = urlsplit(printed.splitlines()[-1].split(": ", 1)[1])
    assert url.path == "/calendars/room.ics" and url.query.startswith("token=")
    assert len(url.query) == len("token=") + 32
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        _book_by_mail(server.port)
        port = server.http_port
        without = get(port, "/calendars/room.ics")
        wrong = get(port, "/calendars/room.ics?token=" + "x" * 32)
        right = get(port, f"{url.path}?{url.query}")
        freebusy = get(port, f"/freebusy/{ROOM}.vfb")  # not secret: no token needed
        removed = _kopano(db_url, "--user", "room", "--calendar-token", "none")
        public = get(port, "/calendars/room.ics")
    assert (without.status, without.body) == (403, "this calendar needs its token (?token=)\n")
    assert wrong.status == 403
    assert right.status == 200 and len(events_of(right.body)) == 4
    assert freebusy.status == 200
    assert removed == "Calendar feed: https://rooms.example.org/calendars/room.ics\n"
    assert public.status == 200


def test_calendar_token_is_for_resources_only(db, db_url):
    add_users(db, "alice")
    done = commands.run([str(BIN / "kopano-cli"), "--user", "alice", "--calendar-token",
                         "new"], capture_output=True, text=True,
                        env={"MR_ENGINE_DATABASE_URL": db_url})
    assert (done.returncode, done.stderr) == (
        1, "error: alice is not a resource: it has no calendar feed\n")
    assert '"calendar_feed": null' in _kopano(db_url, "--user", "alice", "--json")


@pytest.mark.parametrize("path, status", [
    ("/calendars/nobody.ics", 404), ("/calendars/alice.ics", 404),
    ("/calendars/room.ics?start=2026-01-01&end=2027-01-03", 400),
    ("/calendars/room.ics?end=2026-03-01&start=2026-03-02", 400),
    ("/calendars/room.ics?start=2026-03-01T25:00", 400),
])
def test_feed_bad_input(db, db_url, path, status):
    add_resource(db, "room", ROOM)
    add_users(db, "alice")
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        answer = get(server.http_port, path)
    assert (answer.status, answer.content_type) == (status, "text/plain; charset=utf-8")
    assert answer.body.count("\n") == 1


def test_vevent_text_is_escaped_and_folded():
    entry = feed.Published("u;1,2", None, T9, at(1), "booked", False,
                           shown("full", "x" * 100 + ";,\\", "A, B", "a@example.org", 3))
    lines = feed.vevent(entry, NOW)
    assert "UID:u\\;1\\,2" in lines
    assert f"SUMMARY:{'x' * 100}\\;\\,\\\\" in lines
    assert 'ORGANIZER;CN="A, B":mailto:a@example.org' in lines
