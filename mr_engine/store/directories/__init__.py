"""The directory interface: who the engine delivers to, whichever source names them.

A *directory source* answers the questions of ``Directory``: which mailboxes an address
delivers to (a user, a resource, a group's members), a user or group by name, the groups of
an address, the listings. The setting ``user_plugin`` (Kopano's name) picks the source:
``config.USER_PLUGINS`` maps each value to the module that implements it, and that module's
``open_source(settings, session)`` returns a ``Directory`` for one session (one transaction).
``db`` (``directories.db``) is the SQL directory in the store itself.

Whatever the source, the engine's own record of a recipient is its ``Mailbox`` row (store,
resource settings, quotas): sources answer with rows of the session they were opened on, so
a delivery needs no second lookup. Changing users and groups is the ``db`` source's alone
(``store.directory``, used by kopano-cli); other sources are read there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from mr_engine.config import USER_PLUGINS, Settings
from mr_engine.store.models import Mailbox

# Kopano's built-in group: every user is a member, in every source.
EVERYONE = "Everyone"


class DirectoryError(Exception):
    """A directory operation that cannot be done; the message says why."""


class NotFound(DirectoryError):
    pass


class Duplicate(DirectoryError):
    pass


class DirectoryUnavailable(DirectoryError):
    """The source cannot be asked now (an LDAP server down): try again later, never
    treat the address as unknown. The message says which servers and why."""


@dataclass(frozen=True)
class GroupInfo:
    name: str
    email: str | None
    members: list[str]  # user names, sorted
    groups: list[str] = field(default_factory=list)  # names of its member groups, sorted
    pool: bool = False  # a pool (resource collection): requests to it book one free member


@runtime_checkable
class Directory(Protocol):
    """What the engine asks of a directory source; rows belong to the source's session."""

    def resolve(self, address: str) -> list[Mailbox]:
        """The mailboxes an envelope recipient delivers to: one user or resource, a group's
        members, or none. Case-insensitive; ``user+detail@domain`` is ``user@domain``."""
        ...

    def mailboxes(self, ids: Collection[int]) -> dict[int, Mailbox]:
        """The mailboxes with these ids (as ``resolve`` gave them) that still exist, by id,
        in one lookup: the group committer's batch."""
        ...

    def user(self, name: str) -> Mailbox:
        """The user or resource named ``name``; NotFound if there is none."""
        ...

    def users(self) -> list[Mailbox]:
        """Every user and resource, by name."""
        ...

    def group(self, name: str) -> GroupInfo:
        """The group named ``name`` (``Everyone`` too); NotFound if there is none."""
        ...

    def groups(self) -> list[GroupInfo]:
        """Every group with its members, ``Everyone`` first, then by name."""
        ...

    def groups_of(self, address: str) -> list[str]:
        """Names of the groups the user at ``address`` belongs to, ``Everyone`` first;
        none for an address that is no user's."""
        ...

    def sendas_of(self, address: str) -> list[str]:
        """Names of the users who may send as the user at ``address``, sorted."""
        ...

    def user_at(self, address: str) -> Mailbox | None:
        """The user or resource whose address is exactly ``address`` (no ``+detail``),
        case-insensitive; None for an address that is no user's."""
        ...

    def memberships(self, address: str) -> list[str]:
        """As ``groups_of``, with the groups reached through nested groups too (a group
        that is a member of another); cycles end. Who-may-book's ``group:NAME``."""
        ...

    def has_domain(self, domain: str) -> bool:
        """Whether any user, resource or group has an address at ``domain``: a local
        domain, for who-may-book's ``internal`` and ``--mr-allow-external no``."""
        ...


def open_directory(settings: Settings, session: Session) -> Directory:
    """The source ``settings.user_plugin`` names, reading in ``session``."""
    module = importlib.import_module(USER_PLUGINS[settings.user_plugin])
    return module.open_source(settings, session)


def mailboxes_later(source: Directory, ids: Collection[int]) -> Callable[[], dict[int, Mailbox]]:
    """``source.mailboxes(ids)``, the lookup sent now where the source can send it (its
    ``mailboxes_later``: the rows of db and ldap, in a ``store.prepared.pipelined`` block
    with the block's other statements), else made when the function returned is called.
    The group committer claims a batch's Message-IDs in the same round trip."""
    later = getattr(source, "mailboxes_later", None)
    return later(ids) if later is not None else lambda: source.mailboxes(ids)
