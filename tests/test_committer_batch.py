"""What the group committer writes once for a batch (issue 18): the messages in one insert,
each store's size once, the Message-ID claims at once; on SQLite and on PostgreSQL.

The deliveries are queued before the writer thread starts, so they are one batch.
"""

from __future__ import annotations

import contextlib

from mr_engine.delivery import committer
from mr_engine.delivery.context import Envelope, Outcome, message_id_of, parse_message
from mr_engine.delivery.pipeline import DELIVERED, DUPLICATE, OVER_QUOTA
from mr_engine.store import pg_wire
from mr_engine.store.db import Database
from mr_engine.store.directory import get_user
from mr_engine.store.stores import store_of
from mr_engine.testing.accounts import add_resource, add_users
from mr_engine.testing.batches import one_batch
from mr_engine.testing.store_views import messages_of


def _envelope(message_id: str, body: str = "hello") -> Envelope:
    content = (f"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Hi\r\n"
               f"Message-ID: {message_id}\r\n\r\n{body}\r\n").encode()
    message = parse_message(content)
    return Envelope("bob@example.org", content, message, message_id_of(message))


def _one_batch(db: Database, deliveries: list[tuple[Envelope, list[str]]]) -> list[list[Outcome]]:
    """Each (envelope, user names) delivered, all in one batch; the answers."""
    with db.read() as session:
        ids = {name: get_user(session, name).id for _, names in deliveries for name in names}
    return one_batch(db, [(envelope, [(f"{name}@example.com", ids[name]) for name in names])
                          for envelope, names in deliveries])


def _store_size(db: Database, name: str) -> int:
    with db.read() as session:
        store = store_of(session, get_user(session, name))
        return 0 if store is None else store.size


def test_a_batch_into_one_store_records_its_total_size(db):
    add_users(db, "alice", "bob")
    _one_batch(db, [(_envelope("<m0@x>"), ["alice"])])  # her store exists from here on
    answers = _one_batch(db, [(_envelope(f"<m{i}@x>", "x" * 100 * i), ["alice", "bob"])
                              for i in range(1, 4)])
    assert answers == [[DELIVERED, DELIVERED]] * 3
    for name in ("alice", "bob"):
        filed = messages_of(db, name)
        assert _store_size(db, name) == sum(m.size for m in filed) > 0
    assert [m.message_id for m in messages_of(db, "alice")] == [f"<m{i}@x>" for i in range(4)]


def test_a_message_id_twice_in_one_batch_is_a_duplicate(db):
    add_users(db, "alice", "bob")
    _one_batch(db, [(_envelope("<first@x>"), ["alice"])])  # alice has a store, bob none yet
    answers = _one_batch(db, [(_envelope("<m1@x>"), ["alice", "bob"]),
                              (_envelope("<m1@x>"), ["alice", "bob"])])
    assert answers == [[DELIVERED, DELIVERED], [DUPLICATE, DUPLICATE]]
    assert [m.message_id for m in messages_of(db, "alice")] == ["<first@x>", "<m1@x>"]
    assert [m.message_id for m in messages_of(db, "bob")] == ["<m1@x>"]
    assert _store_size(db, "alice") == sum(m.size for m in messages_of(db, "alice"))


def test_a_message_id_of_an_earlier_batch_is_a_duplicate(db):
    add_users(db, "alice")
    assert _one_batch(db, [(_envelope("<m1@x>"), ["alice"])]) == [[DELIVERED]]
    answers = _one_batch(db, [(_envelope("<m2@x>"), ["alice"]), (_envelope("<m1@x>"), ["alice"])])
    assert answers == [[DELIVERED], [DUPLICATE]]
    assert [m.message_id for m in messages_of(db, "alice")] == ["<m1@x>", "<m2@x>"]


def test_the_hard_quota_counts_what_the_batch_filed_before(db):
    add_users(db, "alice", quota_hard=6000)
    _one_batch(db, [(_envelope("<m0@x>"), ["alice"])])  # some 600 bytes with trace headers
    big = "x" * 2000  # some 2600 bytes each: two fit, the third would pass 6000
    answers = _one_batch(db, [(_envelope(f"<m{i}@x>", big), ["alice"]) for i in range(1, 5)])
    assert answers == [[DELIVERED], [DELIVERED], [OVER_QUOTA], [OVER_QUOTA]]
    filed = messages_of(db, "alice")
    assert [m.message_id for m in filed] == ["<m0@x>", "<m1@x>", "<m2@x>"]
    assert _store_size(db, "alice") == sum(m.size for m in filed)
    with db.write() as session:  # a refused message's Message-ID was not claimed
        get_user(session, "alice").quota_hard = 0
    assert _one_batch(db, [(_envelope("<m3@x>", big), ["alice"])]) == [[DELIVERED]]


def test_a_batch_longer_than_one_statement_files_each_once_in_order(db):
    # store.prepared writes 32 rows a statement: 40 deliveries take two, and a Message-ID's
    # second copy in the second part is still a duplicate of the first part's.
    add_users(db, "alice")
    _one_batch(db, [(_envelope("<m0@x>"), ["alice"])])  # her store exists: claims at once
    ids = [f"<m{i}@x>" for i in range(1, 40)] + ["<m1@x>"]
    answers = _one_batch(db, [(_envelope(mid, f"body {i}"), ["alice"]) for i, mid in enumerate(ids)])
    assert answers == [[DELIVERED]] * 39 + [[DUPLICATE]]
    filed = messages_of(db, "alice")
    assert [m.message_id for m in filed] == ["<m0@x>", *ids[:39]]
    assert _store_size(db, "alice") == sum(m.size for m in filed)


def test_a_resources_entity_and_the_claims_are_read_together(db, monkeypatch):
    # A resource in the batch (it may book): its entity is loaded for the steps. On
    # PostgreSQL that read and the batch's claims go in one pipelined block (one round
    # trip); on both stores the claims still tell the second copy.
    add_users(db, "alice")
    add_resource(db, "room1", "room1@example.com")
    _one_batch(db, [(_envelope("<m0@x>"), ["alice", "room1"])])  # both stores exist
    blocks = _pipelined_blocks(monkeypatch)
    answers = _one_batch(db, [(_envelope("<m1@x>"), ["alice", "room1"]),
                              (_envelope("<m1@x>"), ["alice", "room1"])])
    assert answers == [[DELIVERED, DELIVERED], [DUPLICATE, DUPLICATE]]
    assert [m.message_id for m in messages_of(db, "room1")] == ["<m0@x>", "<m1@x>"]
    if db.engine.dialect.name == "postgresql":
        assert any(any("FROM mailboxes" in sql for sql in block)
                   and any("INSERT INTO delivered_ids" in sql for sql in block)
                   for block in blocks), blocks


def _pipelined_blocks(monkeypatch) -> list[list[str]]:
    """The statements sent on the wire (``store.pg_wire``) inside each of the committer's
    pipelined blocks."""
    blocks: list[list[str]] = []
    inside = [False]
    real_block, real_send = committer.pipelined, pg_wire.Wire.send

    @contextlib.contextmanager
    def recorded(conn):
        blocks.append([])
        inside[0] = True
        try:
            with real_block(conn):
                yield
        finally:
            inside[0] = False

    def send(wire, sql, *args, **kwargs):
        if inside[0]:
            blocks[-1].append(sql.decode())
        return real_send(wire, sql, *args, **kwargs)
    monkeypatch.setattr(committer, "pipelined", recorded)
    monkeypatch.setattr(pg_wire.Wire, "send", send)
    return blocks
