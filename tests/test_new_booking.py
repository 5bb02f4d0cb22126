"""``calendar_store.new_booking``: a booking's row and its occurrences written by Core
INSERTs (on PostgreSQL the row and its first occurrences by one) and returned as its id, UID
and status, no ORM entity; the session's entity, loaded later, is the row's, also after a
savepoint that held another row of that id was rolled back (SQLite gives the id again). On
SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from mr_engine.core.recurrence import Instance
from mr_engine.store import calendar_store
from mr_engine.store.directory import get_user
from mr_engine.store.models import Mailbox, Occurrence
from mr_engine.testing.accounts import ROOM, add_resource

NOW = dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc)


def _values(uid: str) -> dict:
    return dict(uid=uid, sequence=0, dtstamp=NOW,
                organizer="organizer@remote.example", organizer_name="Organizer",
                attendee_count=2, summary=uid, calendar="", status="booked", created_at=NOW,
                updated_at=NOW, horizon=None, pool_id=None)


def test_the_row_is_returned_and_its_entity_loads_from_it(db) -> None:
    add_resource(db, "room", ROOM)
    with db.write() as session:
        room = get_user(session, "room")
        new = calendar_store.new_booking(session, room, [], **_values("one"))
        assert (new.uid, new.status) == ("one", "booked")
        loaded = calendar_store.find_booking(session, room.id, "one")
        assert loaded is not None and (loaded.id, loaded.summary) == (new.id, "one")


def test_an_entity_of_a_rolled_back_row_does_not_answer_for_a_new_row(db) -> None:
    add_resource(db, "room", ROOM)
    with db.write() as session:
        room = get_user(session, "room")
        held = None  # kept, as a step may keep an entity it loaded (the map holds it weakly)
        try:
            with session.begin_nested():
                calendar_store.new_booking(session, room, _instances(1), **_values("undone"))
                held = calendar_store.find_booking(session, room.id, "undone")
                raise RuntimeError("the delivery failed")
        except RuntimeError:
            pass
        assert held is not None
        new = calendar_store.new_booking(session, room, _instances(1), **_values("kept"))
        loaded = calendar_store.find_booking(session, room.id, "kept")
        assert loaded is not None and (loaded.id, loaded.uid) == (new.id, "kept")
        assert calendar_store.find_booking(session, room.id, "undone") is None
        assert [o.booking_id for o in session.scalars(select(Occurrence))] == [new.id]


def _instances(count: int, cancelled: tuple[int, ...] = ()) -> list[Instance]:
    return [Instance(NOW + i * DAY, NOW + i * DAY, NOW + i * DAY + (i + 1) * MINUTE, f"n{i}",
                     i % 3 == 0, i in cancelled) for i in range(count)]


DAY, MINUTE = dt.timedelta(days=1), dt.timedelta(minutes=1)


# 16 occurrences go with the row on PostgreSQL; more are inserted after it.
@pytest.mark.parametrize("count", [0, 1, 2, 16, 17, 40])
def test_its_occurrences_are_written_with_it(db, count):
    add_resource(db, "room", ROOM)
    instances = _instances(count, cancelled=(1, 16))
    with db.write() as session:
        room = get_user(session, "room")
        version = room.calendar_version
        other = calendar_store.new_booking(session, room, _instances(1), **_values("other"))
        new = calendar_store.new_booking(session, room, instances, **_values("series"))
    with db.read() as session:
        stored = session.execute(
            select(Occurrence.recurrence_id, Occurrence.start, Occurrence.end, Occurrence.summary,
                   Occurrence.transparent, Occurrence.status, Occurrence.resource_id)
            .where(Occurrence.booking_id == new.id).order_by(Occurrence.start)).all()
        room = session.scalar(select(Mailbox).where(Mailbox.name == "room"))
        assert new.id != other.id
        assert [tuple(row) for row in stored] == [
            (i.recurrence_id, i.start, i.end, i.summary, i.transparent, "booked", room.id)
            for i in instances if not i.cancelled]
        assert room.calendar_version == version + 1  # raised once for the transaction
        longest = max([(i + 1) * 60 for i in range(count) if i not in (1, 16)], default=60)
        assert room.longest_occurrence == longest
