"""``user_plugin = ldap``: users, resources and groups from OpenLDAP or Active Directory
(Kopano's ldap user plugin), with the engine's own ``Mailbox`` rows mirrored just in time.

Every question goes to LDAP through ``LdapState``, one per process and configuration: the
servers (``ldap_connection``: failover, timeouts, paged searches), the answers cache
(``ldap_cache``: ``ldap_cache_timeout``, 60 s for "nothing there") and what was last
mirrored. An entry read as a ``Person`` (``core.ldap_entries``) has its row created or
brought up to date (``ldap_mirror``) only when it differs from what was last mirrored, so a
known recipient costs one indexed SELECT and no LDAP round trip until its answer expires;
``mailboxes(ids)`` (the committer's batch) never asks LDAP.

Rows are written in the caller's session when it is a write transaction (kopano-cli, the
committer), else (``Database.read()``: the LMTP RCPT lookup) in a short write transaction of
their own, committed before the answer, so the RCPT's 250 names a row that exists.

Groups are read live: members by DN or by text (``ldap_groupmembers_attribute_type``),
nested groups followed, cycles ended. Distribution groups deliver to their members but are
no security groups: ``memberships`` (who-may-book's ``group:NAME``) leaves them out.
Send-as lists name users and groups, by DN or text. A server that cannot be reached is
``DirectoryUnavailable`` (LMTP: ``451 4.4.3``; commands: exit 1).

Beyond the protocol, for kopano-cli: ``people()`` and ``group_entries()`` (the entries as
read, ``core.ldap_entries``), ``refresh()`` (forget the answers kept, for a full pass), and
``Mailbox.hidden`` on the rows (kopanoHidden, for the listings).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Hashable
from contextlib import nullcontext
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mr_engine import clock as wall
from mr_engine.config import Settings
from mr_engine.core import ldap_entries as entries
from mr_engine.core.addresses import strip_detail
from mr_engine.core.ldap_entries import Entry, LdapGroup, LdapSchema, Person
from mr_engine.store import event_scripts
from mr_engine.store.db import WriterLock, sqlite_file
from mr_engine.store.directories import EVERYONE, GroupInfo, NotFound
from mr_engine.store.directories.db import SqlDirectory
from mr_engine.store.directories.ldap_cache import AnswerCache
from mr_engine.store.directories.ldap_connection import LdapServers, RawEntry
from mr_engine.store.directories.ldap_mirror import mirror
from mr_engine.store.models import Mailbox


def schema_of(settings: Settings) -> LdapSchema:
    """The attribute names and kinds of the ldap_* settings."""
    s = settings
    return LdapSchema(
        object_type=s.ldap_object_type_attribute, user_type=s.ldap_user_type_attribute_value,
        group_type=s.ldap_group_type_attribute_value, user_filter=s.ldap_user_search_filter,
        group_filter=s.ldap_group_search_filter, user_unique=s.ldap_user_unique_attribute,
        user_unique_binary=s.ldap_user_unique_attribute_type == "binary",
        group_unique=s.ldap_group_unique_attribute,
        group_unique_binary=s.ldap_group_unique_attribute_type == "binary",
        login=s.ldap_loginname_attribute, fullname=s.ldap_fullname_attribute,
        email=s.ldap_emailaddress_attribute, aliases=s.ldap_emailaliases_attribute,
        admin=s.ldap_isadmin_attribute, nonactive=s.ldap_nonactive_attribute,
        resource_type=s.ldap_resource_type_attribute,
        resource_capacity=s.ldap_resource_capacity_attribute,
        group_name=s.ldap_groupname_attribute, members=s.ldap_groupmembers_attribute,
        members_are_dns=s.ldap_groupmembers_attribute_type == "dn",
        members_relation=s.ldap_groupmembers_relation_attribute,
        security=s.ldap_group_security_attribute,
        security_is_ads=s.ldap_group_security_attribute_type == "ads",
        sendas=s.ldap_sendas_attribute, sendas_are_dns=s.ldap_sendas_attribute_type == "dn",
        sendas_relation=s.ldap_sendas_relation_attribute,
        hidden=s.ldap_addressbook_hide_attribute, quota_override=s.ldap_quotaoverride_attribute,
        quota_warn=s.ldap_warnquota_attribute, quota_soft=s.ldap_softquota_attribute,
        quota_hard=s.ldap_hardquota_attribute, quota_multiplier=s.ldap_quota_multiplier,
        enabled_features=s.ldap_enabled_features_attribute,
        disabled_features=s.ldap_disabled_features_attribute)


class LdapState:
    """What a process keeps for one LDAP configuration: servers, answers, mirrored rows."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = wall.monotonic) -> None:
        self.schema = schema_of(settings)
        self.attributes = sorted(set(self.schema.user_attributes())
                                 | set(self.schema.group_attributes()))
        self.servers = LdapServers(settings)
        self.answers = AnswerCache(settings.ldap_cache_timeout, clock)
        # external_id -> (the Person last written to its row, the row's id)
        self.mirrored: dict[str, tuple[Person, int]] = {}
        self._writers: dict[str, WriterLock] = {}
        self._lock = threading.Lock()

    def writer_lock(self, url: str) -> Any:
        """SQLite's writers take turns (``store.db.WriterLock``); PostgreSQL's need not."""
        path = sqlite_file(url) if url.startswith("sqlite") else None
        if path is None:
            return nullcontext()
        with self._lock:
            return self._writers.setdefault(path, WriterLock(path))

    # --- questions, cached ----------------------------------------------------------------

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        return self.answers.get(key, compute)

    def find(self, key: Hashable, query: str, limit: int = 0) -> tuple[Entry, ...]:
        """Users and groups matching ``query``, remembered under ``key``."""
        return self.cached(key, lambda: self._entries(self.servers.search(
            query, self.attributes, limit=limit)))

    def at(self, dn: str) -> Entry | None:
        """The user or group at ``dn`` (a DN member or send-as value)."""
        either = f"(|{entries.users_filter(self.schema)}{entries.groups_filter(self.schema)})"
        def read() -> Entry | None:
            raw = self.servers.read(dn, either, self.attributes)
            found = self._entries([raw]) if raw else ()
            return found[0] if found else None
        return self.cached(("dn", dn.lower()), read)

    def _entries(self, raws: list[RawEntry]) -> tuple[Entry, ...]:
        read = (entries.read_entry(self.schema, dn, attributes) for dn, attributes in raws)
        return tuple(entry for entry in read if entry is not None)


