"""Odd but legal input is answered, not swallowed (hardening issue, items 7 and 8).

Out-of-range dates and durations are declined with a clear reason; kopano-mr-accept files
what it reads as delivery does and says in one line what was wrong; a room refuses a
capacity.
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import zoneinfo

import pytest

from mr_engine.core.itip import EARLIEST, OUT_OF_RANGE, parse_invitation

from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import messages_of, outbox_rows
from mr_engine.testing.times import NOW

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
HOUR = dt.timedelta(hours=1)

# The three date overflows of the mutated messages, and the edges of the range.
OUT_OF_RANGE_TIMES = [
    "DTSTART:00010101T100000Z\nDTEND:00010101T110000Z",
    "DTSTART;TZID=Europe/Berlin:00010101T003000\nDTEND;TZID=Europe/Berlin:00010101T013000",
    "DTSTART;VALUE=DATE:99991231\nDURATION:P2D",
    "DTSTART:20260310T090000Z\nDURATION:P99999999W",
    "DTSTART:20260310T090000Z\nDTEND:20460310T090000Z",
    "DTSTART:20260310T090000Z\nDTEND:20260310T100000Z\nRDATE:00010101T000000Z",
    "DTSTART:18991231T090000Z\nDTEND:18991231T100000Z",
]


def _calendar(times: str, method: str = "REQUEST") -> str:
    return (f"BEGIN:VCALENDAR\nVERSION:2.0\nMETHOD:{method}\nBEGIN:VEVENT\nUID:odd\n"
            f"DTSTAMP:20260101T000000Z\n{times}\nSUMMARY:Odd\n"
            f"ORGANIZER:mailto:organizer@remote.example\nATTENDEE;RSVP=TRUE:mailto:{ROOM}\n"
            "END:VEVENT\nEND:VCALENDAR\n")


def _message(times: str) -> bytes:
    return (f"From: organizer@remote.example\r\nTo: {ROOM}\r\nSubject: Odd\r\n"
            "Message-ID: <odd@remote.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/calendar; method=REQUEST\r\n\r\n"
            + _calendar(times).replace("\n", "\r\n")).encode()


@pytest.mark.parametrize("times", OUT_OF_RANGE_TIMES)
def test_out_of_range_times_are_read_as_such(times):
    [event] = parse_invitation(_calendar(times).encode(), BERLIN).events
    assert event.out_of_range and event.start == event.end == EARLIEST and not event.rrule


def test_times_inside_the_range_are_kept():
    [event] = parse_invitation(_calendar("DTSTART:20260310T090000Z\nDURATION:PT1H").encode(),
                               BERLIN).events
    assert not event.out_of_range and event.end - event.start == HOUR


@pytest.mark.parametrize("times", OUT_OF_RANGE_TIMES[:4])
def test_delivery_declines_an_out_of_range_request_without_a_traceback(db, db_url, times,
                                                                       caplog):
    add_resource(db, "room", ROOM)
    with caplog.at_level(logging.INFO), server_at(db_url, NOW) as server:
        deliver(server.port, _message(times))
    [reply] = outbox_rows(db)
    [vevent] = reply_vevents(reply.content)
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "DECLINED"
    assert OUT_OF_RANGE in str(vevent["COMMENT"])
    assert [m.folder for m in messages_of(db, "room")] == ["Processed Requests"]
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"


def _mr_accept(db_url: str, message: bytes, user: str = "room") -> subprocess.CompletedProcess:
    return commands.run([str(BIN / "kopano-mr-accept"), user], input=message,
                        env={"MR_ENGINE_DATABASE_URL": db_url}, capture_output=True,
                        text=False)


def test_kopano_mr_accept_says_in_one_line_what_was_out_of_range(db, db_url):
    add_resource(db, "room", ROOM)
    run = _mr_accept(db_url, _message(OUT_OF_RANGE_TIMES[3]))
    err = run.stderr.decode()
    assert run.returncode == 1 and err == f"error: {OUT_OF_RANGE}\n"
    assert run.stdout.decode() == f"declined: {OUT_OF_RANGE}\n"


def test_kopano_mr_accept_files_the_message_once_as_delivery_does(db, db_url):
    add_resource(db, "room", ROOM)
    # kopano-mr-accept reads the real clock: a meeting two days from it.
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=2)
    request = invite("cli", start, start + HOUR, ROOM, message_id="<cli@remote.example>")
    first = _mr_accept(db_url, request)
    again = _mr_accept(db_url, request)
    assert (first.returncode, first.stdout) == (0, b"accepted\n")
    assert (again.returncode, again.stdout) == (0, b"ignored: already processed "
                                                   b"(duplicate Message-ID)\n")
    assert [m.folder for m in messages_of(db, "room")] == ["Processed Requests"]
    assert len(outbox_rows(db)) == 1
    plain = _mr_accept(db_url, b"Subject: hi\r\nMessage-ID: <p@x>\r\n\r\nplain mail\r\n")
    assert plain.returncode == 1 and b"filed in the Inbox" in plain.stderr
    assert [m.folder for m in messages_of(db, "room")] == ["Processed Requests", "Inbox"]


def test_a_room_refuses_a_capacity(db, db_url):
    add_resource(db, "room", ROOM)
    cli = lambda *args: commands.run(  # noqa: E731
        [str(BIN / "kopano-cli"), *args], env={"MR_ENGINE_DATABASE_URL": db_url},
        capture_output=True, text=True)
    refused = cli("--user", "room", "--resource-capacity", "5")
    assert refused.returncode == 1
    assert "holds one meeting at a time" in refused.stderr and "equipment" in refused.stderr
    assert cli("--user", "room", "--resource-type", "equipment", "--resource-capacity",
               "5").returncode == 0
    assert cli("--user", "room", "--resource-type", "room").returncode == 0
    assert '"resource_capacity": 1' in cli("--user", "room", "--json").stdout
