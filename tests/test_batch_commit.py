"""The group committer's batch is one transaction, committed with its last writes: on
PostgreSQL the COMMIT goes in their round trip (``prepared.commit_later``), after the ORM's
own changes (a cancelled booking's DELETE), so that nothing is left for the Session's commit
but its hooks. On SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from mr_engine.delivery.context import Envelope, message_id_of, parse_message
from mr_engine.delivery.pipeline import DELIVERED
from mr_engine.store.directory import get_user
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.batches import one_batch
from mr_engine.testing.invites import invite
from mr_engine.testing.store_views import agenda, outbox_rows
from mr_engine.testing.times import HOUR, T9


def _request(method: str, sequence: int) -> Envelope:
    content = invite("m", T9, T9 + HOUR, ROOM, method=method, sequence=sequence,
                     message_id=f"<m-{sequence}@remote.example>")
    message = parse_message(content)
    return Envelope("organizer@remote.example", content, message, message_id_of(message))


@pytest.fixture
def open_at_commit(db):
    """For each commit of the store's connections: whether the server still held the
    transaction open when the Session committed (PostgreSQL's view; SQLite's is its own)."""
    seen: list[bool] = []

    def on_commit(conn) -> None:
        driver = conn.connection.driver_connection
        if conn.dialect.name == "postgresql":
            seen.append(driver.info.transaction_status != driver.info.transaction_status.IDLE)
        else:
            seen.append(driver.in_transaction)

    event.listen(db.engine, "commit", on_commit)
    yield seen
    event.remove(db.engine, "commit", on_commit)


def test_a_batch_and_the_orms_changes_are_committed_with_its_last_writes(db, db_url,
                                                                         open_at_commit):
    add_resource(db, "room", ROOM)
    with db.read() as session:
        room = get_user(session, "room").id
    open_at_commit.clear()
    assert one_batch(db, [(_request("REQUEST", 0), [(ROOM, room)])]) == [[DELIVERED]]
    assert [e["uid"] for e in agenda(db_url, "room")] == ["m"]
    # The cancellation deletes the booking through the ORM, flushed before the COMMIT.
    assert one_batch(db, [(_request("CANCEL", 1), [(ROOM, room)])]) == [[DELIVERED]]
    assert agenda(db_url, "room") == []
    assert len(outbox_rows(db)) == 1  # the acceptance; a cancellation is not answered
    held_open = db.engine.dialect.name != "postgresql"
    assert open_at_commit == [held_open, held_open]