_STATES: dict[tuple[Any, ...], LdapState] = {}
_STATES_LOCK = threading.Lock()


def state_for(settings: Settings) -> LdapState:
    """This process's state of the configuration ``settings`` has (made on first use; a
    forked worker makes its own: connections are not shared across processes)."""
    # The store too: what was mirrored is one store's rows (a command may open another).
    key = (os.getpid(), settings.database_url,
           *(getattr(settings, name) for name in sorted(vars(settings))
             if name.startswith("ldap_")))
    with _STATES_LOCK:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = LdapState(settings)
        return state


class LdapDirectory:
    """The ``Directory`` of an LDAP server, with its rows in one session."""

    def __init__(self, session: Session, state: LdapState,
                 settings: Settings | None = None) -> None:
        self.session = session
        self.settings = settings or Settings()  # its event scripts (none by default)
        self.state = state
        self.schema = state.schema

    # --- the Directory protocol -------------------------------------------------------

    def resolve(self, address: str) -> list[Mailbox]:
        lowered = address.strip().lower()
        for candidate in dict.fromkeys((lowered, strip_detail(lowered))):
            entry = self._at_address(candidate)
            if isinstance(entry, Person):
                return self._rows([entry])
            if isinstance(entry, LdapGroup):
                return self._rows(sorted(self._people_in(entry), key=lambda p: p.name))
        return []

    def mailboxes(self, ids: Collection[int]) -> dict[int, Mailbox]:
        return SqlDirectory(self.session).mailboxes(ids)  # the rows: no LDAP

    def mailboxes_later(self, ids: Collection[int]) -> Callable[[], dict[int, Mailbox]]:
        return SqlDirectory(self.session).mailboxes_later(ids)

    def user(self, name: str) -> Mailbox:
        found = self._people(("user", name), entries.user_by(self.schema, self.schema.login,
                                                             [name]))
        if not found:
            raise NotFound(f"user {name!r} does not exist")
        return self._rows(found[:1])[0]

    def users(self) -> list[Mailbox]:
        return self._rows(self.people())

    def group(self, name: str) -> GroupInfo:
        if name == EVERYONE:  # not an entry: every user
            return GroupInfo(EVERYONE, None, [m.name for m in self.users()])
        found = self._groups(("group", name), entries.group_by(
            self.schema, self.schema.group_name, [name]))
        if not found:
            raise NotFound(f"group {name!r} does not exist")
        return self._info(found[0])

    def groups(self) -> list[GroupInfo]:
        return [self.group(EVERYONE), *(self._info(g) for g in self.group_entries())]

    def groups_of(self, address: str) -> list[str]:
        person = self._person_at(address)
        if person is None:
            return []
        return [EVERYONE, *sorted(g.name for g in self._containing(person))]

    def memberships(self, address: str) -> list[str]:
        person = self._person_at(address)
        if person is None:
            return []
        return [EVERYONE, *sorted(g.name for g in self._all_containing(person) if g.security)]

    def sendas_of(self, address: str) -> list[str]:
        person = self._person_at(address)
        if person is None:
            return []
        named = self._named(person.sendas, self.schema.sendas_are_dns,
                            self.schema.sendas_relation)
        people = self._expand(named)
        return sorted({p.name for p in people})

    def user_at(self, address: str) -> Mailbox | None:
        person = self._person_at(address)
        return self._rows([person])[0] if person else None

    def has_domain(self, domain: str) -> bool:
        return bool(self.state.find(("domain", domain.lower()),
                                    entries.domain_filter(self.schema, domain.lower()),
                                    limit=1))

    # --- for kopano-cli: listings and --sync -------------------------------------------

    def refresh(self) -> None:
        """Forget every answer kept: the next questions read LDAP (a full --sync pass)."""
        self.state.answers.clear()

    def people(self) -> list[Person]:
        """Every user and resource entry (paged searches), by name; no rows written."""
        found = self._people(("users",), entries.users_filter(self.schema))
        return sorted(found, key=lambda p: p.name)

    def group_entries(self) -> list[LdapGroup]:
        """Every group entry, security and distribution, by name (``ldap_mirror.mirror_group``
        keeps their rows)."""
        found = self._groups(("groups",), entries.groups_filter(self.schema))
        return sorted(found, key=lambda g: g.name)

    # --- reading LDAP -------------------------------------------------------------------

    def _at_address(self, address: str) -> Entry | None:
        found = self.state.find(("address", address),
                                entries.address_filter(self.schema, address))
        people = [e for e in found if isinstance(e, Person)]
        return (people or list(found) or [None])[0]

    def _person_at(self, address: str) -> Person | None:
        entry = self._at_address(address.strip().lower())
        return entry if isinstance(entry, Person) else None

    def _people(self, key: Hashable, query: str) -> list[Person]:
        return [e for e in self.state.find(key, query) if isinstance(e, Person)]

    def _groups(self, key: Hashable, query: str) -> list[LdapGroup]:
        return [e for e in self.state.find(key, query) if isinstance(e, LdapGroup)]

    def _named(self, values: Collection[str], by_dn: bool, relation: str) -> list[Entry]:
        """The users and groups a member or send-as list names (DNs or text values)."""
        if not values:
            return []
        if by_dn:
            return [e for e in (self.state.at(dn) for dn in values) if e is not None]
        key = ("related", relation, tuple(sorted(values)))
        return list(self.state.find(key, entries.related_filter(self.schema, relation,
                                                                sorted(values))))

    def _members(self, group: LdapGroup) -> list[Entry]:
        return self._named(group.members, self.schema.members_are_dns,
                           self.schema.members_relation)

    def _expand(self, named: list[Entry]) -> list[Person]:
        """The people of ``named``: its users and those of its groups, nested ones too."""
        people: dict[str, Person] = {}
        seen: set[str] = set()
        queue = list(named)
        while queue:
            entry = queue.pop()
            if entry.dn.lower() in seen:
                continue  # a cycle, or a member twice
            seen.add(entry.dn.lower())
            if isinstance(entry, Person):
                people.setdefault(entry.external_id, entry)
            else:
                queue.extend(self._members(entry))
        return list(people.values())

    def _people_in(self, group: LdapGroup) -> list[Person]:
        return self._expand([group])

    def _containing(self, entry: Entry) -> list[LdapGroup]:
        return self._groups(("member of", entry.dn.lower()),
                            entries.member_of_filter(self.schema, entry))

    def _all_containing(self, entry: Entry) -> list[LdapGroup]:
        """The groups ``entry`` is in, directly or through groups in groups."""
        found: dict[str, LdapGroup] = {}
        queue = self._containing(entry)
        while queue:
            group = queue.pop()
            if group.dn.lower() not in found:
                found[group.dn.lower()] = group
                queue.extend(self._containing(group))
        return list(found.values())

    def _info(self, group: LdapGroup) -> GroupInfo:
        members = self._members(group)
        return GroupInfo(name=group.name, email=group.email,
                         members=sorted(m.name for m in members if isinstance(m, Person)),
                         groups=sorted(m.name for m in members if isinstance(m, LdapGroup)))

    # --- the rows -------------------------------------------------------------------------

    def _rows(self, people: list[Person]) -> list[Mailbox]:
        """The rows of ``people``, in order: loaded by id when they mirror the entry as it
        is (one SELECT, no write), else written first."""
        fresh = {}  # external_id -> id of a row that mirrors the entry as it is now
        for person in people:
            kept = self.state.mirrored.get(person.external_id)
            if kept is not None and kept[0] == person:
                fresh[person.external_id] = kept[1]
        loaded = self.mailboxes(fresh.values()) if fresh else {}
        rows = {key: loaded[id_] for key, id_ in fresh.items() if id_ in loaded}
        stale = [person for person in people if person.external_id not in rows]
        if stale:
            rows.update(self._write(stale))
        return [rows[person.external_id] for person in people]

    def _write(self, people: list[Person]) -> dict[str, Mailbox]:
        if not _is_reader(self.session):
            # The caller's transaction: it may still roll back, so nothing is remembered.
            rows = mirror(self.session, people, wall.utcnow(), self._created)
        else:
            committed = self._write_apart(people)
            for person, row in zip(people, committed):
                self.state.mirrored[person.external_id] = (person, row.id)
            rows = [self.session.merge(row, load=False) for row in committed]
        return {person.external_id: row for person, row in zip(people, rows)}

    def _write_apart(self, people: list[Person]) -> list[Mailbox]:
        """In a write transaction of their own, committed before the answer."""
        bind = self.session.get_bind().execution_options(sqlite_begin="IMMEDIATE")
        try:
            return self._commit_mirror(bind, people)
        except IntegrityError:  # another process mirrored them at the same moment
            return self._commit_mirror(bind, people)

    def _commit_mirror(self, bind: Any, people: list[Person]) -> list[Mailbox]:
        url = bind.url.render_as_string(hide_password=False)
        with self.state.writer_lock(url), Session(bind, expire_on_commit=False) as own:
            with own.begin():
                return mirror(own, people, wall.utcnow(), self._created)

    def _created(self, session: Session, name: str) -> None:
        # Kopano's createuser script, run once the row's transaction has committed.
        event_scripts.queue_event(session, self.settings, "createuser", name)


def _is_reader(session: Session) -> bool:
    """A ``Database.read()`` session: its binding begins SQLite's transactions DEFERRED
    (``store.db``), on every backend."""
    return session.get_bind().get_execution_options().get("sqlite_begin") == "DEFERRED"


def open_source(settings: Settings, session: Session) -> LdapDirectory:
    return LdapDirectory(session, state_for(settings), settings)
