"""Whose calendar a URL names: a mailbox's row as published free/busy needs it, per request.

Free/busy is fetched by every organizer's client, and by some every few minutes, so its
lookup is one Core statement on two unique indexes (address, user name), built once,
rather than the ORM load of a whole ``Mailbox`` through a ``Directory``. Calendars are
kept in the store's own tables whatever the ``user_plugin``: a calendar's owner is always
a ``mailboxes`` row. The row carries ``calendar_version``, which tells a cache of the
calendar whether it still holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from mr_engine.core.addresses import strip_detail
from mr_engine.store.models import Mailbox


@dataclass(frozen=True)
class CalendarOwner:
    id: int
    name: str
    email: str
    fullname: str
    resource_type: str  # "none" for a user
    capacity: int  # the resource_capacity setting
    version: int  # calendar_version


_OWNER = select(Mailbox.id, Mailbox.name, Mailbox.email, Mailbox.fullname,
                Mailbox.resource_type, Mailbox.resource_capacity, Mailbox.calendar_version
                ).where(or_(Mailbox.email_lower == bindparam("exact"),
                            Mailbox.email_lower == bindparam("plain"),
                            Mailbox.name == bindparam("name")))


def calendar_owner(session: Session, name: str) -> CalendarOwner | None:
    """The mailbox whose address or user name is ``name``: the address exactly, else
    without its ``+detail`` (as delivery resolves it), else the user name; None if none."""
    exact = name.strip().lower()
    plain = strip_detail(exact) if "@" in exact else exact
    rows = session.connection().execute(_OWNER, {"exact": exact, "plain": plain, "name": name})
    owners = [CalendarOwner(*row) for row in rows]
    return min(owners, default=None,
               key=lambda o: (o.email.lower() != exact, o.email.lower() != plain))
