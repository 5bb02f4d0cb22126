"""The lines an admin greps, parsed back from both formats: one per delivery and recipient
(real LMTP sessions against a real server), one per relay attempt and recipient (a real
smarthost), syslog through a real unix datagram socket, and the pruning of sent rows."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import re
import socket

import pytest
from sqlalchemy import text

from mr_engine.delivery.maintenance import Maintenance
from mr_engine.delivery.relay import Relay
from mr_engine.logs import Event, log_event, log_handler
from mr_engine.store import outbox
from mr_engine.store.models import OutboundMessage
from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.servers import ServeProcess, make_settings, serve_env, server_at
from mr_engine.testing.smarthost import relay_settings
from mr_engine.testing.store_views import outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

DAY = dt.timedelta(days=1)
# What follows "name[pid]: " in a text line: the outcome, then key=value or key="quoted".
_PAIR = re.compile(r'([a-z][a-z-]*)=("(?:[^"\\]|\\.)*"|\S+)')
_NUMBERS = {"size": int, "status": int, "id": int, "attempt": int, "delay": float, "age": float}


def parse_text(line: str) -> dict:
    """A text line's fields, typed as the JSON object has them."""
    message = line.split("]: ", 1)[1].rstrip("\n")
    outcome, _, rest = message.partition(" ")
    fields: dict = {"outcome": outcome}
    for key, raw in _PAIR.findall(rest):
        value = re.sub(r'\\(["\\])', r"\1", raw[1:-1]) if raw.startswith('"') else raw
        key = key.replace("-", "_")
        if value == "-":
            fields[key] = None
        elif key in ("from", "to"):
            fields[key] = value.removeprefix("<").removesuffix(">")
        else:
            fields[key] = _NUMBERS.get(key, str)(value)
    return fields


_RECORD_KEYS = ("time", "level", "logger", "pid", "message", "event")
_LOGGERS = {"delivery": "mr_engine.delivery", "relay": "mr_engine.relay"}


def _fields(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in _RECORD_KEYS}


@contextlib.contextmanager
def captured(logger_name: str = "mr_engine"):
    """The lines the real handlers write, text and JSON, of the records under ``logger_name``."""
    logger = logging.getLogger(logger_name)
    streams = {}
    for log_format in ("text", "json"):
        handler, problem = log_handler(log_format)
        assert problem is None
        streams[log_format] = io.StringIO()
        handler.setStream(streams[log_format])
        logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    # Earlier tests in the same process may have quietened or disabled a child logger
    # (a logging config, a caplog level): under ``logger_name`` everything is let through.
    children = [child for name, child in logging.root.manager.loggerDict.items()
                if name.startswith(logger_name + ".") and isinstance(child, logging.Logger)]
    saved = [(child, child.level, child.disabled) for child in children]
    for child in children:
        child.setLevel(logging.NOTSET)
        child.disabled = False
    lines: dict[str, list[str]] = {}
    try:
        yield lines
    finally:
        for child, child_level, disabled in saved:
            child.setLevel(child_level)
            child.disabled = disabled
        logger.setLevel(level)
        for handler in logger.handlers[-2:]:
            logger.removeHandler(handler)
        lines.update({k: s.getvalue().splitlines() for k, s in streams.items()})


def events(lines: dict[str, list[str]], event: str) -> list[dict]:
    """The ``event`` lines, parsed from JSON; the text lines are checked to say the same."""
    parsed = [json.loads(line) for line in lines["json"]]  # each line one object
    wanted = [e for e in parsed if e.get("event") == event]
    for entry in wanted:
        assert entry["logger"] == _LOGGERS[event]
        # The JSON message is the text line: the same call made both.
        assert parse_text(f"x[1]: {entry['message']}") == _fields(entry)
    texts = [parse_text(line) for line in lines["text"] if f" {_LOGGERS[event]}[" in line]
    assert texts == [_fields(e) for e in wanted]
    return wanted


# --- one line per delivery and recipient --------------------------------------------------------

def _sessions(port: int, db) -> tuple[int, list[list[str]]]:
    """Delivered + unknown recipient, duplicate, null sender without Message-ID, a meeting
    request, and a store failure (4xx); returns the client's port and the DATA replies."""
    client = RawClient(port)
    client.reply()
    answers = [send_message(client, "sender@remote.example",
                            ["alice@example.com", "nobody@example.com"], msg())[1]]
    answers.append(send_message(client, "sender@remote.example", ["alice@example.com"], msg(),
                                lhlo=False)[1])
    answers.append(send_message(client, "", ["alice@example.com"], msg(message_id=None),
                                lhlo=False)[1])
    meeting = invite("u1", T9, T9 + HOUR, ROOM, message_id="<i1@remote.example>")
    answers.append(send_message(client, "organizer@remote.example", [ROOM], meeting,
                                lhlo=False)[1])
    with db.write() as session:  # the store fails: the recipient is answered 451
        session.execute(text("ALTER TABLE messages RENAME TO messages_gone"))
    answers.append(send_message(client, "sender@remote.example", ["alice@example.com"],
                                msg(message_id="<m2@example.com>"), lhlo=False)[1])
    client_port = client.sock.getsockname()[1]
    client.close()
    return client_port, answers


