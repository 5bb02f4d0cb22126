"""``outbox.defer``: the group committer's first run holds a batch's queued replies and
writes them in one statement; on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mr_engine.store import outbox
from mr_engine.store.models import OutboundMessage
from mr_engine.testing.store_views import outbox_rows


def _enqueue(session, now, i: int) -> int | None:
    return outbox.enqueue(session, sender="room@example.com", recipients=[f"o{i}@example.org"],
                          content=f"Subject: r{i}\r\n\r\nbody\r\n".encode(), subject=f"r{i}",
                          now=now)


def test_held_rows_are_written_together_in_order_then_enqueue_writes_at_once(db, now):
    with db.write() as session:
        outbox.defer(session)
        assert [_enqueue(session, now, i) for i in range(3)] == [None] * 3
        assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0
        outbox.write_deferred(session)
        assert isinstance(_enqueue(session, now, 3), int)  # no longer deferred
    rows = outbox_rows(db)
    assert [(r.recipients, r.subject, r.status, r.attempts, r.next_attempt_at) for r in rows] == [
        (f"o{i}@example.org", f"r{i}", "queued", 0, now) for i in range(4)]
    assert rows[0].content == b"Subject: r0\r\n\r\nbody\r\n"


def test_held_rows_go_with_a_rolled_back_transaction(db, now):
    with db.write() as session:
        outbox.defer(session)
        _enqueue(session, now, 0)
        session.rollback()
    with db.write() as session:  # a new session: nothing held, nothing deferred
        assert isinstance(_enqueue(session, now, 1), int)
    assert [r.subject for r in outbox_rows(db)] == ["r1"]


def test_a_bad_address_is_refused_at_enqueue_even_when_deferred(db, now):
    with db.write() as session:
        outbox.defer(session)
        with pytest.raises(ValueError):
            outbox.enqueue(session, sender="", recipients=["a b@example.org"], content=b"x",
                           subject="x", now=now)
        outbox.write_deferred(session)
    assert outbox_rows(db) == []


def test_inside_a_savepoint_a_row_is_written_at_once_and_goes_with_its_rollback(db, now):
    with db.write() as session:
        outbox.defer(session)
        _enqueue(session, now, 0)  # held
        savepoint = session.begin_nested()
        assert isinstance(_enqueue(session, now, 1), int)  # written inside the savepoint
        savepoint.rollback()
        with session.begin_nested():
            _enqueue(session, now, 2)  # kept: its savepoint is released
        outbox.write_deferred(session)
    assert sorted(r.subject for r in outbox_rows(db)) == ["r0", "r2"]
