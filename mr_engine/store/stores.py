"""Message stores: creating, hooking and orphaning stores, and their folders.

A user's store survives the user (it becomes an orphan) until it is removed; removal is a soft
delete that ``purge_softdeleted`` makes final, as in Kopano.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from mr_engine.store.db import lock_mailbox
from mr_engine.store.directories import DirectoryError, Duplicate, NotFound
from mr_engine.store.models import Folder, Mailbox, Message, Store
from mr_engine.store.prepared import PerCount, in_ids

INBOX = "Inbox"
CALENDAR = "Calendar"
SENT = "Sent Items"
PROCESSED = "Processed Requests"
DEFAULT_FOLDERS = (INBOX, CALENDAR, SENT)


def _new_store(session: Session, now: dt.datetime, **fields) -> Store:
    store = Store(guid=uuid.uuid4().hex.upper(), created_at=now, size=0, **fields)
    session.add(store)
    session.flush()
    for name in DEFAULT_FOLDERS:
        session.add(Folder(store_id=store.id, name=name))
    session.flush()
    return store


# Built once: both run for every delivery (see store/messages.py for why).
_STORE_OF = select(Store).where(Store.mailbox_id == bindparam("mailbox"),
                                Store.deleted_at.is_(None))
_FOLDER = select(Folder.id).where(Folder.store_id == bindparam("store"),
                                  Folder.name == bindparam("name"))


def store_of(session: Session, mailbox: Mailbox) -> Store | None:
    return session.scalar(_STORE_OF, {"mailbox": mailbox.id})


def create_store(session: Session, mailbox: Mailbox, now: dt.datetime) -> Store:
    if store_of(session, mailbox) is not None:
        raise Duplicate(f"user {mailbox.name!r} already has a store")
    return _new_store(session, now, mailbox_id=mailbox.id, owner_name=mailbox.name)


def ensure_store(session: Session, mailbox: Mailbox, now: dt.datetime) -> Store:
    """The mailbox's store, created on first delivery (as Kopano does)."""
    store = store_of(session, mailbox)
    if store is None:
        # Two server processes delivering the first message at once must not both create
        # one: take the mailbox's row lock, then look again.
        lock_mailbox(session, mailbox.id)
        store = store_of(session, mailbox) or create_store(session, mailbox, now)
    return store


def public_store(session: Session) -> Store | None:
    return session.scalar(select(Store).where(Store.is_public.is_(True),
                                              Store.deleted_at.is_(None)))


def create_public_store(session: Session, now: dt.datetime) -> Store:
    if public_store(session) is not None:
        raise Duplicate("the public store already exists")
    return _new_store(session, now, is_public=True, owner_name="")


def get_store(session: Session, guid: str) -> Store:
    store = session.scalar(select(Store).where(Store.guid == guid.upper(),
                                               Store.deleted_at.is_(None)))
    if store is None:
        raise NotFound(f"store {guid!r} does not exist")
    return store


def orphan_store_of(session: Session, mailbox: Mailbox) -> None:
    """Unhook the mailbox's store, keeping it (delete user, hook another store)."""
    store = store_of(session, mailbox)
    if store is not None:
        store.owner_name = mailbox.name
        store.mailbox_id = None
        session.flush()


def unhook_public_store(session: Session) -> Store:
    """The public store becomes an orphan (kopano-cli --unhook-store without --user)."""
    store = public_store(session)
    if store is None:
        raise NotFound("there is no public store")
    store.is_public = False
    session.flush()
    return store


def hook_store(session: Session, guid: str, mailbox: Mailbox | None) -> Store:
    """Attach an orphan to ``mailbox`` (its current store becomes an orphan), or make it public."""
    store = get_store(session, guid)
    if store.mailbox_id is not None or store.is_public:
        raise DirectoryError(f"store {store.guid} is not an orphan")
    if mailbox is None:
        if public_store(session) is not None:
            raise Duplicate("the public store already exists")
        store.is_public = True
    else:
        orphan_store_of(session, mailbox)
        store.mailbox_id = mailbox.id
        store.owner_name = mailbox.name
    session.flush()
    return store


def remove_store(session: Session, guid: str, now: dt.datetime) -> Store:
    store = get_store(session, guid)
    if store.mailbox_id is not None:
        raise DirectoryError(f"store {store.guid} belongs to a user; unhook it first")
    store.deleted_at = now
    store.is_public = False
    session.flush()
    return store