def test_one_line_per_delivery_and_recipient_in_both_formats(db, db_url):
    add_users(db, "alice")
    add_resource(db, "room", ROOM)
    with captured() as lines:
        with server_at(db_url, NOW) as server:
            client_port, answers = _sessions(server.port, db)
    assert [a[0][:3] for a in answers] == ["250", "250", "250", "250", "451"]
    found = events(lines, "delivery")
    common = {"client": f"127.0.0.1:{client_port}", "lhlo": "test.example",
              "from": "sender@remote.example"}
    # The unknown recipient is refused at RCPT: its line comes before the delivered one's.
    unknown, delivered, duplicate, bare, meeting, deferred = found
    assert delivered == {**delivered, **common, "outcome": "delivered", "to": "alice@example.com",
                         "mailbox": "alice", "size": len(msg()), "message_id": "<m1@example.com>",
                         "status": 250, "enhanced": "2.0.0", "reply": "Ok: delivered"}
    assert re.fullmatch(r"filed Inbox #\d+", delivered["steps"])
    assert 0 <= delivered["delay"] < 10
    assert unknown == {**unknown, **common, "outcome": "refused", "to": "nobody@example.com",
                       "mailbox": None, "size": None, "message_id": None, "delay": None,
                       "status": 550, "enhanced": "5.1.1", "steps": None}
    assert "User unknown" in unknown["reply"]
    assert duplicate == {**duplicate, "outcome": "duplicate", "status": 250,
                         "enhanced": "2.0.0", "steps": "duplicate"}
    assert (bare["from"], bare["message_id"], bare["outcome"]) == ("", None, "delivered")
    assert meeting == {**meeting, "outcome": "delivered", "to": ROOM, "mailbox": "room",
                       "from": "organizer@remote.example",
                       "message_id": "<i1@remote.example>", "status": 250}
    assert re.fullmatch(r"meeting request u1: .*; filed Processed Requests #\d+",
                        meeting["steps"])
    assert deferred == {**deferred, "outcome": "deferred", "status": 451, "enhanced": "4.3.0",
                        "message_id": "<m2@example.com>", "steps": "store error"}
    text_lines = [l for l in lines["text"] if "mr_engine.delivery[" in l]
    assert "message-id=- " in text_lines[0] and "from=<> " in text_lines[3]
    assert ' steps="meeting request u1: ' in text_lines[4]


def test_serve_logs_json_lines_from_the_environment(db, db_url):
    add_users(db, "alice")
    with ServeProcess(serve_env(db_url, log_format="json"), "--workers", "1") as serve:
        client = RawClient(serve.port)
        client.reply()
        send_message(client, "sender@remote.example", ["alice@example.com"], msg())
        client.close()
        line = serve.wait_for('"event": "delivery"')
        assert serve.stop() == 0
    entry = json.loads(line)
    assert (entry["level"], entry["logger"], entry["outcome"], entry["to"], entry["status"]) == (
        "INFO", "mr_engine.delivery", "delivered", "alice@example.com", 250)
    assert entry["pid"] in {json.loads(l)["pid"] for l in serve.lines}
    for logged in serve.lines:  # every line is one JSON object, the supervisor's too
        assert isinstance(json.loads(logged), dict)


# --- syslog ---------------------------------------------------------------------------------

@pytest.fixture
def syslog_socket(tmp_path):
    """A unix datagram socket standing in for /dev/log."""
    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield path, sock


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_syslog_target_sends_to_the_socket_with_facility_mail_and_ident(syslog_socket,
                                                                        log_format):
    path, sock = syslog_socket
    handler, problem = log_handler(log_format, "syslog", str(path))
    assert problem is None
    logger = logging.Logger("mr_engine.delivery")
    logger.addHandler(handler)
    try:
        log_event(logger, Event("delivery", "refused", {"to": "x\x1b[2J@example.com",
                                                       "status": 550}), logging.WARNING)
    finally:
        handler.close()
    datagram = sock.recv(65536).decode()
    # RFC 3164 §4.1.1: PRI = facility mail (2) * 8 + severity warning (4).
    prefix = f"<20>mr-engine[{os.getpid()}]: "
    assert datagram.startswith(prefix) and "\x1b" not in datagram
    body = datagram[len(prefix):].rstrip("\x00")
    if log_format == "json":
        entry = json.loads(body)
        assert (entry["to"], entry["status"], entry["level"]) == ("x\x1b[2J@example.com", 550,
                                                                  "WARNING")
    else:
        assert body == "WARNING mr_engine.delivery: refused to=<x\\x1b[2J@example.com> status=550"


