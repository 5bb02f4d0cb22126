"""``calendar_store.new_booking``: a booking's row written by one INSERT and returned as its
id, UID and status, no ORM entity; the session's entity, loaded later, is the row's, also
after a savepoint that held another row of that id was rolled back (SQLite gives the id
again). On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

from mr_engine.store import calendar_store
from mr_engine.store.directory import get_user
from mr_engine.testing.accounts import ROOM, add_resource

NOW = dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc)


def _values(resource_id: int, uid: str) -> dict:
    return dict(resource_id=resource_id, uid=uid, sequence=0, dtstamp=NOW,
                organizer="organizer@remote.example", organizer_name="Organizer",
                attendee_count=2, summary=uid, calendar="", status="booked", created_at=NOW,
                updated_at=NOW, horizon=None, pool_id=None)


def test_the_row_is_returned_and_its_entity_loads_from_it(db) -> None:
    add_resource(db, "room", ROOM)
    with db.write() as session:
        room = get_user(session, "room").id
        new = calendar_store.new_booking(session, **_values(room, "one"))
        assert (new.uid, new.status) == ("one", "booked")
        loaded = calendar_store.find_booking(session, room, "one")
        assert loaded is not None and (loaded.id, loaded.summary) == (new.id, "one")


def test_an_entity_of_a_rolled_back_row_does_not_answer_for_a_new_row(db) -> None:
    add_resource(db, "room", ROOM)
    with db.write() as session:
        room = get_user(session, "room").id
        held = None  # kept, as a step may keep an entity it loaded (the map holds it weakly)
        try:
            with session.begin_nested():
                calendar_store.new_booking(session, **_values(room, "undone"))
                held = calendar_store.find_booking(session, room, "undone")
                raise RuntimeError("the delivery failed")
        except RuntimeError:
            pass
        assert held is not None
        new = calendar_store.new_booking(session, **_values(room, "kept"))
        loaded = calendar_store.find_booking(session, room, "kept")
        assert loaded is not None and (loaded.id, loaded.uid) == (new.id, "kept")
        assert calendar_store.find_booking(session, room, "undone") is None
