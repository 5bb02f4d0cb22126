"""The local rows that mirror LDAP entries: a user's or resource's ``Mailbox`` created just
in time (Kopano's §8.5.1) and brought up to date whenever its entry is read again.

A row is linked to its entry by ``external_id`` (the unique attribute), so a rename or a new
address changes the row and keeps its store, bookings and resource settings. What LDAP
defines is copied over on every read: name, address, full name, active, admin, hidden,
quotas, features, and for resources their type and capacity. The booking settings
(``--mr-accept`` and the rest) are the row's own, as Kopano kept them in the store.

A row of the ``db`` plugin with the entry's name (else its address) and no link is adopted
(its store stays). A row still holding the name or address that another entry now has is
the mirror of an entry that was renamed or deleted: it gives them up (``~ID`` appended), so
the newcomer gets them and the old store stays the old row's (an orphan for --sync).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mr_engine.core.ldap_entries import LdapGroup, Person
from mr_engine.store.models import Group, Mailbox


def mirror(session: Session, people: Iterable[Person], now: dt.datetime,
           on_create: Callable[[Session, str], None] | None = None) -> list[Mailbox]:
    """The rows of ``people``, created or updated in ``session`` (flushed, not committed);
    ``on_create`` is told the name of each new row (the createuser script's event)."""
    return [mirror_one(session, person, now, on_create) for person in people]


def mirror_one(session: Session, person: Person, now: dt.datetime,
               on_create: Callable[[Session, str], None] | None = None) -> Mailbox:
    mailbox = _linked(session, person) or _adoptable(session, person)
    _give_up_conflicts(session, person, mailbox)
    if mailbox is None:
        mailbox = Mailbox(external_id=person.external_id, created_at=now, password_hash="")
        session.add(mailbox)
        if on_create is not None:
            on_create(session, person.name)
    apply(mailbox, person)
    session.flush()
    return mailbox


def apply(mailbox: Mailbox, person: Person) -> None:
    """What LDAP defines, onto the row (the booking settings stay the row's)."""
    mailbox.external_id = person.external_id
    mailbox.name, mailbox.email = person.name, person.email
    mailbox.email_lower = person.email.lower()
    mailbox.fullname = person.fullname
    mailbox.active, mailbox.admin_level = person.active, person.admin_level
    mailbox.hidden = person.hidden
    quotas = person.quotas
    mailbox.quota_warning = quotas.warning if quotas else None
    mailbox.quota_soft = quotas.soft if quotas else None
    mailbox.quota_hard = quotas.hard if quotas else None
    mailbox.features = ",".join(person.enabled_features)
    mailbox.disabled_features = ",".join(person.disabled_features)
    mailbox.resource_type = person.resource_type
    if person.resource_type != "none" and person.capacity is not None:
        mailbox.resource_capacity = max(1, person.capacity)


def mirror_group(session: Session, group: LdapGroup) -> Group:
    """The ``groups`` row of an LDAP group (for ``--sync`` and its events), by its link."""
    row = session.scalar(select(Group).where(Group.external_id == group.external_id))
    if row is None:
        row = session.scalar(select(Group).where(Group.name == group.name,
                                                 Group.external_id.is_(None)))
    if row is None:
        row = Group(external_id=group.external_id)
        session.add(row)
    row.external_id, row.name = group.external_id, group.name
    row.email = group.email
    row.email_lower = group.email.lower() if group.email else None
    session.flush()
    return row


def _linked(session: Session, person: Person) -> Mailbox | None:
    return session.scalar(select(Mailbox).where(Mailbox.external_id == person.external_id))


def _adoptable(session: Session, person: Person) -> Mailbox | None:
    unlinked = select(Mailbox).where(Mailbox.external_id.is_(None))
    return (session.scalar(unlinked.where(Mailbox.name == person.name))
            or session.scalar(unlinked.where(Mailbox.email_lower == person.email.lower())))


def _give_up_conflicts(session: Session, person: Person, keep: Mailbox | None) -> None:
    query = select(Mailbox).where(or_(Mailbox.name == person.name,
                                      Mailbox.email_lower == person.email.lower()))
    if keep is not None:
        query = query.where(Mailbox.id != keep.id)
    for other in list(session.scalars(query)):
        suffix = f"~{other.id}"
        other.name = other.name[:255 - len(suffix)] + suffix
        other.email = other.email_lower = f"{other.email_lower}{suffix}"
    session.flush()  # before the newcomer's row takes them over
