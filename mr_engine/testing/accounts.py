"""Users and resources in a test's store, created as the administrator would."""

from __future__ import annotations

from mr_engine.store.db import Database
from mr_engine.store.directory import create_user, update_user

from .times import NOW

# The meeting room most delivery tests book.
ROOM = "room@example.com"


def add_users(db: Database, *names: str, **fields) -> None:
    """Users ``name@example.com``; ``fields`` are set on each (quotas, ...)."""
    with db.write() as session:
        for name in names:
            user = create_user(session, name=name, email=f"{name}@example.com",
                               fullname=name.title(), now=NOW)
            if fields:
                update_user(session, user, **fields)


def add_resource(db: Database, name: str, email: str, **fields) -> None:
    """A room that accepts meeting requests and declines conflicts, unless ``fields`` say
    otherwise."""
    settings = {"resource_type": "room", "mr_accept": True, "mr_decline_conflict": True}
    settings.update(fields)
    with db.write() as session:
        update_user(session, create_user(session, name=name, email=email, fullname=name.title(),
                                         now=NOW), **settings)
