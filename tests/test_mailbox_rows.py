"""store.mailbox_rows: what every delivery reads of its mailbox, in one statement; the
entity is loaded only for a step that needs it (delivery.context.Delivery.mailbox)."""

from __future__ import annotations

from mr_engine.delivery.context import Batch, Delivery, Envelope
from mr_engine.config import Settings
from mr_engine.store.directory import create_group, get_user, set_pool
from mr_engine.store.mailbox_rows import MailboxRow, mailbox_rows, mailbox_rows_later
from mr_engine.store.oof_state import set_oof
from mr_engine.store.prepared import pipelined
from mr_engine.store.stores import ensure_store, folder_id
from mr_engine.testing.accounts import add_resource, add_users
from mr_engine.testing.times import NOW


def test_rows_of_the_mailboxes_that_exist_as_the_entity_has_them(db):
    add_users(db, "alice", quota_hard=6000)
    add_resource(db, "room", "Room@Example.com")
    with db.read() as session:
        alice, room = get_user(session, "alice"), get_user(session, "room")
        rows = mailbox_rows(session.connection(), [room.id, alice.id, 999, alice.id])
        assert rows == {alice.id: MailboxRow.of(alice), room.id: MailboxRow.of(room)}
    assert (rows[alice.id].quota_hard, rows[alice.id].may_book) == (6000, False)
    assert (rows[room.id].email, rows[room.id].resource_type) == ("Room@Example.com", "room")
    assert rows[room.id].may_book


def test_the_entity_is_loaded_once_for_the_batch_on_first_use(db):
    add_users(db, "alice")
    with db.write() as session:
        mailbox_id = get_user(session, "alice").id
        session.expunge_all()
        row = mailbox_rows(session.connection(), [mailbox_id])[mailbox_id]
        batch = Batch.load(session, [mailbox_id])
        d = Delivery(session=session, settings=Settings(), now=NOW,
                     envelope=Envelope("bob@example.org", b"", None, None),
                     recipient="alice@example.com", row=row, batch=batch)
        assert batch.entities == {}
        entity = d.mailbox
        assert (entity.id, entity.name) == (mailbox_id, "alice")
        assert batch.entities == {mailbox_id: entity} and d.mailbox is entity


def test_a_batchs_first_reads_sent_together_read_what_each_reads_alone(db):
    # The committer sends them in one pipelined block (on PostgreSQL one round trip).
    add_users(db, "alice", "bob", "carol")
    with db.write() as session:
        alice, bob = get_user(session, "alice"), get_user(session, "bob")
        store = ensure_store(session, alice, NOW)
        inbox = folder_id(session, store.id, "Inbox")
        set_oof(session, bob, enabled=True, subject="Away", body="Back soon")
        set_pool(session, create_group(session, "rooms", "Rooms@Example.com"), True)
        ids = [alice.id, bob.id, get_user(session, "carol").id, 999]
    with db.write() as session:
        with pipelined(session.connection()):
            read_rows = mailbox_rows_later(session.connection(), ids)
            load = Batch.later(session, ids, pools=True)
        rows, batch = read_rows(), load()
        assert rows == mailbox_rows(session.connection(), ids) and len(rows) == 3
        alone = Batch.load(session, ids)
    assert batch.pool_addresses(None) == {"rooms@example.com"}  # read with the others
    assert batch.oof == alone.oof and list(batch.oof) == [bob.id]
    assert batch.oof[bob.id].subject == "Away"
    assert [batch.stores.known(i) for i in ids] == [store.id, None, None, None]
    assert batch.stores.folder_id(store.id, "Inbox") == inbox
