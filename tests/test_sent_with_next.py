"""A write sent with the next statement (``prepared.send_with_next``): on PostgreSQL a new
booking's row goes with the statement after it, in its round trip inside the resource's
lock, and every later statement of the transaction sees it; a rollback drops it. On SQLite
it runs at once. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, insert, select

from mr_engine.delivery.context import Envelope, message_id_of, parse_message
from mr_engine.delivery.pipeline import DELIVERED
from mr_engine.store.directory import get_user
from mr_engine.store.models import OutboundMessage
from mr_engine.store.prepared import Prepared, pipelined, send_with_next
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.batches import one_batch
from mr_engine.testing.invites import invite
from mr_engine.testing.store_views import agenda, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

_COLUMNS = ["sender", "recipients", "subject", "content", "status", "attempts", "created_at",
            "next_attempt_at", "last_error"]
_INSERT = Prepared(insert(OutboundMessage), _COLUMNS)
_SUBJECTS = Prepared(select(OutboundMessage.subject).where(OutboundMessage.status == bindparam(
    "status")).order_by(OutboundMessage.id))


def _row(subject: str) -> dict:
    return {"sender": "", "recipients": "o@remote.example", "subject": subject,
            "content": b"x", "status": "queued", "attempts": 0, "created_at": NOW,
            "next_attempt_at": NOW, "last_error": ""}


def _stored(db) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(OutboundMessage.subject).order_by(OutboundMessage.id)))


def test_the_next_statement_of_any_kind_sends_it_first(db):
    with db.write() as session:
        conn = session.connection()
        send_with_next(conn, _INSERT, _row("a"))
        assert _SUBJECTS.rows(conn, {"status": "queued"}) == [("a",)]  # a Prepared
        send_with_next(conn, _INSERT, _row("b"))
        with pipelined(conn):  # in the block's round trip
            read = _SUBJECTS.rows_later(conn, {"status": "queued"})
        assert read() == [("a",), ("b",)]
        send_with_next(conn, _INSERT, _row("c"))
        # SQLAlchemy's own statements (the ORM's here) too
        assert list(session.scalars(select(OutboundMessage.subject))) == ["a", "b", "c"]
    assert _stored(db) == ["a", "b", "c"]


def test_a_commit_sends_it_and_a_rollback_drops_it(db):
    with db.write() as session:
        send_with_next(session.connection(), _INSERT, _row("kept"))
    assert _stored(db) == ["kept"]
    with pytest.raises(RuntimeError), db.write() as session:
        send_with_next(session.connection(), _INSERT, _row("dropped"))
        raise RuntimeError("undo")
    writer = db.held_writer()  # the next transaction on a kept connection runs none of it
    with writer.write() as session:
        conn = session.connection()
        send_with_next(conn, _INSERT, _row("held"))
    with pytest.raises(RuntimeError), writer.write() as session:
        send_with_next(session.connection(), _INSERT, _row("dropped"))
        raise RuntimeError("undo")
    with writer.write() as session:
        assert _SUBJECTS.rows(session.connection(), {"status": "queued"}) == [("kept",),
                                                                               ("held",)]
    writer.close()
    assert _stored(db) == ["kept", "held"]


def _request(uid: str, n: int, start: dt.datetime = T9) -> Envelope:
    content = invite(uid, start, start + HOUR, ROOM, message_id=f"<{uid}-{n}@remote.example>")
    message = parse_message(content)
    return Envelope("organizer@remote.example", content, message, message_id_of(message))


def test_a_batchs_requests_for_one_slot_see_the_bookings_before_them(db, db_url):
    # One transaction: each new booking's row waits for the next request's read, which must
    # find it (capacity 1: the first is booked, the others declined for the conflict).
    add_resource(db, "room", ROOM)
    with db.read() as session:
        room = get_user(session, "room").id
    outcomes = one_batch(db, [(_request(f"m{i}", i), [(ROOM, room)]) for i in range(3)])
    assert outcomes == [[DELIVERED]] * 3
    assert [e["uid"] for e in agenda(db_url, "room")] == ["m0"]
    answers = [r.subject.split(":")[0] for r in outbox_rows(db)]  # and COUNTERs
    assert (answers.count("Accepted"), answers.count("Declined")) == (1, 2)
    # and a request after the batch sees them committed
    next_day = _request("m9", 9, T9 + dt.timedelta(days=1))
    assert one_batch(db, [(next_day, [(ROOM, room)])]) == [[DELIVERED]]
    assert [e["uid"] for e in agenda(db_url, "room")] == ["m0", "m9"]
