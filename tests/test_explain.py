"""``mr-engine explain`` and ``kopano-mr-accept --dry-run`` (issue 14): the decision delivery
would make, every rule's result, the conflicts as ``calendar_details`` shows them, the
alternatives, a pool's member; the store unchanged after. On SQLite and PostgreSQL.

The service is called in process with the tests' clock (the fixtures' meetings are in the
past); the console scripts run once each over the real clock.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys

import pytest

from mr_engine.cli import dry_run, mr_accept
from mr_engine.cli.main import main
from mr_engine.config import Settings
from mr_engine.core.policy import OCCURRENCE_RULES, REQUEST_RULES
from mr_engine.services import booking
from mr_engine.services.explain import explain
from mr_engine.services.meeting_requests import book_and_queue
from mr_engine.services.pools import NONE_FREE
from mr_engine.store.db import Database
from mr_engine.store.directory import get_user, update_user
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.store_views import every_row
from mr_engine.testing.times import HOUR, NOW, T9, utc
from tests.test_kopano_dropin import tool
from tests.test_pools import POOL, make_pool

FIXTURES = checkout_of(__file__) / "fixtures"
SETTINGS = Settings()
RULES = [rule.__name__ for rule in (*REQUEST_RULES, *OCCURRENCE_RULES)]
KEYS = ["outcome", "reasons", "rules", "conflicts", "alternatives", "member"]


def explained(db: Database, user: str, message: bytes, now: dt.datetime = NOW) -> dict:
    """The JSON of ``mr-engine explain``, from the service with the tests' clock."""
    incoming = dry_run.envelope(message, SETTINGS, "test")
    with db.rehearsal() as session:
        return dry_run.as_dict(explain(session, user, incoming, SETTINGS, now))


def book(db: Database, user: str, message: bytes, now: dt.datetime = NOW) -> None:
    """Delivered for real: booked, its reply queued."""
    incoming = dry_run.envelope(message, SETTINGS, "test")
    with db.write() as session:
        req = booking.read_request(get_user(session, user), incoming, SETTINGS, now)
        book_and_queue(session, req, now)


def results(report: dict) -> dict[str, str]:
    return {r["rule"]: r["result"] for r in report["rules"]}


@pytest.mark.parametrize(("fixture", "address", "start"), [
    ("mozilla/outlook-test-invite.eml", "homer@example.org", utc(2021, 11, 27, 7)),
    ("mozilla/meet-meeting-invite.eml", "homer@example.com", utc(2021, 3, 22, 9, 30)),
    ("mozilla/single-event.eml", "receiver@example.com", utc(2022, 3, 16, 11)),
    ("own/apple-weekly-dst.eml", "room1@example.org", utc(2026, 3, 17, 8)),
], ids=["outlook", "google", "thunderbird", "apple"])
def test_explain_on_each_dialect(db, fixture, address, start):
    add_resource(db, "res", address)
    before = every_row(db)
    report = explained(db, "res", (FIXTURES / fixture).read_bytes(), start - dt.timedelta(days=1))
    assert list(report) == KEYS
    assert (report["outcome"], report["conflicts"], report["member"]) == ("accepted", [], None)
    assert [r["rule"] for r in report["rules"]] == RULES
    assert set(results(report).values()) <= {"pass", "not applicable"}
    assert report["alternatives"] == {"times": [], "resources": []}
    assert every_row(db) == before  # nothing booked, queued or filed


def test_conflicts_show_what_calendar_details_allow(db):
    add_resource(db, "room", ROOM)
    book(db, "room", invite("u1", T9, T9 + HOUR, ROOM, organizer="ann@example.com",
                            summary="Board"))
    before = every_row(db)
    clash = invite("u2", T9 + HOUR / 2, T9 + 2 * HOUR, ROOM, organizer="bob@example.com")
    shown = {}
    for level in ("busy", "subject", "full"):
        with db.write() as session:
            update_user(session, get_user(session, "room"), mr_calendar_details=level)
        report = explained(db, ROOM, clash)
        assert report["outcome"] == "declined" and results(report)["conflict"] == "decline"
        [shown[level]] = report["conflicts"]
    times = {"start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z", "status": "booked"}
    assert shown == {
        "busy": {**times, "subject": None, "organizer": None, "organizer_name": None,
                 "attendees": None},
        "subject": {**times, "subject": "Board", "organizer": None,
                    "organizer_name": "Organizer", "attendees": None},
        "full": {**times, "subject": "Board", "organizer": "ann@example.com",
                 "organizer_name": "Organizer", "attendees": 1}}
    assert report["reasons"] == ["conflict on 2026-03-10 09:30-11:00 (UTC)"]
    assert report["alternatives"]["times"]  # a free time of the same length is offered
    cancel = explained(db, ROOM, invite("u1", T9, T9 + HOUR, ROOM, organizer="ann@example.com",
                                        method="CANCEL", sequence=1))
    assert (cancel["outcome"], cancel["rules"], cancel["conflicts"]) == ("cancelled", [], [])
    before["mailboxes"] = every_row(db)["mailboxes"]  # the level was changed above
    assert every_row(db) == before


