"""Duplicate suppression exact under concurrency (hardening issue, item 3).

The same message on two LMTP sessions of two servers (two group committers on one database),
the final dot sent at the same moment: exactly one copy per mailbox, one booking and one
auto-reply each time, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from mr_engine.store import messages
from mr_engine.store.directory import get_user
from mr_engine.store.stores import ensure_store
from mr_engine.store.models import DeliveredMessageId, Store
from mr_engine.store.oof_state import set_oof

from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.lmtp_client import RawClient, dot_stuff
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import agenda, messages_of, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

TRIES = 40


def _message(i: int) -> bytes:
    """A meeting request to the room, with alice (away) in Cc, from a sender of its own."""
    start = T9 + i * 2 * HOUR
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "METHOD:REQUEST", "BEGIN:VEVENT",
             f"UID:race-{i}", "DTSTAMP:20260101T000000Z",
             f"DTSTART:{start:%Y%m%dT%H%M%SZ}", f"DTEND:{start + HOUR:%Y%m%dT%H%M%SZ}",
             "SUMMARY:Race", f"ORGANIZER:mailto:org{i}@remote.example",
             f"ATTENDEE;RSVP=TRUE:mailto:{ROOM}", "END:VEVENT", "END:VCALENDAR"]
    calendar = "\r\n".join(lines) + "\r\n"
    return (f"From: org{i}@remote.example\r\nTo: {ROOM}\r\nCc: alice@example.com\r\n"
            f"Subject: Race {i}\r\nMessage-ID: <race-{i}@remote.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\r\n"
            f"\r\n{calendar}").encode()


def _at_once(ports: list[int], message: bytes, sender: str) -> list[list[str]]:
    """Both sessions send everything but the final dot, then the dot at the same moment."""
    clients = [RawClient(port) for port in ports]
    ready = threading.Barrier(len(clients))
    answers: list[list[str]] = [[] for _ in clients]

    def session(k: int) -> None:
        client = clients[k]
        client.reply()  # the greeting
        client.command("LHLO race.example")
        for line in (f"MAIL FROM:<{sender}>", f"RCPT TO:<{ROOM}>", "RCPT TO:<alice@example.com>"):
            assert client.command(line)[0].startswith("250")
        assert client.command("DATA")[0].startswith("354")
        wire = dot_stuff(message)
        client.send(wire[:-3])
        ready.wait(10)
        client.send(wire[-3:])  # the final ".\r\n"
        answers[k] = [client.reply()[0], client.reply()[0]]

    threads = [threading.Thread(target=session, args=(k,)) for k in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for client in clients:
        client.close()
    return answers


def test_one_copy_one_booking_one_auto_reply_whatever_the_timing(db, db_url):
    add_resource(db, "room", ROOM, resource_type="equipment", resource_capacity=1000)
    add_users(db, "alice")
    with db.write() as session:
        set_oof(session, get_user(session, "alice"), enabled=True, subject="Away")
    with server_at(db_url, NOW) as one, server_at(db_url, NOW) as two:
        for i in range(TRIES):
            answers = _at_once([one.port, two.port], _message(i), f"org{i}@remote.example")
            assert all(a.startswith("250") for pair in answers for a in pair), answers
    assert len(messages_of(db, "room")) == TRIES
    assert len(messages_of(db, "alice")) == TRIES
    assert len(agenda(db_url, "room")) == TRIES
    queued = outbox_rows(db)
    assert sum(m.sender == ROOM for m in queued) == TRIES  # one REPLY a request
    assert sum(m.sender == "" for m in queued) == TRIES  # one auto-reply a message


def test_a_claim_is_rolled_back_with_its_delivery_and_expires_with_the_window(db):
    add_users(db, "bob")
    with db.write() as session:
        store_id = ensure_store(session, get_user(session, "bob"), NOW).id
    conn_args = (store_id, "<m@x>", NOW, 3600)
    with pytest.raises(RuntimeError), db.write() as session:
        assert not messages.is_duplicate(session.connection(), *conn_args)
        raise RuntimeError("the delivery failed: its claim goes with it")
    with db.write() as session:
        assert not messages.is_duplicate(session.connection(), *conn_args)
    with db.write() as session:
        assert messages.is_duplicate(session.connection(), *conn_args)
        later = (store_id, "<m@x>", NOW + 2 * HOUR, 3600)
        assert not messages.is_duplicate(session.connection(), *later)  # window over
        assert messages.forget_message_ids(session.connection(), NOW + 3 * HOUR) == 1
    with db.read() as session:
        assert session.scalars(select(DeliveredMessageId)).all() == []
        assert session.get(Store, store_id) is not None