def purge_softdeleted(session: Session, before: dt.datetime | None = None) -> int:
    """Remove soft-deleted stores for good: all of them, or those deleted before ``before``
    (Kopano's ``--purge-softdelete N``: more than N days ago)."""
    condition = Store.deleted_at.is_not(None)
    if before is not None:
        condition = condition & (Store.deleted_at < before)
    result = session.execute(delete(Store).where(condition))
    return result.rowcount or 0


@dataclass(frozen=True)
class OrphanStore:
    store: Store
    last_modified: dt.datetime  # its last delivery, else its creation


@dataclass(frozen=True)
class Orphans:
    stores: list[OrphanStore]
    users_without_store: list[Mailbox]


def all_stores(session: Session) -> list[Store]:
    """Every store that is not soft-deleted (``--list-stores``)."""
    return list(session.scalars(select(Store).where(Store.deleted_at.is_(None))
                                .order_by(Store.id)))


def _last_modified(session: Session, store: Store) -> dt.datetime:
    latest = session.scalar(select(func.max(Message.received_at))
                            .where(Message.store_id == store.id))
    return latest or store.created_at


def list_orphans(session: Session) -> Orphans:
    stores = list(session.scalars(
        select(Store).where(Store.mailbox_id.is_(None), Store.is_public.is_(False),
                            Store.deleted_at.is_(None)).order_by(Store.id)))
    hooked = select(Store.mailbox_id).where(Store.mailbox_id.is_not(None),
                                            Store.deleted_at.is_(None))
    users = list(session.scalars(select(Mailbox).where(Mailbox.id.not_in(hooked))
                                 .order_by(Mailbox.name)))
    return Orphans([OrphanStore(s, _last_modified(session, s)) for s in stores], users)


def folder_id(session: Session, store_id: int, name: str) -> int:
    """The folder's id, created on demand (e.g. ``Processed Requests``)."""
    fid = session.scalar(_FOLDER, {"store": store_id, "name": name})
    if fid is None:
        folder = Folder(store_id=store_id, name=name)
        session.add(folder)
        session.flush()
        fid = folder.id
    return fid


_INDEX = PerCount(lambda count: select(Store.mailbox_id, Store.id, Folder.name, Folder.id)
                  .outerjoin(Folder, Folder.store_id == Store.id)
                  .where(Store.deleted_at.is_(None), in_ids(Store.mailbox_id, count)))


class StoreIndex:
    """Store and folder ids of a set of mailboxes, read in one query for one transaction.

    The group committer delivers many messages in one transaction; looking the store and
    the folder up again for each of them cost two queries a delivery. What a delivery
    creates (a first store, a new folder) is added; ``forget`` drops a mailbox's entries
    when its savepoint is rolled back, since what was created there is gone.
    """

    def __init__(self, session: Session, mailbox_ids: Iterable[int] = ()) -> None:
        self._session = session
        self._stores: dict[int, int] = {}
        self._folders: dict[tuple[int, str], int] = {}
        self._add(StoreIndex._read_later(session, mailbox_ids)())

    @classmethod
    def later(cls, session: Session, mailbox_ids: Iterable[int]) -> Callable[[], "StoreIndex"]:
        """The index, read when the function returned is called (in a
        ``prepared.pipelined`` block: sent with the block's other statements)."""
        read = cls._read_later(session, mailbox_ids)

        def index() -> StoreIndex:
            made = cls(session)
            made._add(read())
            return made
        return index

    @staticmethod
    def _read_later(session: Session, mailbox_ids: Iterable[int]) -> Callable[[], list]:
        ids = sorted(set(mailbox_ids))
        if not ids:
            return list
        session.flush()  # the statement below must see this session's pending changes
        return _INDEX.rows_by_ids_later(session.connection(), ids)

    def _add(self, rows: list) -> None:
        for mailbox_id, store_id, name, fid in rows:
            self._stores[mailbox_id] = store_id
            if name is not None:
                self._folders[(store_id, name)] = fid

    def store_id(self, mailbox: Mailbox, now: dt.datetime) -> int:
        sid = self._stores.get(mailbox.id)
        if sid is None:
            sid = self._stores[mailbox.id] = ensure_store(self._session, mailbox, now).id
        return sid

    def known(self, mailbox_id: int) -> int | None:
        """The mailbox's store id if it is known already (none is created)."""
        return self._stores.get(mailbox_id)

    def folder_id(self, store_id: int, name: str) -> int:
        fid = self._folders.get((store_id, name))
        if fid is None:
            fid = self._folders[(store_id, name)] = folder_id(self._session, store_id, name)
        return fid

    def forget(self, mailbox_id: int) -> None:
        sid = self._stores.pop(mailbox_id, None)
        if sid is not None:
            for key in [k for k in self._folders if k[0] == sid]:
                del self._folders[key]
