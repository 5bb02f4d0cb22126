"""``store.entities``: a mailbox entity made from its row is the one the ORM would load:
every column's value, persistent and clean (a flush writes nothing), a change written as an
UPDATE of that column, its relationship loaded when asked for; an entity the session holds
already is returned as it is. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import event, inspect, select

from mr_engine.store.entities import MAILBOXES
from mr_engine.store.models import Mailbox
from mr_engine.store.stores import create_store
from mr_engine.testing.accounts import ROOM, add_resource, add_users

NOW = dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc)


def _ids(db, names: list[str]) -> dict[str, int]:
    with db.read() as session:
        return dict(session.execute(select(Mailbox.name, Mailbox.id)
                                    .where(Mailbox.name.in_(names))).all())


def _recorded(db) -> list[str]:
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *rest: statements.append(sql))
    return statements


def _values(mailbox: Mailbox) -> dict:
    return {key: getattr(mailbox, key) for key, _ in MAILBOXES.columns}


def test_every_column_is_the_value_the_orm_loads(db) -> None:
    add_resource(db, "room", ROOM)
    add_users(db, "jane")
    ids = _ids(db, ["room", "jane"])
    with db.read() as session:
        expected = {i: _values(session.get_one(Mailbox, i)) for i in ids.values()}
    with db.read() as session:
        made = MAILBOXES.by_ids(session, list(ids.values()) + [10**6])  # the last is gone
        assert set(made) == set(ids.values())
        statements = _recorded(db)
        assert {i: _values(m) for i, m in made.items()} == expected
        assert statements == []  # every column was there: none loaded afterwards
        assert made[ids["room"]].created_at.tzinfo is not None  # the result processor ran
        assert all(inspect(m).persistent for m in made.values())


def test_it_is_clean_and_a_change_updates_that_column(db) -> None:
    add_resource(db, "room", ROOM)
    room = _ids(db, ["room"])["room"]
    statements = _recorded(db)
    with db.write() as session:
        entity = MAILBOXES.by_ids(session, [room])[room]
        session.flush()
        assert not [sql for sql in statements if not sql.startswith(("BEGIN", "SELECT"))]
        entity.fullname = "The Big Room"
        session.flush()
        assert [sql.split()[0] for sql in statements if "mailboxes" in sql] == ["UPDATE"]
        assert "fullname" in statements[-1] and "email" not in statements[-1]
    with db.read() as session:
        assert session.get_one(Mailbox, room).fullname == "The Big Room"


def test_its_relationship_loads_when_asked_for(db) -> None:
    add_resource(db, "room", ROOM)
    room = _ids(db, ["room"])["room"]
    with db.write() as session:
        store_id = create_store(session, session.get_one(Mailbox, room), NOW).id
    with db.read() as session:
        entity = MAILBOXES.by_ids(session, [room])[room]
        assert entity.store is not None and entity.store.id == store_id


def test_an_entity_the_session_holds_is_returned_as_it_is(db) -> None:
    add_resource(db, "room", ROOM)
    room = _ids(db, ["room"])["room"]
    with db.write() as session:
        held = session.get_one(Mailbox, room)
        held.fullname = "changed, not flushed"
        assert MAILBOXES.by_ids(session, [room])[room] is held
        assert held.fullname == "changed, not flushed"


def test_more_ids_than_one_statement_takes(db) -> None:
    names = [f"user{i}" for i in range(40)]  # PerCount's limit is 32 a statement
    add_users(db, *names)
    ids = _ids(db, names)
    with db.read() as session:
        made = MAILBOXES.by_ids(session, list(ids.values()))
        assert {m.name for m in made.values()} == set(names)


def test_a_mailbox_deleted_in_the_session_is_not_returned(db) -> None:
    # As the ORM's select, the read sees the session's own changes (it flushes first).
    add_users(db, "jane", "john")
    ids = _ids(db, ["jane", "john"])
    with db.write() as session:
        session.delete(session.get_one(Mailbox, ids["jane"]))
        made = MAILBOXES.by_ids(session, list(ids.values()))
        assert [m.name for m in made.values()] == ["john"]
