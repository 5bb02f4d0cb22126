"""store.db.lock_mailbox: the row lock that serializes check-and-book for one resource.

On PostgreSQL the row is locked by a prepared statement; a mailbox the session has already
loaded is refreshed from the locked row, one it has not is loaded by the ORM's own select
then. Once locked, it is not locked again in the transaction, unless a savepoint that took
the lock was rolled back. ``lock_mailbox_later`` sends the lock with the statements after it
(``prepared.pipelined``), which read what was committed before the lock was granted.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError

from mr_engine.store import db as db_module
from mr_engine.store.db import lock_mailbox, lock_mailbox_later
from mr_engine.store.models import Mailbox, OutboundMessage
from mr_engine.store.outbox import enqueue
from mr_engine.store.prepared import Prepared, pipelined
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.times import NOW


def _room_id(db) -> int:
    add_resource(db, "room", ROOM)
    with db.read() as session:
        return session.scalar(select(Mailbox.id).where(Mailbox.name == "room"))


def _commit_longest(db, room_id: int, seconds: int) -> None:
    with db.write() as session:
        session.execute(update(Mailbox).where(Mailbox.id == room_id)
                        .values(longest_occurrence=seconds))


def test_the_locked_mailbox_shows_what_others_committed_before_the_lock(db):
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite: the write transaction holds the whole database from its start")
    room_id = _room_id(db)
    with db.write() as session:
        loaded = session.get_one(Mailbox, room_id)
        loaded.fullname = "Room one"  # a pending change of this session is kept
        _commit_longest(db, room_id, 7200)  # another process, before this one locks
        locked = lock_mailbox(session, room_id)
        assert locked is loaded
        assert (locked.longest_occurrence, locked.fullname) == (7200, "Room one")
    with db.read() as session:
        assert session.get_one(Mailbox, room_id).fullname == "Room one"


@pytest.mark.parametrize("loaded", [True, False])
def test_the_lock_holds_until_the_transaction_ends(db, loaded):
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serializes writers with its database lock")
    room_id = _room_id(db)
    with db.write() as holder:
        lock_mailbox(holder, room_id)
        with db.write() as other:
            other.execute(text("SET LOCAL lock_timeout = '50ms'"))
            if loaded:
                other.get_one(Mailbox, room_id)
            with pytest.raises(OperationalError, match="lock timeout"):
                lock_mailbox(other, room_id)
            other.rollback()
    with db.write() as later:  # released with the holder's commit
        assert lock_mailbox(later, room_id).id == room_id


def _locked_elsewhere(db, room_id: int) -> bool:
    """Whether another transaction finds the room's row locked (it waits at most 50 ms)."""
    with db.write() as other:
        other.execute(text("SET LOCAL lock_timeout = '50ms'"))
        try:
            lock_mailbox(other, room_id)
        except OperationalError:
            other.rollback()
            return True
        other.rollback()
        return False


def test_locked_once_a_transaction_savepoints_inside_it_included(db, monkeypatch):
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serializes writers with its database lock")
    room_id = _room_id(db)
    taken = []
    rows_later = db_module._LOCK_ROW.rows_later
    monkeypatch.setattr(db_module._LOCK_ROW, "rows_later",
                        lambda conn, params: taken.append(params["id"]) or rows_later(conn, params))
    with db.write() as session:
        first = lock_mailbox(session, room_id)
        assert lock_mailbox(session, room_id) is first
        with session.begin_nested():
            assert lock_mailbox(session, room_id) is first
        assert taken == [room_id]
    with db.write() as session:  # a new transaction locks again
        lock_mailbox(session, room_id)
    assert taken == [room_id, room_id]


def test_a_lock_taken_in_a_rolled_back_savepoint_is_taken_again(db):
    """PostgreSQL releases the row locks of a savepoint rolled back: locking the room after
    it must lock it again, not trust the record of the savepoint."""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serializes writers with its database lock")
    room_id = _room_id(db)
    with db.write() as session:
        savepoint = session.begin_nested()
        lock_mailbox(session, room_id)
        savepoint.rollback()
        assert not _locked_elsewhere(db, room_id)  # released with the savepoint
        room = session.get_one(Mailbox, room_id)  # loaded, the lock not taken
        assert lock_mailbox(session, room_id) is room
        assert _locked_elsewhere(db, room_id)


_OUTBOX_ROWS = Prepared(select(func.count()).select_from(OutboundMessage))


def _waiting_for_a_lock(db, backends: list[int]) -> bool:
    """The server process of the other thread's transaction waits for a lock."""
    if not backends:
        return False  # that transaction has not begun yet
    with db.read() as session:
        return bool(session.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                        "AND pid = :pid"), {"pid": backends[0]}))


def test_a_read_sent_with_the_lock_sees_what_the_holder_committed(db):
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite serializes writers with its database lock")
    room_id = _room_id(db)
    seen, backends = [], []

    def lock_then_read() -> None:
        with db.write() as session:
            room = session.get_one(Mailbox, room_id)
            backends.append(session.connection().connection.driver_connection.info.backend_pid)
            with pipelined(session.connection()):  # one round trip: the lock, then the read
                locked = lock_mailbox_later(session, room_id)
                count = _OUTBOX_ROWS.rows_later(session.connection(), {})
            seen.append((locked() is room, room.fullname, count()[0][0]))

    with db.write() as holder:
        lock_mailbox(holder, room_id)
        enqueue(holder, sender="room@example.com", recipients=["o@remote.example"],
                content=b"Subject: x\r\n\r\nx", subject="x", now=NOW)
        holder.get_one(Mailbox, room_id).fullname = "Room one"
        other = threading.Thread(target=lock_then_read)
        other.start()
        deadline = time.monotonic() + 20
        while not _waiting_for_a_lock(db, backends) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _waiting_for_a_lock(db, backends), "the other transaction never waited"
        assert seen == []
    other.join(20)
    assert seen == [(True, "Room one", 1)]  # the row and the other table as committed
