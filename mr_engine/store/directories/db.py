"""``user_plugin = db``: the directory kept in the store's own tables (``store.directory``).

The only source that can also be changed: kopano-cli writes users, groups, send-as and
membership with ``store.directory``'s functions; this reads them for the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.store import directory
from mr_engine.store.directories import EVERYONE, GroupInfo
from mr_engine.store.entities import MAILBOXES
from mr_engine.store.models import Mailbox

_BY_ADDRESS = select(Mailbox).where(Mailbox.email_lower == bindparam("address"))


class SqlDirectory:
    """The ``Directory`` of the store's tables, in one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def resolve(self, address: str) -> list[Mailbox]:
        return directory.resolve_address(self.session, address)

    def mailboxes(self, ids: Collection[int]) -> dict[int, Mailbox]:
        return MAILBOXES.by_ids(self.session, ids)

    def mailboxes_later(self, ids: Collection[int]) -> Callable[[], dict[int, Mailbox]]:
        return MAILBOXES.by_ids_later(self.session, ids)

    def user(self, name: str) -> Mailbox:
        return directory.get_user(self.session, name)

    def users(self) -> list[Mailbox]:
        return directory.list_users(self.session)

    def group(self, name: str) -> GroupInfo:
        if name == EVERYONE:  # not a row: every mailbox
            return GroupInfo(EVERYONE, None, [m.name for m in self.users()])
        return directory.group_info(self.session, directory.get_group(self.session, name))

    def groups(self) -> list[GroupInfo]:
        return directory.list_groups(self.session)

    def groups_of(self, address: str) -> list[str]:
        mailbox = self._by_address(address)
        return directory.groups_of(self.session, mailbox) if mailbox else []

    def sendas_of(self, address: str) -> list[str]:
        mailbox = self._by_address(address)
        return directory.sendas_names(self.session, mailbox) if mailbox else []

    def user_at(self, address: str) -> Mailbox | None:
        return self._by_address(address)

    def memberships(self, address: str) -> list[str]:
        mailbox = self._by_address(address)
        return directory.memberships(self.session, mailbox) if mailbox else []

    def has_domain(self, domain: str) -> bool:
        return directory.has_domain(self.session, domain)

    def _by_address(self, address: str) -> Mailbox | None:
        # The address exactly (no +detail): it names a user, it is no envelope recipient.
        return self.session.scalar(_BY_ADDRESS, {"address": address.strip().lower()})


def open_source(settings: Settings, session: Session) -> SqlDirectory:
    return SqlDirectory(session)