def test_every_rule_is_judged_and_a_series_names_its_conflicts(db):
    add_resource(db, "room", ROOM, mr_max_duration=30)
    week = T9 + 7 * 24 * HOUR
    book(db, "room", invite("u1", week, week + HOUR / 2, ROOM))
    report = explained(db, "room", invite("s", T9, T9 + HOUR, ROOM,
                                          rrule="FREQ=WEEKLY;COUNT=3"))
    assert (report["outcome"], results(report)["too_long"], results(report)["conflict"]) \
        == ("declined", "decline", "decline")
    assert results(report)["recurring_refused"] == "not applicable"
    [conflict] = report["conflicts"]
    assert conflict["start"] == "2026-03-17T09:00:00Z"


def test_pool_names_the_member_it_would_pick(db):
    make_pool(db, "a", "b")
    book(db, "a", invite("u1", T9, T9 + HOUR, "a@example.com"))
    before = every_row(db)
    report = explained(db, POOL, invite("u2", T9, T9 + HOUR, POOL))
    assert (report["outcome"], report["member"]) == (
        "accepted", {"name": "b", "address": "b@example.com"})
    assert report["reasons"] == ["delegated to b"] and results(report)["conflict"] == "pass"
    # A member's own copy of the pool's request is the pool's (as delivery routes it).
    assert explained(db, "a", invite("u2", T9, T9 + HOUR, POOL))["member"]["name"] == "b"
    book(db, "b", invite("u3", T9, T9 + HOUR, "b@example.com"))
    before = every_row(db)
    report = explained(db, "rooms", invite("u2", T9, T9 + HOUR, POOL))
    assert (report["outcome"], report["member"]) == ("declined", None)
    assert report["reasons"][0] == NONE_FREE and report["conflicts"]
    # What the pool's decline offers: times some member is free, as its reply lists them.
    assert report["alternatives"]["times"][0] == {"start": "2026-03-10T08:00:00Z",
                                                  "end": "2026-03-10T09:00:00Z"}
    assert every_row(db) == before


@pytest.fixture
def run_in_process(capsys, monkeypatch, db_url):
    """A command's ``main`` in process, the message on its stdin: (exit code, stdout,
    stderr). Starting a console script costs seconds on a loaded machine."""
    def call(command, *args: str, message: bytes = b"") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(message)))
        capsys.readouterr()
        try:
            code = command(["--database-url", db_url, *args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_console_scripts_explain_and_change_nothing(db, db_url, run_in_process):
    add_resource(db, "room", ROOM)
    start = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0) \
        + dt.timedelta(days=2)
    book(db, "room", invite("u1", start, start + HOUR, ROOM), start - dt.timedelta(days=1))
    before = every_row(db)
    clash = invite("u2", start, start + HOUR, ROOM)
    done = tool(db_url, "mr-engine", "explain", "room", "--json", stdin=clash)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert list(report) == KEYS and report["outcome"] == "declined"
    assert list(report["rules"][0]) == ["rule", "result", "reason"]
    assert list(report["alternatives"]) == ["times", "resources"]
    code, out, err = run_in_process(mr_accept.main, "--dry-run", "room", message=clash)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("declined: The requested time slots are unavailable")
    assert any(line.split()[:2] == ["conflict", "decline"] for line in lines)
    assert every_row(db) == before


def test_bad_input_is_one_line_and_exit_1(db, run_in_process):
    add_resource(db, "room", ROOM)
    add_resource(db, "desk", "desk@example.com", mr_accept=False)
    request = invite("u1", T9, T9 + HOUR, ROOM)
    broken = request.replace(b"DTSTART:", b"DTSTART:never")
    cases = [
        (["room"], b"Subject: hi\r\n\r\nplain mail\r\n", "the message carries no calendar"),
        (["ghost"], request, "no resource or pool 'ghost'"),
        (["nobody@example.com"], request, "no resource or pool"),
        (["room"], broken, "calendar not usable"),
        (["desk"], invite("u1", T9, T9 + HOUR, "desk@example.com"), "auto-accept"),
        (["desk@example.com"], request, "auto-accept"),
        (["room"], b"", "no message on standard input"),
    ]
    explain_main = lambda argv: main(["explain", *argv])  # noqa: E731
    for args, message, said in cases:
        code, out, err = run_in_process(explain_main, *args, message=message)
        assert (code, out) == (1, ""), (args, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and said in err, err
    code, out, err = run_in_process(explain_main, message=request)
    assert code == 2 and "USER" in err
    code, out, err = run_in_process(mr_accept.main, "--dry-run", "ghost", message=request)
    assert (code, out) == (1, "") and "ghost" in err