def test_syslog_without_its_socket_falls_back_to_stderr_saying_why(tmp_path):
    handler, problem = log_handler("text", "syslog", str(tmp_path / "missing"))
    assert isinstance(handler, logging.StreamHandler)
    assert problem is not None
    assert f"cannot send to {tmp_path / 'missing'} (No such file or directory)" in problem
    assert problem.endswith("logging to stderr instead")


@pytest.mark.skipif(os.path.exists("/dev/log"), reason="this machine has a syslog socket")
def test_serve_with_syslog_target_and_no_dev_log_logs_to_stderr(db, db_url):
    with ServeProcess(serve_env(db_url, log_target="syslog"), "--workers", "1") as serve:
        assert serve.stop() == 0
    assert any("log_target syslog: cannot send to /dev/log" in l for l in serve.lines)


# --- one line per relay attempt and recipient ---------------------------------------------------

def _queue(db, created: dt.datetime, recipients: list[str]) -> int:
    with db.write() as session:
        return outbox.enqueue(session, sender="room@example.com", recipients=recipients,
                              content=b"Subject: r\r\n\r\nbody\r\n", subject="r", now=created)


def test_relay_logs_each_recipient_of_each_attempt(db, smarthost):
    smarthost.sink.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    first = _queue(db, NOW - dt.timedelta(seconds=30), ["bob@example.org", "gone@example.org"])
    relay = Relay(db, relay_settings(smarthost.port))
    with captured("mr_engine.relay") as lines:
        assert relay.run_once(NOW) == 1
        smarthost.sink.data_reply = "451 4.3.0 try again later"
        later = _queue(db, NOW, ["carol@example.org"])
        expired = _queue(db, NOW - 2 * HOUR, ["dave@example.org"])  # lifetime: an hour
        assert relay.run_once(NOW) == 2
    sent, bounced, *others = events(lines, "relay")
    relay_address = f"127.0.0.1:{smarthost.port}"
    assert sent == {**sent, "outcome": "sent", "id": first, "attempt": 1,
                    "from": "room@example.com", "to": "bob@example.org",
                    "relay": relay_address, "age": 30.0, "status": 250, "enhanced": "2.0.0",
                    "reply": "OK", "level": "INFO"}
    assert bounced == {**bounced, "outcome": "bounced", "to": "gone@example.org", "status": 550,
                       "enhanced": "5.1.1", "reply": "no such user", "level": "WARNING"}
    assert bounced["id"] != first  # the refused recipient's own row
    by_id = {e["id"]: e for e in others}
    assert by_id[later] == {**by_id[later], "outcome": "deferred", "to": "carol@example.org",
                            "status": 451, "enhanced": "4.3.0", "reply": "try again later"}
    assert by_id[expired] == {**by_id[expired], "outcome": "failed", "age": 7200.0,
                              "status": 451, "reply": "try again later"}
    assert all(0 <= e["delay"] < 10 for e in [sent, bounced, *others])


def test_relay_logs_an_unreachable_smarthost_without_a_status(db):
    _queue(db, NOW, ["bob@example.org"])
    with captured("mr_engine.relay") as lines:
        Relay(db, relay_settings(9)).run_once(NOW)
    [line] = events(lines, "relay")
    assert (line["outcome"], line["relay"], line["status"], line["enhanced"]) == (
        "deferred", "127.0.0.1:9", None, None)
    assert line["reply"].startswith("smarthost 127.0.0.1:9: ConnectionRefusedError")


# --- queue_keep_sent ----------------------------------------------------------------------------

def _with_status(db, created: dt.datetime, status: str) -> int:
    message_id = _queue(db, created, ["bob@example.org"])
    with db.write() as session:
        session.get(OutboundMessage, message_id).status = status
    return message_id


@pytest.mark.parametrize("keep, kept_days", [(None, 7), ("2d", 2)])
def test_the_maintenance_pass_prunes_sent_rows_older_than_queue_keep_sent(db, db_url, keep,
                                                                         kept_days):
    keep_days = dt.timedelta(days=kept_days)
    old_sent = _with_status(db, NOW - keep_days - HOUR, "sent")
    young_sent = _with_status(db, NOW - keep_days + HOUR, "sent")
    old_queued = _with_status(db, NOW - 30 * DAY, "queued")
    old_failed = _with_status(db, NOW - 30 * DAY, "failed")
    settings = make_settings(db_url, **({"queue_keep_sent": 2 * 86400} if keep else {}))
    Maintenance(db, settings, clock=lambda: NOW).run_once()
    assert [r.id for r in outbox_rows(db)] == [young_sent, old_queued, old_failed]
    Maintenance(db, settings, clock=lambda: NOW + 2 * HOUR).run_once()
    assert [r.id for r in outbox_rows(db)] == [old_queued, old_failed]
    assert old_sent not in [r.id for r in outbox_rows(db)]
