"""store.by_ids: a statement per id-list length, and the expanding form for long lists."""

import datetime as dt

from sqlalchemy import select

from mr_engine.store.by_ids import CACHED_LENGTHS, ByIds
from mr_engine.store.directories.db import SqlDirectory
from mr_engine.store.directory import create_user
from mr_engine.store.models import Mailbox


def test_one_statement_per_length_with_ids_in_order():
    by_ids = ByIds(Mailbox.id, select(Mailbox.id).where)
    first, params = by_ids({3, 1, 2})
    again, _ = by_ids([7, 8, 9])
    assert first is again
    assert params == {"id0": 1, "id1": 2, "id2": 3}
    assert by_ids([1])[0] is not first


def test_long_lists_use_the_expanding_parameter():
    by_ids = ByIds(Mailbox.id, select(Mailbox.id).where)
    ids = list(range(CACHED_LENGTHS + 1))
    statement, params = by_ids(ids)
    assert params == {"ids": ids}
    assert by_ids(ids)[0] is statement


def test_mailboxes_by_ids_short_long_and_none(db):
    now = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    with db.write() as session:
        ids = [create_user(session, name=f"u{i}", email=f"u{i}@example.com", now=now).id
               for i in range(CACHED_LENGTHS + 2)]
    with db.read() as session:
        directory = SqlDirectory(session)
        assert sorted(directory.mailboxes(ids[:3])) == sorted(ids[:3])
        assert sorted(directory.mailboxes(ids)) == sorted(ids)
        assert directory.mailboxes([]) == {}
