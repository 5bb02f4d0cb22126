"""Values from mail never reach a terminal or the log raw, and are stored as received.

A meeting request whose UID, SUMMARY, Subject, From and Message-ID carry LF, ESC, C1 and
U+2028 is delivered over LMTP; the queue gets a row with hostile addresses and a smarthost
answer with CR LF (through the relay's own store functions); a user and a group get hostile
names. Then the console scripts run as subprocesses, their output read as bytes (text mode
would turn a raw CR into a line break and hide it): every row is one line, each control is
shown escaped, and no control character other than the layout's newlines (and kopano-cli's
tab stops) is written. The printing does not depend on the backend, so SQLite only.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import json
import os
import pty
import re
import subprocess

import pytest

from mr_engine.store import outbox
from mr_engine.store.directory import add_member, create_group, create_user, get_user
from mr_engine.store.messages import get_content
from mr_engine.store.models import OutboundMessage
from mr_engine.core.printable import printable
from mr_engine.store.stores import store_of

from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import RunningServer, ServeProcess, make_settings, serve_env
from mr_engine.testing.times import HOUR, NOW, T9

# Every control a printer must not write: C0 (LF and TAB included), DEL, C1, U+2028/2029.
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
UID = "u1\nforged\x1b[2J"
SUMMARY = "Plan\nforged\x1b[31m\u2028red\x9b"
SUBJECT = "Invitation: Plan\r\nforged\x1b[31m\u2028red\x9b"
FROM_NAME = "Org\x1b[2J\x9b"
MESSAGE_ID = "<h1\x1b[5m@remote.example>"
RAW_HEADER = b"X-Hostile: \x1b[2J \xe2\x80\xa8 \xc2\x9b\r\n"  # bytes that must be kept
FULLNAME = "Bob\r\nforged\x1b[2J\u2028x\x85"
BOB_EMAIL = "bob\x1b[5m@example.com"
GROUP = "team\nforged\x1b[2J"
HOSTILE_SENDER = "bounce\x1b[5m@x.example"
HOSTILE_RECIPIENTS = ["a\x1b[2J@x.example", "b\u2028\x85@y.example"]


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


def _ical_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def hostile_invite() -> bytes:
    """``invite``'s message with the hostile values, its calendar base64 (bytes kept)."""
    msg = email.message_from_bytes(invite("@UID@", T9, T9 + HOUR, ROOM, summary="@SUMMARY@"),
                                   policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            text = part.get_payload(decode=True).decode().replace("@UID@", _ical_text(UID))
            text = text.replace("@SUMMARY@", _ical_text(SUMMARY))
            del part["Content-Transfer-Encoding"]
            part["Content-Transfer-Encoding"] = "base64"
            part.set_payload(base64.encodebytes(text.encode()).decode())
    msg.replace_header("Subject", _word(SUBJECT))
    msg.replace_header("From", f"{_word(FROM_NAME)} <organizer@remote.example>")
    body = msg.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))
    return f"Message-ID: {MESSAGE_ID}\r\n".encode() + RAW_HEADER + body


def deliver(port: int, message: bytes) -> None:
    client = RawClient(port)
    assert client.reply()[0].startswith("220")
    assert send_message(client, "organizer@remote.example", [ROOM], message)[1] == [
        "250 2.0.0 Ok: delivered"]
    client.close()


