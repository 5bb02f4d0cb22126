"""``store.prepared``: statements run on the DBAPI cursor write and read values exactly as
SQLAlchemy does, in the caller's transaction; on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from mr_engine.store.models import OutboundMessage
from mr_engine.store.prepared import (PerCount, Prepared, commit_later, in_ids, pipelined,
                                      row_params, values_rows)
from mr_engine.testing.times import BERLIN, NOW

_COLUMNS = ["sender", "recipients", "subject", "content", "status", "attempts", "created_at",
            "next_attempt_at", "last_error"]
_INSERT = Prepared(insert(OutboundMessage).returning(OutboundMessage.id), _COLUMNS)
_SELECT = Prepared(select(OutboundMessage.id, OutboundMessage.created_at,
                          OutboundMessage.content, OutboundMessage.lease_until)
                   .where(OutboundMessage.next_attempt_at >= bindparam("since"),
                          OutboundMessage.status == "queued").order_by(OutboundMessage.id))


def _row(i: int, when: dt.datetime) -> dict:
    return {"sender": "room@example.com", "recipients": "o@remote.example",
            "subject": f"s{i}", "content": b"\x00\xffbytes", "status": "queued",
            "attempts": 0, "created_at": when, "next_attempt_at": when, "last_error": ""}


def test_written_and_read_as_sqlalchemy_does(db):
    later = NOW.astimezone(BERLIN) + dt.timedelta(microseconds=7)  # another zone, same instant
    with db.write() as session:
        first = _INSERT.rows(session.connection(), _row(0, NOW))[0][0]
        second = _INSERT.rows(session.connection(), _row(1, later))[0][0]
    with db.read() as session:
        stored = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        assert [m.id for m in stored] == [first, second]
        assert [m.created_at for m in stored] == [NOW, later]
        assert stored[0].content == b"\x00\xffbytes" and stored[0].lease_until is None
        rows = _SELECT.rows(session.connection(), {"since": NOW + dt.timedelta(microseconds=1)})
    assert rows == [(second, later, b"\x00\xffbytes", None)]
    assert rows[0][1].utcoffset() == dt.timedelta(0)  # read back in UTC, as the ORM reads it


def test_a_rolled_back_transaction_keeps_none_of_it(db):
    with pytest.raises(RuntimeError), db.write() as session:
        _INSERT.run_many(session.connection(), [_row(0, NOW), _row(1, NOW)])
        raise RuntimeError("undo")
    with db.read() as session:
        assert session.scalars(select(OutboundMessage)).all() == []


def test_a_database_error_is_sqlalchemys_as_for_any_statement(db):
    # Callers tell a store fault (451, retried) from a bug by SQLAlchemyError, as before.
    with pytest.raises(IntegrityError), db.write() as session:
        _INSERT.rows(session.connection(), {**_row(0, NOW), "recipients": None})


_RETRY = Prepared(update(OutboundMessage).where(OutboundMessage.id == bindparam("message"))
                  .values(attempts=OutboundMessage.attempts + 1))


def test_statements_sent_together_do_what_each_does_alone(db):
    # The committer's end of a batch: writes that wait for nothing, then a read of ids.
    with db.write() as session:
        conn = session.connection()
        first = _INSERT.rows(conn, _row(0, NOW))[0][0]
        with pipelined(conn):
            _INSERT.run_many(conn, [_row(1, NOW), _row(2, NOW)])
            _RETRY.run(conn, {"message": first})
            third = _INSERT.rows(conn, _row(3, NOW))[0][0]  # read at once: sent so far
            _RETRY.run(conn, {"message": third})
            read_last = _INSERT.rows_later(conn, _row(4, NOW))  # read after the block
        last = read_last()[0][0]
    with db.read() as session:
        stored = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    assert [(m.subject, m.attempts) for m in stored] == [("s0", 1), ("s1", 0), ("s2", 0),
                                                         ("s3", 1), ("s4", 0)]
    assert [m.id for m in stored[-2:]] == [third, last]


def test_an_error_read_later_is_sqlalchemys(db):
    with pytest.raises(IntegrityError), db.write() as session:
        _INSERT.rows_later(session.connection(), {**_row(0, NOW), "recipients": None})()


def test_an_error_in_statements_sent_together_is_sqlalchemys(db):
    with pytest.raises(IntegrityError), db.write() as session:
        conn = session.connection()
        with pipelined(conn):  # the error is read at the end of the block
            _INSERT.run_many(conn, [_row(1, NOW), {**_row(2, NOW), "recipients": None}])
    with db.read() as session:
        assert session.scalars(select(OutboundMessage)).all() == []


def _subjects(db) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(OutboundMessage.subject).order_by(OutboundMessage.id)))


def test_a_commit_sent_with_the_statements_commits_them_then_the_session_runs_its_hooks(db):
    # The committer's end of a batch: its last writes and the COMMIT in one round trip on
    # PostgreSQL, the Session's commit after it; on the writer's kept connection.
    writer, hooks = db.held_writer(), []
    with writer.write() as session:
        event.listen(session, "after_commit", lambda _: hooks.append("after_commit"))
        conn = session.connection()
        with pipelined(conn):
            _INSERT.run_many(conn, [_row(0, NOW)])
            read_id = _INSERT.rows_later(conn, _row(1, NOW))
            commit_later(conn)
        assert read_id()[0][0] > 0
        # Elsewhere the Session's commit is the commit.
        assert _subjects(db) == (["s0", "s1"] if db.engine.dialect.name == "postgresql" else [])
        assert hooks == []
    assert _subjects(db) == ["s0", "s1"] and hooks == ["after_commit"]
    with writer.write() as session:  # the kept connection begins the next transaction
        _INSERT.run_many(session.connection(), [_row(2, NOW)])
    assert _subjects(db) == ["s0", "s1", "s2"]
    writer.close()


def test_an_error_before_a_commit_sent_with_it_commits_nothing(db):
    writer = db.held_writer()
    with pytest.raises(IntegrityError), writer.write() as session:
        conn = session.connection()
        with pipelined(conn):  # the error and the COMMIT not run are read at its end
            _INSERT.run_many(conn, [_row(0, NOW), {**_row(1, NOW), "recipients": None}])
            commit_later(conn)
    assert _subjects(db) == []
    with writer.write() as session:
        _INSERT.run_many(session.connection(), [_row(2, NOW)])
    assert _subjects(db) == ["s2"]
    writer.close()


def test_what_it_cannot_run_as_sqlalchemy_would_is_refused(db):
    in_list = Prepared(select(OutboundMessage.id).where(OutboundMessage.status.in_(["a", "b"])))
    defaulted = Prepared(insert(OutboundMessage), ["recipients", "content", "created_at",
                                                   "next_attempt_at"])
    with db.read() as session:
        with pytest.raises(ValueError, match="expanding"):
            in_list.rows(session.connection(), {})
        with pytest.raises(ValueError, match="default: sender"):
            defaulted.run(session.connection(), {})


_TABLE = OutboundMessage.__table__
_BY_IDS = PerCount(lambda count: select(OutboundMessage.id, OutboundMessage.created_at)
                   .where(in_ids(OutboundMessage.id, count)), limit=4)
_MANY = PerCount(lambda count: insert(OutboundMessage)
                 .values(values_rows(_TABLE, _COLUMNS, count)).returning(OutboundMessage.id),
                 limit=4)


def test_one_statement_per_count_and_longer_lists_in_parts():
    parts = list(_BY_IDS.chunks(list(range(10))))
    assert [list(part) for _, part in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert parts[0][0] is parts[1][0] is not parts[2][0]
    assert list(_BY_IDS.chunks([])) == []


def test_multi_row_values_and_in_lists_round_trip_in_parts(db):
    rows = [_row(i, NOW + dt.timedelta(seconds=i)) for i in range(10)]
    with db.write() as session:
        conn = session.connection()
        ids = sorted(i for part_statement, part in _MANY.chunks(rows)
                     for (i,) in part_statement.rows(conn, row_params(part, _COLUMNS)))
    with db.read() as session:
        stored = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        # Sorted ids are the VALUES order (messages.Filings relies on it).
        assert [(m.id, m.subject) for m in stored] == [(i, f"s{n}") for n, i in enumerate(ids)]
        found = _BY_IDS.rows_by_ids(session.connection(), [ids[9], ids[0], *ids[3:8]])
        with pipelined(session.connection()):  # both parts sent, read after the block
            read = _BY_IDS.rows_by_ids_later(session.connection(), [ids[9], ids[0], *ids[3:8]])
        assert read() == found
    assert sorted(found) == sorted((m.id, m.created_at) for m in stored
                                   if m.id in {ids[9], ids[0], *ids[3:8]})
