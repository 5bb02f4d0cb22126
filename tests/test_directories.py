"""The directory interface (``store.directories``): the ``db`` source answers it on both
databases, ``user_plugin`` chooses the source, and a source plugged into the registry is the
one a running server resolves recipients with."""

from __future__ import annotations

from collections.abc import Collection

import pytest
from sqlalchemy.orm import Session

from mr_engine.config import USER_PLUGINS, ConfigError, Settings, load_settings
from mr_engine.store.db import Database
from mr_engine.store.directories import (EVERYONE, Directory, GroupInfo, NotFound,
                                         open_directory)
from mr_engine.store.directories.db import SqlDirectory
from mr_engine.store.directory import add_member, add_sendas, create_group, get_user
from mr_engine.store.models import Mailbox

from mr_engine.testing import commands
from mr_engine.testing.accounts import add_resource, add_users
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import RunningServer, make_settings
from mr_engine.testing.store_views import messages_of

SETTINGS = Settings()


def _names(value):
    """Mailboxes (one or a list) as their names, for comparing with the table."""
    if isinstance(value, Mailbox):
        return value.name
    if isinstance(value, list) and value and isinstance(value[0], Mailbox):
        return [m.name for m in value]
    return value


@pytest.fixture
def people(db: Database) -> Database:
    """alice and bob in the group team@example.com, bob may send as alice; a room; carol."""
    add_users(db, "alice", "bob", "carol")
    add_resource(db, "room", "room@example.com")
    with db.write() as session:
        team = create_group(session, "team", "team@example.com")
        alice, bob = get_user(session, "alice"), get_user(session, "bob")
        add_member(session, team, alice)
        add_member(session, team, bob)
        add_sendas(session, alice, bob)
    return db


# (call, arguments, answer): the answer with mailboxes as their names.
CALLS = [
    ("resolve", ("alice@example.com",), ["alice"]),
    ("resolve", (" ALICE+lists@Example.COM ",), ["alice"]),
    ("resolve", ("room@example.com",), ["room"]),
    ("resolve", ("team@example.com",), ["alice", "bob"]),
    ("resolve", ("nobody@example.com",), []),
    ("user", ("room",), "room"),
    ("users", (), ["alice", "bob", "carol", "room"]),
    ("group", ("team",), GroupInfo("team", "team@example.com", ["alice", "bob"])),
    ("group", (EVERYONE,), GroupInfo(EVERYONE, None, ["alice", "bob", "carol", "room"])),
    ("groups", (), [GroupInfo(EVERYONE, None, ["alice", "bob", "carol", "room"]),
                    GroupInfo("team", "team@example.com", ["alice", "bob"])]),
    ("groups_of", ("Alice@example.com",), [EVERYONE, "team"]),
    ("groups_of", ("carol@example.com",), [EVERYONE]),
    ("groups_of", ("nobody@example.com",), []),
    ("sendas_of", ("alice@example.com",), ["bob"]),
    ("sendas_of", ("bob@example.com",), []),
]


@pytest.mark.parametrize("call, args, answer", CALLS, ids=[f"{c}{a}" for c, a, _ in CALLS])
def test_the_db_source_answers_the_interface(people, call, args, answer):
    with people.read() as session:
        source = open_directory(SETTINGS, session)
        assert isinstance(source, SqlDirectory) and isinstance(source, Directory)
        value = getattr(source, call)(*args)
        assert _names(value) == answer


@pytest.mark.parametrize("call, name", [("user", "nobody"), ("group", "nobody")])
def test_an_unknown_name_is_not_found(people, call, name):
    with people.read() as session, pytest.raises(NotFound, match="nobody"):
        getattr(open_directory(SETTINGS, session), call)(name)


def test_mailboxes_by_id_are_the_resolved_rows_that_still_exist(people):
    with people.read() as session:
        source = open_directory(SETTINGS, session)
        [alice] = source.resolve("alice@example.com")
        found = source.mailboxes([alice.id, alice.id + 1000])
        assert found == {alice.id: alice} and found[alice.id] is alice


def test_user_plugin_is_db_by_default_and_a_bad_one_names_the_key():
    assert load_settings({}, environ={}).user_plugin == "db" == Settings().user_plugin
    assert load_settings({}, environ={"MR_ENGINE_USER_PLUGIN": " DB "}).user_plugin == "db"
    with pytest.raises(ConfigError, match=r"user_plugin .*expected one of db, ldap, got 'nis'"):
        load_settings({}, environ={"MR_ENGINE_USER_PLUGIN": "nis"})


def test_a_bad_user_plugin_stops_a_command_with_exit_2(tmp_path):
    done = commands.run([str(BIN / "mr-engine"), "config"], capture_output=True, text=True,
                        env={"MR_ENGINE_USER_PLUGIN": "nis",
                             "MR_ENGINE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db"})
    assert done.returncode == 2 and "user_plugin" in done.stderr


# --- a second source, plugged in through the registry ------------------------------------

# Addresses only this source knows, for mailboxes the store has.
ALIASES = {"desk@memory.test": ["alice"], "both@memory.test": ["alice", "bob"]}


class MemoryDirectory:
    """A directory source of a few addresses held in memory."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def resolve(self, address: str) -> list[Mailbox]:
        return [self.user(name) for name in ALIASES.get(address.strip().lower(), [])]

    def mailboxes(self, ids: Collection[int]) -> dict[int, Mailbox]:
        rows = (self.session.get(Mailbox, i) for i in ids)
        return {m.id: m for m in rows if m is not None}

    def user(self, name: str) -> Mailbox:
        return get_user(self.session, name)

    def users(self) -> list[Mailbox]:
        return [self.user(name) for name in sorted({n for v in ALIASES.values() for n in v})]

    def group(self, name: str) -> GroupInfo:
        raise NotFound(f"group {name!r} does not exist")

    def groups(self) -> list[GroupInfo]:
        return []

    def groups_of(self, address: str) -> list[str]:
        return []

    def sendas_of(self, address: str) -> list[str]:
        return []


def open_source(settings: Settings, session: Session) -> MemoryDirectory:
    return MemoryDirectory(session)


def test_a_plugged_in_source_resolves_the_recipients_of_a_running_server(db, db_url,
                                                                       monkeypatch):
    monkeypatch.setitem(USER_PLUGINS, "memory", __name__)
    add_users(db, "alice", "bob")
    with RunningServer(make_settings(db_url, user_plugin="memory")) as server:
        client = RawClient(server.port)
        client.reply()
        rcpt, data = send_message(client, "s@remote.example",
                                  ["desk@memory.test", "both@memory.test", "bob@example.com"],
                                  msg())
    # bob@example.com is in the store's tables, but not in the source the server uses.
    assert rcpt[:2] == ["250 2.1.5 Ok"] * 2 and rcpt[2].startswith("550 5.1.1")
    assert [d[:9] for d in data] == ["250 2.0.0"] * 2
    assert len(messages_of(db, "alice")) == 1 and len(messages_of(db, "bob")) == 1
