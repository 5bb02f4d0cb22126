"""kopano-cli with ``user_plugin = ldap`` against a real slapd, on SQLite and PostgreSQL:
listings and details read from LDAP (hidden users only with --show-hidden), features from
kopanoEnabledFeatures / kopanoDisabledFeatures, what LDAP defines refused (exit 1, "LDAP is
the source"), resource settings and store operations as with the db plugin, and --sync
creating, updating and orphaning with its summary and the event scripts."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from mr_engine.store import event_scripts
from mr_engine.testing import ldap_trees
from mr_engine.testing.slapd import Slapd

from .test_kopano_cli import InProcess


class Cli(InProcess):
    """kopano-cli in this process, reading ``server`` (answers never cached, so that each
    call sees the tree as the test left it)."""

    def __init__(self, capsys: Any, monkeypatch: Any, db_url: str, server: Slapd) -> None:
        super().__init__(capsys, db_url)
        for key, value in server.settings(ldap_cache_timeout=0).items():
            value = " ".join(value) if isinstance(value, tuple) else str(value)
            monkeypatch.setenv(f"MR_ENGINE_{key.upper()}", value)


@pytest.fixture
def cli(capsys, monkeypatch, db_url, slapd) -> Cli:
    return Cli(capsys, monkeypatch, db_url, slapd)


def test_listings_and_details_read_ldap(cli):
    names = [u["name"] for u in cli.json("--list-users")]
    assert names == ["alice", "beamer", "bob", "dave", "room1", "shared"]  # carol hidden
    shown = [u["name"] for u in cli.json("--list-users", "--show-hidden")]
    assert shown == ["alice", "beamer", "bob", "carol", "dave", "room1", "shared"]
    assert "carol" not in cli("--list-users") and "carol" in cli("--list-users",
                                                                 "--show-hidden")
    carol = cli.json("--user", "carol")
    assert (carol["fullname"], carol["address_book"]) == ("Carol Cook", "hidden")
    groups = {g["name"]: g for g in cli.json("--list-groups")}
    assert groups["staff"]["members"] == ["alice", "bob"]
    assert cli.json("--group", "all")["member_groups"] == ["staff"]
    room = cli.json("--user", "room1")
    assert (room["resource_type"], room["resource_capacity"]) == ("room", 8)


def test_features_from_ldap_attributes(cli, monkeypatch):
    monkeypatch.setenv("MR_ENGINE_DISABLED_FEATURES", "imap pop3 mobile")
    alice, bob = cli.json("--user", "alice"), cli.json("--user", "bob")
    assert alice["features"] == {"imap": True, "pop3": False, "mobile": False,
                                 "outlook": True, "webapp": True}
    monkeypatch.setenv("MR_ENGINE_DISABLED_FEATURES", "")
    assert cli.json("--user", "bob")["features"]["mobile"] is False  # kopanoDisabledFeatures
    assert bob["features"]["imap"] is False
    assert "\nFeatures:                      imap; mobile; outlook; pop3; webapp\n" in \
        cli("--user", "alice")


REFUSED = [
    ["--create", "--user", "zoe", "--email", "zoe@example.com"],
    ["--create", "--user", "zoe"],  # refused as LDAP's, not for the missing --email
    ["--delete", "--user", "bob"],
    ["--user", "bob", "--name", "robert"],
    ["--user", "bob", "--password", "secret"],
    ["--user", "bob", "--fullname", "Robert"],
    ["--user", "bob", "--add-feature", "imap"],
    ["--user", "bob", "--add-sendas", "alice"],
    ["--create", "--group", "new"],
    ["--group", "staff", "--add-user", "dave"],
    ["--group", "staff", "--remove-user", "bob"],
]


@pytest.mark.parametrize("args", REFUSED, ids=lambda a: " ".join(a[:3]))
def test_what_ldap_defines_is_refused(cli, args):
    code, out, err = cli.call(*args)
    assert (code, out) == (1, "")
    assert "LDAP is the source" in err and len(err.splitlines()) == 1


def test_resource_settings_and_stores_work_as_with_the_db_plugin(cli):
    assert cli("--user", "room1", "--mr-accept", "yes", "--mr-booking-window", "30") == ""
    room = cli.json("--user", "room1")
    assert (room["mr_accept"], room["mr_booking_window"], room["resource_capacity"]) == \
        (True, 30, 8)
    store = cli("--create-store", "--user", "dave", "--verbose").split(": ")[1].strip()
    assert cli("--unhook-store", "--user", "dave") == ""
    assert store in [s["guid"] for s in cli.json("--list-orphans")["stores"]]
    assert cli("--hook-store", store, "--user", "dave") == ""
    assert cli.json("--user", "dave")["store"] == store


def _recorder(tmp_path: Path) -> tuple[str, Path]:
    out = tmp_path / "events.txt"
    path = tmp_path / "record"
    path.write_text(f'#!/bin/sh\necho "$1 $KOPANO_USER$KOPANO_GROUP" >> {out}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path), out


def _scripts_done() -> None:
    event_scripts.submit(event_scripts.Run("wait", ("true",), "X", "", 5)).result(10)


def test_sync_creates_updates_and_orphans(capsys, monkeypatch, db_url, fresh_slapd,
                                          tmp_path):
    cli = Cli(capsys, monkeypatch, db_url, fresh_slapd)
    script, events = _recorder(tmp_path)
    for event in ("createuser", "deleteuser", "creategroup", "deletegroup"):
        monkeypatch.setenv(f"MR_ENGINE_{event.upper()}_SCRIPT", f"{script} {event}")
    assert cli("--user", "bob", "--json")  # bob's row exists before the first pass
    assert cli("--sync").splitlines() == [
        "Users created: 6 (alice, beamer, carol, dave, room1, shared)",
        "Users updated: 0", "Users orphaned: 0",
        "Groups created: 3 (all, news, staff)", "Groups deleted: 0"]
    _scripts_done()
    assert events.read_text().splitlines() == [
        "createuser bob", *(f"createuser {n}" for n in
                            ("alice", "beamer", "carol", "dave", "room1", "shared")),
        *(f"creategroup {n}" for n in ("all", "news", "staff"))]
    assert all(u["store"] for u in (cli.json("--user", n) for n in ("alice", "room1")))
    # A second pass finds nothing to do.
    assert cli("--sync").splitlines()[:3] == ["Users created: 0", "Users updated: 0",
                                              "Users orphaned: 0"]
    alice_store = cli.json("--user", "alice")["store"]
    fresh_slapd.modify(ldap_trees.user_dn("dave"), cn=["David Dunn"])
    fresh_slapd.delete(ldap_trees.user_dn("alice"))
    fresh_slapd.delete(ldap_trees.group_dn("news"))
    fresh_slapd.add(ldap_trees.user_dn("zoe"), ldap_trees.posix_user("zoe", 1010,
                                                                     "Zoe Zed")[1])
    assert cli.json("--sync") == {
        "synchronised": True, "created": ["zoe"], "updated": ["dave"], "orphaned": ["alice"],
        "groups_created": [], "groups_deleted": ["news"]}
    _scripts_done()
    assert events.read_text().splitlines()[-3:] == ["createuser zoe", "deleteuser alice",
                                                    "deletegroup news"]
    orphans = cli.json("--list-orphans")["stores"]
    assert [(o["guid"], o["owner"]) for o in orphans] == [(alice_store, "alice")]
    assert cli.json("--user", "dave")["fullname"] == "David Dunn"
