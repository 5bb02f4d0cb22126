"""A meeting request whose processing fails is delivered as ordinary mail, and leaves no
booking and no reply, while the other requests of its batch are booked and answered.

The group committer's first run of a batch books without a savepoint per request; a
failure there reruns the batch with savepoints, where the failing booking is undone alone.
The failure is injected after the booking's row is written, so a half-written booking
would show. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging

import pytest

from mr_engine.delivery.context import Envelope, message_id_of, parse_message
from mr_engine.delivery.pipeline import DELIVERED
from mr_engine.store import calendar_store
from mr_engine.store.directory import get_user
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.batches import one_batch
from mr_engine.testing.invites import invite
from mr_engine.testing.store_views import agenda, messages_of, outbox_rows
from mr_engine.testing.times import HOUR, T9


def _request(uid: str, hour: int) -> Envelope:
    start = T9 + hour * HOUR
    content = invite(uid, start, start + HOUR, ROOM, message_id=f"<{uid}@remote.example>")
    message = parse_message(content)
    return Envelope("organizer@remote.example", content, message, message_id_of(message))


@pytest.fixture
def failing_boom(monkeypatch):
    """Booking the meeting "boom" fails once its booking row and occurrences are written."""
    new_booking = calendar_store.new_booking

    def fail_for_boom(session, resource, instances, **values):
        saved = new_booking(session, resource, instances, **values)
        if saved.uid == "boom":
            raise RuntimeError("injected fault")
        return saved

    monkeypatch.setattr(calendar_store, "new_booking", fail_for_boom)


def test_a_failing_booking_is_mail_and_leaves_nothing(db, db_url, failing_boom, caplog):
    add_resource(db, "room", ROOM)
    with db.read() as session:
        room = get_user(session, "room").id
    with caplog.at_level(logging.ERROR):
        answers = one_batch(db, [(_request(uid, hour), [(ROOM, room)])
                                 for uid, hour in (("first", 0), ("boom", 2), ("last", 4))])
    assert answers == [[DELIVERED]] * 3
    assert "meeting request processing failed; delivering as mail" in caplog.text
    booked = agenda(db_url, "room")
    assert sorted(entry["uid"] for entry in booked) == ["first", "last"], booked
    # One reply each for the two booked; none for the failed one.
    replies = outbox_rows(db)
    assert len(replies) == 2 and not any("boom" in row.content.decode() for row in replies)
    inbox = [m.message_id for m in messages_of(db, "room", "Inbox")]
    assert inbox == ["<boom@remote.example>"]
    assert len(messages_of(db, "room")) == 3
