"""The whole path: LMTP in, store, outbox, relay out to a real SMTP smarthost."""

from __future__ import annotations

import datetime as dt
import email
import smtplib
import time

from sqlalchemy import select

from mr_engine.store.outbox import enqueue
from mr_engine.store.directory import create_user, get_user
from mr_engine.store.models import Message
from mr_engine.store.oof_state import set_oof

from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.mail import msg
from mr_engine.testing.servers import RunningServer, make_settings
from mr_engine.testing.smarthost import Smarthost
from mr_engine.testing.store_views import messages_of
from mr_engine.testing.times import HOUR, NOW, T9


def wait_for(predicate, timeout: float = 5.0) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def away(db, name: str) -> None:
    with db.write() as session:
        user = create_user(session, name=name, email=f"{name}@example.com",
                           fullname=name.title(), now=NOW)
        set_oof(session, user, enabled=True, subject="Away", body="Back on Monday.")


def test_out_of_office_reply_leaves_once_per_sender_with_null_sender(db, db_url, smarthost):
    away(db, "alice")
    settings = make_settings(db_url, smarthost=f"127.0.0.1:{smarthost.port}")
    with RunningServer(settings, clock=lambda: NOW) as server:
        for n in range(2):
            deliver(server.port, msg(message_id=f"<oof{n}@remote>"), "alice@example.com")
        wait_for(lambda: smarthost.sink.received)
        time.sleep(0.3)  # a second reply would have left by now
    [reply] = smarthost.sink.received
    assert reply.mail_from == "<>" and reply.rcpt_tos == ["organizer@remote.example"]
    parsed = email.message_from_bytes(reply.content)
    assert parsed["Subject"] == "Away [Hello]" and parsed["Auto-Submitted"] == "auto-replied"
    assert len(messages_of(db, "alice", "Inbox")) == 2


def test_bounces_are_stored_with_null_return_path_and_get_no_auto_reply(db, db_url, smarthost):
    away(db, "alice")
    settings = make_settings(db_url, smarthost=f"127.0.0.1:{smarthost.port}")
    with RunningServer(settings, clock=lambda: NOW) as server:
        with smtplib.LMTP("127.0.0.1", server.port) as client:
            assert client.sendmail("<>", ["alice@example.com"], msg()) == {}
        time.sleep(0.5)
    assert smarthost.sink.received == []
    with db.read() as session:
        stored = session.scalar(select(Message.content))
    assert stored.startswith(b"Return-Path: <>\r\n")


def test_booking_reply_reaches_the_organizer_within_two_seconds(db, db_url, smarthost):
    add_resource(db, "room", ROOM)
    with db.write() as session:  # away, yet a meeting request gets no out-of-office reply
        set_oof(session, get_user(session, "room"), enabled=True, subject="Away")
    settings = make_settings(db_url, smarthost=f"127.0.0.1:{smarthost.port}")
    with RunningServer(settings, clock=lambda: NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
        assert wait_for(lambda: smarthost.sink.received) < 2.0
        time.sleep(0.3)
    [reply] = smarthost.sink.received
    assert reply.mail_from == ROOM and reply.rcpt_tos == ["organizer@remote.example"]
    assert email.message_from_bytes(reply.content)["Subject"] == "Accepted: Planning"


def test_replies_queued_while_the_smarthost_is_down_leave_when_it_returns(db, db_url):
    add_resource(db, "room", ROOM)
    host = Smarthost()  # not started yet
    settings = make_settings(db_url, smarthost=f"127.0.0.1:{host.port}")
    with RunningServer(settings, clock=lambda: NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
    host.start()
    try:
        # A fresh server (a restart) finds the queued reply; the clock has moved on.
        later = NOW + dt.timedelta(minutes=5)
        with RunningServer(settings, clock=lambda: later):
            wait_for(lambda: host.sink.received, timeout=10)
            time.sleep(0.3)
        assert len(host.sink.received) == 1
    finally:
        host.stop()


def test_a_message_queued_by_another_process_leaves_within_two_seconds(db, db_url, smarthost):
    settings = make_settings(db_url, smarthost=f"127.0.0.1:{smarthost.port}")
    with RunningServer(settings):
        with db.write() as session:  # e.g. kopano-mr-accept, which cannot wake the server
            enqueue(session, sender="room@example.com", recipients=["o@remote.example"],
                    content=b"Subject: x\r\n\r\nx\r\n", subject="x", now=NOW)
        assert wait_for(lambda: smarthost.sink.received) < 2.0
