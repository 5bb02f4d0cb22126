"""``calendar_store.touch``: a resource's calendar_version is raised once per transaction
that changes its occurrences (savepoints inside it included), and again after a savepoint
that raised it is rolled back; on SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from mr_engine.store import calendar_store
from mr_engine.store.directory import get_user
from mr_engine.store.models import Mailbox
from mr_engine.testing.accounts import ROOM, add_resource

OTHER = "beamer@example.com"


def _versions(db) -> dict[str, int]:
    with db.read() as session:
        return dict(session.execute(select(Mailbox.name, Mailbox.calendar_version)).all())


def _two_resources(db) -> dict[str, int]:
    """A room and a beamer; their calendar versions before the test."""
    add_resource(db, "room", ROOM)
    add_resource(db, "beamer", OTHER, resource_type="equipment")
    return _versions(db)


def _ids(session) -> tuple[int, int]:
    return get_user(session, "room").id, get_user(session, "beamer").id


def _raised(db, before: dict[str, int]) -> tuple[int, int]:
    after = _versions(db)
    return after["room"] - before["room"], after["beamer"] - before["beamer"]


def test_raised_once_per_transaction_and_resource(db) -> None:
    before = _two_resources(db)
    with db.write() as session:
        room, beamer = _ids(session)
        for _ in range(3):
            calendar_store.touch(session, room)
        calendar_store.touch(session, beamer)
    with db.write() as session:
        calendar_store.touch(session, room)
    assert _raised(db, before) == (2, 1)


def test_a_rolled_back_savepoint_takes_its_raise_along_and_the_next_change_raises_again(db):
    add_resource(db, "room", ROOM)
    before = _versions(db)["room"]
    with db.write() as session:
        room = get_user(session, "room").id
        savepoint = session.begin_nested()
        calendar_store.touch(session, room)
        savepoint.rollback()
        calendar_store.touch(session, room)  # after the rollback: raised again
        with session.begin_nested():
            calendar_store.touch(session, room)  # the transaction around it has raised it
    assert _versions(db)["room"] - before == 1


def test_raised_in_a_released_savepoint_counts_for_the_transaction(db) -> None:
    add_resource(db, "room", ROOM)
    before = _versions(db)["room"]
    with db.write() as session:
        room = get_user(session, "room").id
        with session.begin_nested():
            calendar_store.touch(session, room)
    assert _versions(db)["room"] - before == 1


def _in_session(session, name: str) -> int:
    return session.scalar(select(Mailbox.calendar_version).where(Mailbox.name == name))


def test_deferred_raises_are_written_once_each_by_write_touches(db) -> None:
    # The group committer's first run of a batch: raised with its last writes.
    before = _two_resources(db)
    with db.write() as session:
        room, beamer = _ids(session)
        calendar_store.defer_touches(session)
        for resource in (room, beamer, room):
            calendar_store.touch(session, resource)
        assert (_in_session(session, "room"), _in_session(session, "beamer")) == \
            (before["room"], before["beamer"])
        calendar_store.write_touches(session)
        calendar_store.touch(session, room)  # raised at once again: already raised
    assert _raised(db, before) == (1, 1)


def test_a_deferred_raise_stays_when_a_savepoints_raise_is_rolled_back(db) -> None:
    add_resource(db, "room", ROOM)
    before = _versions(db)["room"]
    with db.write() as session:
        room = get_user(session, "room").id
        calendar_store.defer_touches(session)
        savepoint = session.begin_nested()  # a savepoint raises at once: its rollback takes it
        calendar_store.touch(session, room)
        assert _in_session(session, "room") == before + 1
        savepoint.rollback()
        calendar_store.touch(session, room)
        calendar_store.write_touches(session)
    assert _versions(db)["room"] - before == 1
