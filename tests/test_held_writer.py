"""store.db.HeldWriter: the group committer's write transactions on one kept connection,
committed or rolled back as Database.write's are; a connection that dies is replaced."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError

from mr_engine.store.directory import create_user
from mr_engine.store.models import Mailbox
from mr_engine.testing.times import NOW


def _names(db) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(Mailbox.name).order_by(Mailbox.name)))


def test_commits_and_rolls_back_on_one_connection(db):
    writer = db.held_writer()
    try:
        with writer.write() as session:
            create_user(session, name="alice", email="alice@example.com", now=NOW)
            first = session.connection().connection.driver_connection
        with pytest.raises(RuntimeError), writer.write() as session:
            create_user(session, name="bob", email="bob@example.com", now=NOW)
            raise RuntimeError("undo")
        with writer.write() as session:
            assert session.connection().connection.driver_connection is first
            session.begin_nested().rollback()  # savepoints work in the joined session
        assert _names(db) == ["alice"]
    finally:
        writer.close()


def test_a_connection_that_dies_fails_its_batch_and_is_replaced(db, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("a server connection to end from outside: PostgreSQL")
    writer = db.held_writer()
    try:
        with writer.write() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
        with db.write() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError), writer.write() as session:
            create_user(session, name="alice", email="alice@example.com", now=NOW)
        with writer.write() as session:
            create_user(session, name="bob", email="bob@example.com", now=NOW)
        assert _names(db) == ["bob"]
    finally:
        writer.close()


def test_after_commit_comes_after_the_commit(db):
    """What a Session's after_commit does (event_scripts starts its scripts there) sees the
    transaction committed: another connection reads its rows at that moment."""
    writer = db.held_writer()
    seen: list[list[str]] = []
    try:
        with writer.write() as session:
            create_user(session, name="alice", email="alice@example.com", now=NOW)
            event.listen(session, "after_commit", lambda _: seen.append(_names(db)), once=True)
        assert seen == [["alice"]]
    finally:
        writer.close()
