"""directory.pool_at / first_at: a pool's address matches in any case, the exact address
before the one without +detail, and a group that is not a pool never matches."""

from __future__ import annotations

from mr_engine.store import directory
from mr_engine.store.directory import create_group, set_pool


def test_pool_at_prefers_the_exact_address_then_strips_detail(db):
    with db.write() as session:
        plain = create_group(session, "rooms", "rooms@example.com")
        tagged = create_group(session, "tagged", "rooms+big@example.com")
        create_group(session, "team", "team@example.com")  # a group, not a pool
        set_pool(session, plain, True)
        set_pool(session, tagged, True)
    with db.read() as session:
        assert directory.pool_at(session, " Rooms+Big@Example.com").name == "tagged"
        assert directory.pool_at(session, "rooms+small@example.com").name == "rooms"
        assert directory.pool_at(session, "team@example.com") is None
        found = directory.pools_among(session, directory.address_forms("ROOMS+x@example.com"))
        assert directory.first_at(found, "ROOMS+x@example.com").name == "rooms"
        assert directory.first_at(found, "else@example.com") is None
