"""Groups in groups and resource delegates in the db directory: membership through nesting
(cycles end), mail to a group's address reaching nested members, local domains, and
delegates that follow renames and go with deleted users."""

from __future__ import annotations

from mr_engine.config import Settings
from mr_engine.store import directory
from mr_engine.store.directories import open_directory
from mr_engine.testing.accounts import add_users


def _nest(db) -> None:
    """alice in staff; staff in all-staff; all-staff in staff (a cycle); bob in board."""
    add_users(db, "alice", "bob")
    with db.write() as session:
        staff, outer, board = (directory.create_group(session, name)
                               for name in ("staff", "all-staff", "board"))
        directory.set_group_email(session, outer, "all@example.com")
        directory.add_member(session, staff, directory.get_user(session, "alice"))
        directory.add_member(session, board, directory.get_user(session, "bob"))
        directory.add_group_member(session, outer, staff)
        directory.add_group_member(session, staff, outer)


def test_memberships_follow_nesting_and_cycles_end(db) -> None:
    _nest(db)
    with db.read() as session:
        source = open_directory(Settings(), session)
        assert source.memberships("ALICE@example.com") == ["Everyone", "all-staff", "staff"]
        assert source.memberships("bob@example.com") == ["Everyone", "board"]
        assert source.groups_of("alice@example.com") == ["Everyone", "staff"]  # direct ones
        assert source.memberships("nobody@example.com") == []
        assert [m.name for m in source.resolve("all@example.com")] == ["alice"]
        assert source.group("all-staff").groups == ["staff"]


def test_a_deleted_group_leaves_no_nesting_behind(db) -> None:
    _nest(db)
    with db.write() as session:
        directory.delete_group(session, directory.get_group(session, "staff"))
    with db.read() as session:
        source = open_directory(Settings(), session)
        assert source.memberships("alice@example.com") == ["Everyone"]
        assert source.group("all-staff").groups == []


def test_local_domains_are_the_directory_s_own(db) -> None:
    _nest(db)
    with db.read() as session:
        source = open_directory(Settings(), session)
        assert source.has_domain("EXAMPLE.com")
        assert not source.has_domain("xample.com")
        assert not source.has_domain("ex_mple.com")  # LIKE's wildcards are escaped
        assert not source.has_domain("%")


def test_delegates_follow_a_rename_and_go_with_a_deleted_user(db) -> None:
    add_users(db, "room", "alice", "bob")
    with db.write() as session:
        room = directory.get_user(session, "room")
        for name in ("bob", "alice"):
            directory.add_delegate(session, room, directory.get_user(session, name))
        directory.add_delegate(session, room, directory.get_user(session, "bob"))  # once
        directory.update_user(session, directory.get_user(session, "alice"), name="alicia")
    with db.write() as session:
        room = directory.get_user(session, "room")
        assert [d.name for d in directory.delegates_of(session, room)] == ["alicia", "bob"]
        directory.delete_user(session, directory.get_user(session, "bob"))
    with db.read() as session:
        room = directory.get_user(session, "room")
        assert [d.email for d in directory.delegates_of(session, room)] == ["alice@example.com"]