def _env(db_url: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    return {**environ, "MR_ENGINE_DATABASE_URL": db_url}


def run_raw(db_url: str, script: str, *args: str) -> bytes:
    done = commands.run([str(BIN / script), *args], capture_output=True, timeout=60,
                        env=_env(db_url))
    assert (done.returncode, done.stderr) == (0, b""), (args, done.stderr)
    return done.stdout


def run(db_url: str, script: str, *args: str) -> str:
    out = run_raw(db_url, script, *args)
    assert b"\x1b" not in out
    return out.decode("utf-8")


def on_terminal(db_url: str, *args: str) -> bytes:
    """What ``mr-engine ARGS`` writes when its standard output is a terminal (a pty)."""
    master, slave = pty.openpty()
    with subprocess.Popen([str(BIN / "mr-engine"), *args], stdout=slave, env=_env(db_url)) as proc:
        os.close(slave)
        chunks = []
        while chunk := _read(master):
            chunks.append(chunk)
        assert proc.wait(60) == 0
    os.close(master)
    return b"".join(chunks)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other side of the pty is closed
        return b""


def lines(text: str, layout: str = "\n") -> list[str]:
    """The printed lines; only the layout's own control characters may occur."""
    assert set(RAW_CONTROL.findall(text)) <= set(layout), text
    assert text.endswith("\n")
    return text[:-1].split("\n")


def json_of(text: str):
    lines(text)  # indented JSON: only its own newlines, everything else escaped
    assert "\\u001b" in text
    return json.loads(text)


@pytest.fixture
def delivered(db, db_url) -> bytes:
    """The hostile request booked and answered, and a hostile row in the queue."""
    add_resource(db, "room", ROOM)
    message = hostile_invite()
    with RunningServer(make_settings(db_url), clock=lambda: NOW) as server:
        deliver(server.port, message)
    _queue_hostile_row(db)
    return message


def _queue_hostile_row(db) -> None:
    """Queued, claimed and answered 451 by a smarthost, as the relay records it."""
    with db.write() as session:
        row_id = outbox.enqueue(session, sender="bounce@remote.example",
                                recipients=["a@x.example", "b@y.example"],
                                content=b"Subject: x\r\n\r\nx\r\n", now=NOW,
                                subject="Re: x\r\nSubject: forged\x1b]0;title\x07")
        [job] = outbox.claim(session, "test", NOW, dt.timedelta(minutes=5))
        error = "451 4.3.0 busy\r\n250 forged\x1b[2J"
        outcome = outbox.SendOutcome(temporary={rcpt: error for rcpt in job.recipients})
        outbox.record(session, job, "test", outcome, NOW, dt.timedelta(days=5))
        # Addresses as an older row may hold them (enqueue checks what it is given now).
        row = session.get(OutboundMessage, row_id)
        row.sender, row.recipients = HOSTILE_SENDER, ",".join(HOSTILE_RECIPIENTS)


def test_queue_prints_each_message_on_its_own_lines(delivered, db_url):
    entries = json_of(run(db_url, "mr-engine", "queue", "--json"))
    assert {e["subject"] for e in entries} == {
        f"Accepted: {SUMMARY}", "Re: x\r\nSubject: forged\x1b]0;title\x07"}
    shown = lines(run(db_url, "mr-engine", "queue"))
    assert len(shown) == 1 + sum(2 + bool(e["last_error"]) for e in entries)
    assert f"        Subject: Accepted: {printable(SUMMARY)}" in shown
    assert "        Subject: Re: x\\r\\nSubject: forged\\x1b]0;title\\x07" in shown
    assert "        Error: 451 4.3.0 busy\\r\\n250 forged\\x1b[2J" in shown
    hostile = f"{printable(HOSTILE_SENDER)} -> {printable(', '.join(HOSTILE_RECIPIENTS))}"
    assert hostile == "bounce\\x1b[5m@x.example -> a\\x1b[2J@x.example, b\\u2028\\x85@y.example"
    assert any(line.endswith(hostile) for line in shown)


def test_agenda_prints_one_row_per_booking(delivered, db_url):
    window = ("--start", "2026-03-01T00:00:00Z", "--end", "2026-04-01T00:00:00Z")
    [entry] = json_of(run(db_url, "mr-engine", "agenda", "room", *window, "--json"))
    assert (entry["uid"], entry["summary"]) == (UID, SUMMARY)
    [row] = lines(run(db_url, "mr-engine", "agenda", "room", *window))
    assert row.startswith("2026-03-10T09:00:00Z  2026-03-10T10:00:00Z  booked ")
    assert row.endswith(" Plan\\nforged\\x1b[31m\\u2028red\\x9b")


def test_mailbox_lists_escaped_and_message_prints_the_bytes_as_received(delivered, db,
                                                                        db_url):
    [entry] = json.loads(run(db_url, "mr-engine", "mailbox", "room", "--json"))
    header, row = lines(run(db_url, "mr-engine", "mailbox", "room"))
    assert row.endswith(f"{printable(entry['from'])} / {printable(entry['subject'])}")
    assert "\\x9b" in row  # a C1 CSI survives the filing's clean-up: the printer escapes it
    stored = run_raw(db_url, "mr-engine", "message", "room", str(entry["id"]))
    with db.read() as session:
        content = get_content(session, store_of(session, get_user(session, "room")),
                              entry["id"])
    assert stored == content and content.endswith(delivered)
    assert RAW_HEADER in content and MESSAGE_ID.encode() in content
    # Read on a terminal, the same message has its controls shown instead of obeyed.
    shown = on_terminal(db_url, "message", "room", str(entry["id"]))
    assert b"\x1b" not in shown and b"\xe2\x80\xa8" not in shown
    assert b"X-Hostile: \\x1b[2J \\u2028 \\x9b\r\n" in shown


def test_kopano_cli_listings_and_details_escape_names_and_addresses(db, db_url, now):
    with db.write() as session:
        bob = create_user(session, name="bob", email=BOB_EMAIL, fullname=FULLNAME, now=now)
        add_member(session, create_group(session, GROUP), bob)
    users = lines(run(db_url, "kopano-cli", "--list-users"))
    [bob_row] = [row for row in users if row.startswith("bob ")]
    # Kopano's columns stay in place: the escaped full name is one cell.
    assert users[1].index("Full Name") == bob_row.index(printable(FULLNAME))
    details = lines(run(db_url, "kopano-cli", "--user", "bob"))
    assert re.search(r"^Full name: +Bob\\r\\nforged\\x1b\[2J\\u2028x\\x85$", "\n".join(
        details), re.M)
    assert f"Email address:                 {printable(BOB_EMAIL)}" in details
    assert f"    {printable(GROUP)}" in details  # a row of the Groups (N) table
    # Every line is a label and its value, a heading, a table row or empty.
    assert all(re.match(r"( {4})?([A-Z][\w ()-]+:( |$)|[\w-]+$|-+$)|$", line)
               or line.startswith(f"    {printable(GROUP)}") for line in details)
    groups = lines(run(db_url, "kopano-cli", "--list-groups"))
    assert printable(GROUP) in groups
    group = lines(run(db_url, "kopano-cli", "--group", GROUP))
    assert group[0].endswith(printable(GROUP)) and group[-1].startswith("bob ")
    assert json_of(run(db_url, "kopano-cli", "--user", "bob", "--json"))["fullname"] == FULLNAME


def test_serve_logs_a_forged_uid_on_one_line_in_the_worker(db, db_url):
    add_resource(db, "room", ROOM)
    with ServeProcess(serve_env(db_url), "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        workers = serve.workers()
        deliver(serve.port, hostile_invite())
        logged = serve.wait_for("delivered client=")
        assert serve.stop() == 0
    # Whatever the booking decided (the server runs on the real clock), its note names the UID.
    assert "message-id=<h1\\x1b[5m@remote.example>" in logged
    assert "meeting request u1\\nforged\\x1b[2J: " in logged
    assert int(re.search(r"\[(\d+)\]: ", logged).group(1)) in workers
    log = "".join(serve.lines)
    assert not any(line.startswith("forged") for line in serve.lines)
    assert set(RAW_CONTROL.findall(log)) <= {"\n"}, log
