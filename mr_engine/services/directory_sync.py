"""``kopano-cli --sync``: one full pass over an LDAP directory (Kopano's §8.5.1, the sync
Kopano ran from cron), in the caller's one write transaction.

Every user and resource entry (paged searches, read afresh, not from the cache) gets its
``Mailbox`` row created or brought up to date (``ldap_mirror``); a new one also gets its
store, and the createuser script runs. A row whose entry is gone (its unique attribute no
longer found) is deleted with its store kept as an orphan, for ``--list-orphans``,
``--hook-store`` or ``--remove-store`` (§8.2.3), and the deleteuser script runs. Groups are
mirrored the same way (``groups`` rows, for the pools and the group scripts). A search that
finds no user at all while rows mirror some changes nothing: an emptied directory is far
more often a wrong ``ldap_search_base`` or filter than a company without staff.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core.ldap_entries import LdapGroup, Person
from mr_engine.store import directory, event_scripts, stores
from mr_engine.store.directories import DirectoryError
from mr_engine.store.directories.ldap_mirror import mirror, mirror_group
from mr_engine.store.models import Group, Mailbox

if TYPE_CHECKING:  # the source itself is imported only where user_plugin = ldap chose it
    from mr_engine.store.directories.ldap import LdapDirectory


@dataclass
class SyncReport:
    """What the pass did, by name (users and resources; groups apart)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    groups_created: list[str] = field(default_factory=list)
    groups_deleted: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary: one line per kind of change, the count and the names."""
        return [f"{label}: {len(names)}" + (f" ({', '.join(names)})" if names else "")
                for label, names in (("Users created", self.created),
                                     ("Users updated", self.updated),
                                     ("Users orphaned", self.orphaned),
                                     ("Groups created", self.groups_created),
                                     ("Groups deleted", self.groups_deleted))]


def synchronise(session: Session, source: LdapDirectory, settings: Settings,
                now: dt.datetime) -> SyncReport:
    """The full pass (see the module's docstring); nothing is committed here."""
    source.refresh()
    people = source.people()
    report = SyncReport()
    _mirror_people(session, people, settings, now, report)
    _mirror_groups(session, source.group_entries(), settings, report)
    return report


def _snapshot(row: Mailbox) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in Mailbox.__table__.columns}


def _mirrored(session: Session) -> dict[str, Mailbox]:
    """The rows that mirror an entry, by its unique attribute."""
    rows = session.scalars(select(Mailbox).where(Mailbox.external_id.is_not(None)))
    return {row.external_id: row for row in rows}


def _mirror_people(session: Session, people: list[Person], settings: Settings,
                   now: dt.datetime, report: SyncReport) -> None:
    before = {key: _snapshot(row) for key, row in _mirrored(session).items()}
    if not people and before:
        raise DirectoryError("LDAP has no users at all: nothing synchronised (check "
                             "ldap_search_base and ldap_user_search_filter)")

    new: set[str] = set()

    def created(session: Session, name: str) -> None:
        new.add(name)
        report.created.append(name)
        event_scripts.queue_event(session, settings, "createuser", name)

    for person, row in zip(people, mirror(session, people, now, created)):
        if person.name in new:
            stores.create_store(session, row, now)
        elif _snapshot(row) != before.get(person.external_id):
            report.updated.append(person.name)
    _orphan_gone(session, {p.external_id for p in people}, settings, report)


def _orphan_gone(session: Session, present: set[str], settings: Settings,
                 report: SyncReport) -> None:
    """Delete the rows of entries gone from LDAP, keeping their stores as orphans."""
    gone = sorted((row for key, row in _mirrored(session).items() if key not in present),
                  key=lambda row: row.name)
    for row in gone:
        report.orphaned.append(row.name)
        stores.orphan_store_of(session, row)
        directory.delete_user(session, row)
        event_scripts.queue_event(session, settings, "deleteuser", row.name)


def _mirror_groups(session: Session, groups: Iterable[LdapGroup], settings: Settings,
                   report: SyncReport) -> None:
    rows = list(session.scalars(select(Group)))
    linked = {row.external_id for row in rows if row.external_id}
    unlinked = {row.name for row in rows if not row.external_id}  # adopted, not created
    present = set()
    for group in groups:
        present.add(mirror_group(session, group).external_id)
        if group.external_id not in linked and group.name not in unlinked:
            report.groups_created.append(group.name)
            event_scripts.queue_event(session, settings, "creategroup", group.name)
    for row in sorted((r for r in rows if r.external_id and r.external_id not in present),
                      key=lambda r: r.name):
        report.groups_deleted.append(row.name)
        directory.delete_group(session, row)
        event_scripts.queue_event(session, settings, "deletegroup", row.name)
