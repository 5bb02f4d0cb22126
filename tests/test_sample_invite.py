"""``mr-engine sample-invite``: an Outlook-dialect request that the engine reads and a room
books, delivered over LMTP by smtplib and by swaks as the README does it."""

from __future__ import annotations

import datetime as dt
import email
import os
import shutil
import subprocess
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mr_engine.core.imip import find_calendar
from mr_engine.core.itip import parse_invitation
from mr_engine.core.sample_invite import coming_start
from mr_engine.store.models import Booking, OutboundMessage
from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import reply_vevents
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.paths import BIN, checkout_of
from mr_engine.testing.servers import server_at
from mr_engine.testing.times import BERLIN, NOW, T9

START = T9.astimezone(BERLIN).replace(tzinfo=None).isoformat()  # a week after NOW, local
# The README's delivery line, with the port the test server got.
SWAKS = ("mr-engine sample-invite --to {room} | swaks --server 127.0.0.1:{port} "
         "--protocol LMTP --from organizer@example.org --to {room} --data -")


def sample_invite(*args: str, **env: str) -> bytes:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    environ.update(MR_ENGINE_SYSTEM_CONFIG="/nonexistent/mr-engine.toml",
                   MR_ENGINE_DEFAULT_TIMEZONE="Europe/Berlin", **env)
    done = commands.run([str(BIN / "mr-engine"), "sample-invite", *args], env=environ,
                        capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("weekday", range(7))
def test_by_default_the_meeting_is_on_the_next_working_day_at_ten(weekday):
    now = dt.datetime(2026, 3, 2 + weekday, 22, 30, tzinfo=dt.timezone.utc)  # 2 March: Monday
    start = coming_start(now, BERLIN)
    assert start.weekday() < 5 and (start.hour, start.minute) == (10, 0)
    assert dt.timedelta(0) < start - now < dt.timedelta(days=4)


def test_it_is_outlook_s_dialect_and_the_engine_reads_it():
    raw = sample_invite("--to", ROOM, "--start", START, "--rrule", "FREQ=WEEKLY;COUNT=3",
                        "--from", "alice@example.org", "--duration", "30")
    message = email.message_from_bytes(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.get_payload()] \
        == ["text/plain", "text/html", "text/calendar"]
    assert message["Thread-Topic"] and message["Content-Language"] == "en-US"
    data = find_calendar(message)
    assert b"TZID:W. Europe Standard Time\r\n" in data  # Windows zone names, CRLF lines
    assert b"X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE" in data
    inv = parse_invitation(data, ZoneInfo("UTC"))
    event = inv.master
    assert inv.method == "REQUEST" and inv.uid.startswith("040000008200E00074C5B7101A82E008")
    assert (event.start, event.end - event.start) == (T9, dt.timedelta(minutes=30))
    assert event.rrule == ("FREQ=WEEKLY;COUNT=3",) and event.organizer == "alice@example.org"
    assert [a.address for a in event.attendees] == [ROOM]


def test_bad_options_are_refused_with_a_message():
    for args, words in [(["--start", "soon"], "invalid --start"),
                        (["--rrule", "FREQ=SOMETIMES"], "invalid --rrule"),
                        (["--duration", "0"], "at least 1 minute")]:
        done = commands.run([str(BIN / "mr-engine"), "sample-invite", "--to", ROOM, *args],
                            capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def _accepted(db) -> list:
    with db.read() as session:
        bookings = session.scalars(select(Booking)).all()
        replies = [reply_vevents(row.content)
                   for row in session.scalars(select(OutboundMessage)).all()]
    return [bookings, [v["ATTENDEE"].params["PARTSTAT"] for r in replies for v in r]]


def test_delivered_over_lmtp_an_auto_accepting_room_books_it(db, db_url, tmp_path):
    add_resource(db, "room", ROOM)
    # ROOM by name: the directory gives its address.
    raw = sample_invite("--to", "room", "--start", START, MR_ENGINE_DATABASE_URL=db_url)
    with server_at(db_url, NOW) as server:
        deliver(server.port, raw, to=ROOM)
    bookings, partstats = _accepted(db)
    assert len(bookings) == 1 and bookings[0].summary == "Sample meeting"
    assert partstats == ["ACCEPTED"]


def test_the_readme_walkthrough_delivers_it_with_swaks(db, db_url):
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    readme = (checkout_of(__file__) / "README.md").read_text()
    assert SWAKS.format(room="room1@example.org", port=2003) in readme
    add_resource(db, "room", ROOM)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    environ.update(PATH=f"{BIN}:{environ['PATH']}", MR_ENGINE_DATABASE_URL=db_url,
                   MR_ENGINE_SYSTEM_CONFIG="/nonexistent/mr-engine.toml")
    with server_at(db_url, NOW) as server:
        command = SWAKS.format(room=ROOM, port=server.port).replace(
            "sample-invite", f"sample-invite --start {START}")
        done = subprocess.run(command, shell=True, env=environ, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "250 2.0.0" in done.stdout or "250 2.1.5" in done.stdout
    assert _accepted(db)[1] == ["ACCEPTED"]
