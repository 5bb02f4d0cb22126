"""``kopano-cli`` as an administrator runs it: the installed console script, on SQLite and
PostgreSQL, checking its output, its exit codes and that a failed invocation writes nothing.

The behaviour under test goes through the console script; state is set up, and long error
tables are run, through the same ``main`` in-process (see ``InProcess``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from typing import Any

import pytest
from sqlalchemy import select

from mr_engine.cli.kopano_cli import main
from mr_engine.store.db import open_database
from mr_engine.store.models import Mailbox, OutOfOffice
from mr_engine.core.passwords import verify_password
from mr_engine.testing import commands
from mr_engine.testing.paths import BIN

KOPANO_CLI = str(BIN / "kopano-cli")
MB = 1024 * 1024


def cli(db_url: str, *args: str, stdin: str = "",
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed console script, configured through MR_ENGINE_DATABASE_URL."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    return commands.run([KOPANO_CLI, *args], input=stdin, capture_output=True, text=True,
                        timeout=60, env={**clean, "MR_ENGINE_DATABASE_URL": db_url,
                                         **(env or {})})


NEW_STORE = re.compile(r"mr-engine: creating a new, empty store at .*\n")


def ok(db_url: str, *args: str, **kw: Any) -> str:
    result = cli(db_url, *args, **kw)
    # The first command on a SQLite file says it creates the store (issue 17); else quiet.
    assert (result.returncode, NEW_STORE.sub("", result.stderr)) == (0, ""), args
    return result.stdout


def as_json(db_url: str, *args: str, **kw: Any) -> Any:
    return json.loads(ok(db_url, *args, "--json", **kw))


def fails(db_url: str, code: int, *args: str) -> str:
    result = cli(db_url, *args)
    assert (result.returncode, result.stdout) == (code, ""), (args, result.stderr)
    return result.stderr


class InProcess:
    """The same ``main`` called in this process, with --database-url.

    Used to set up state and for long tables of error cases, where starting the console
    script (about half a second each) would make the file too slow to run often.
    """

    def __init__(self, capsys, db_url: str) -> None:
        self.capsys, self.db_url = capsys, db_url

    def call(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main(["--database-url", self.db_url, *args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        out, err = self.capsys.readouterr()
        return code, out, NEW_STORE.sub("", err)

    def __call__(self, *args: str) -> str:
        code, out, err = self.call(*args)
        assert (code, err) == (0, ""), (args, err)
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))

    def expect(self, code: int, *commands: list[str]) -> list[str]:
        """Each command fails with ``code``, prints nothing on stdout; their messages."""
        messages = []
        for command in commands:
            got, out, err = self.call(*command)
            assert (got, out) == (code, ""), (command, err)
            assert "Traceback" not in err and err.strip()
            messages.append(err)
        return messages


@pytest.fixture
def local(capsys, db_url) -> InProcess:
    return InProcess(capsys, db_url)


def labelled(text: str) -> dict[str, str]:
    """Kopano's ``Label:  value`` lines as a dict (indented ones by their label)."""
    lines = (re.match(r" *([^:]+): *(.*)$", line) for line in text.splitlines())
    return {m.group(1): m.group(2) for m in lines if m}



# The seats settings of a new user (pools and alternatives), as --user and --json show them.
SEATS_LABELS = {"Resource seats": "0 (unknown)", "Enforce seats": "no",
                "Propose a free time": "yes"}
# Table 8.1 with nothing set for the user: off where disabled_features (imap pop3 mobile) says.
DEFAULT_FEATURES = {"imap": False, "pop3": False, "mobile": False, "outlook": True,
                    "webapp": True}
SEATS_JSON = {"resource_seats": 0, "mr_enforce_seats": False, "mr_propose_time": True}

# The who-may-book settings of a new user, as --user shows them and as --json gives them.
WHO_MAY_BOOK_LABELS = {
    "Verify organizer": "match", "Book-in policy": "all", "Request-in policy": "none",
    "Allow external organizers": "yes", "Working hours": "none",
    "Min duration (minutes)": "0 (none)", "Response text": "none",
    "Approval timeout (hours)": "168", "Notify delegates": "no"}
WHO_MAY_BOOK_JSON = {
    "mr_verify_organizer": "match", "mr_book_in": ["all"], "mr_request_in": ["none"],
    "mr_allow_external": True, "mr_working_hours": "none", "mr_min_duration": 0,
    "mr_response_text": "", "mr_approval_timeout": 168, "mr_notify_delegates": False}


def _stored_password(local: InProcess, name: str) -> str:
    db = open_database(local.db_url)
    try:
        with db.read() as session:
            return session.scalar(select(Mailbox.password_hash).where(Mailbox.name == name))
    finally:
        db.dispose()


def test_create_user_shows_kopano_details_and_json(db_url, local):
    out = ok(db_url, "--create", "--user", "alice", "--password-prompt", "--email",
             "Alice@Example.com", "--fullname", "Alice Adams", "--active", "yes",
             "--admin-level", "1", "--create-store", "--verbose", stdin="s3cret\n")
    assert out.startswith("User created: alice\nStore created: ")
    guid = out.split("Store created: ")[1].strip()
    assert verify_password("s3cret", _stored_password(local, "alice"))
    defaults = {"MR_ENGINE_QUOTA_WARNING": "10m"}
    text = ok(db_url, "--user", "alice", env=defaults)
    assert labelled(text) == {
        "Name": "alice", "Full name": "Alice Adams", "Email address": "Alice@Example.com",
        "Active": "yes", "Administrator": "yes", "Address Book": "visible", "Features": "outlook; webapp",
        "Store": guid, "Store size": "0.00 MB", "Send-as": "", "Delegation": "",
        "Auto-accept meeting requests": "no", "Out-Of-Office": "disabled",
        "Current user store quota settings": "", "Quota overrides": "no",
        "Warning level": "10.00 MB", "Soft level": "unlimited", "Hard level": "unlimited",
        "Groups (1)": "", "Permissions": "",
        "Time zone": "UTC", "Decline conflicting": "no", "Decline recurring": "no",
        "Auto-process meeting requests": "no", "Resource type": "none",
        "Resource capacity": "1", "Booking window (days)": "180",
        "Max duration (minutes)": "0 (none)", "Max conflicting instances": "0",
        "Conflict percentage": "0%", "Calendar details": "busy", **SEATS_LABELS,
        **WHO_MAY_BOOK_LABELS,
        "Delegates": "", "Calendar feed": "none"}
    # Values start in one column (31), as in Kopano's output; the groups are a table.
    assert {line.index(value, len(label) + 1) for label, value in labelled(text).items()
            for line in text.splitlines() if value and line.lstrip().startswith(label + ":")} \
        == {31}
    assert "Groups (1):\n    Groupname\n    " in text and "\n    Everyone\n" in text
    assert as_json(db_url, "--user", "alice", env=defaults) == {
        "name": "alice", "fullname": "Alice Adams", "email": "Alice@Example.com",
        "active": True, "admin_level": 1, "address_book": "visible", "features": DEFAULT_FEATURES,
        "store": guid, "store_size": 0, "sendas": [],
        "timezone": "UTC", "mr_accept": False, "mr_decline_conflict": False,
        "mr_decline_recurring": False, "mr_process": False,
        "resource_type": "none", "resource_capacity": 1, "mr_booking_window": 180,
        "mr_max_duration": 0, "mr_max_conflict_instances": 0, "mr_conflict_percentage": 0,
        "mr_calendar_details": "busy", **SEATS_JSON, **WHO_MAY_BOOK_JSON, "mr_delegates": [],
        "out_of_office": {"enabled": False, "from": None, "until": None},
        "quota_overrides": False,
        "quota_warning": 10 * MB, "quota_soft": 0, "quota_hard": 0, "groups": ["Everyone"],
        "calendar_feed": None}
    # Resource settings may be given on creation too.
    local("--create", "--user", "room1", "--email", "room1@example.com", "--resource-type",
          "equipment", "--resource-capacity", "12", "--mr-accept", "yes", "--qh", "100")
    room = local.json("--user", "room1")
    assert (room["resource_type"], room["resource_capacity"], room["mr_accept"],
            room["quota_hard"], room["store"]) == ("equipment", 12, True, 100 * MB, None)


def test_update_user_fields_and_resource_settings_in_one_call(db_url, local):
    local("--create", "--user", "r1", "--email", "r1@example.com", "--password", "a")
    out = ok(db_url, "--user", "r1", "--name", "boardroom", "--email", "Board@Example.com",
             "--fullname", "Board room", "--password", "b", "--active", "no",
             "--admin-level", "0", "--mr-accept", "yes", "--mr-decline-conflict", "yes",
             "--mr-decline-recurring", "yes", "--resource-type", "equipment",
             "--resource-capacity", "20", "--mr-booking-window", "30", "--mr-max-duration",
             "240", "--mr-max-conflict-instances", "2", "--mr-conflict-percentage", "50",
             "--quota-warn", "1", "--qs", "2", "--quota-hard", "3", "--verbose")
    assert out == "User updated: boardroom\n"  # said with --verbose; without, nothing
    data = local.json("--user", "boardroom")
    assert {k: data[k] for k in data if k not in ("out_of_office", "groups", "sendas")} == {
        "name": "boardroom", "fullname": "Board room", "email": "Board@Example.com",
        "active": False, "admin_level": 0, "address_book": "visible", "features": DEFAULT_FEATURES,
        "store": None, "store_size": 0, "mr_accept": True, "mr_decline_conflict": True,
        "mr_decline_recurring": True, "mr_process": False, "quota_overrides": True,
        "resource_type": "equipment", "resource_capacity": 20, "mr_booking_window": 30,
        "mr_max_duration": 240, "mr_max_conflict_instances": 2, "mr_conflict_percentage": 50,
        "mr_calendar_details": "busy", **SEATS_JSON, **WHO_MAY_BOOK_JSON, "mr_delegates": [],
        "timezone": "UTC", "quota_warning": MB, "quota_soft": 2 * MB, "quota_hard": 3 * MB,
        "calendar_feed": "http://127.0.0.1:8080/calendars/boardroom.ics"}
    assert verify_password("b", _stored_password(local, "boardroom"))
    local.expect(1, ["--user", "r1"])
    # "no" and 0 are values, not absent flags; a quota of 0 overrides the default.
    local("--user", "boardroom", "--mr-accept", "no", "--qh", "0", "--qw", "0",
          "--mr-conflict-percentage", "0")
    details = labelled(ok(db_url, "--user", "boardroom", env={"MR_ENGINE_QUOTA_HARD": "9m"}))
    assert details["Auto-accept meeting requests"] == "no"
    assert details["Hard level"] == details["Warning level"] == "unlimited"
    assert details["Soft level"] == "2.00 MB"
    assert details["Conflict percentage"] == "0%"
    assert details["Max duration (minutes)"] == "240"
    assert details["Resource type"] == "equipment"


USAGE_ERRORS = [
    (["--user", "a", "--mr-accept", "maybe"], "--mr-accept: expected yes or no, got 'maybe'"),
    (["--user", "a", "--active", "perhaps"], "expected yes or no"),
    (["--user", "a", "--resource-capacity", "0"], "must be at least 1"),
    (["--user", "a", "--resource-capacity", "two"], "expected an integer"),
    (["--user", "a", "--mr-booking-window", "0"], "must be at least 1"),
    (["--user", "a", "--mr-max-duration", "-1"], "must be at least 0"),
    (["--user", "a", "--mr-max-conflict-instances", "-1"], "must be at least 0"),
    (["--user", "a", "--mr-conflict-percentage", "101"], "between 0 and 100"),
    (["--user", "a", "--resource-type", "vehicle"], "invalid choice"),
    (["--user", "a", "--admin-level", "3"], "between 0 and 2"),
    (["--user", "a", "--qh", "-5"], "must be at least 0"),
    (["--user", "a", "--unknown-flag"], "unrecognized arguments"),
    (["--user", "a", "--email", "no-at-sign"], "not an email address"),
    (["--create", "--email", "x@example.com"], "--create needs either --user"),
    (["--create", "--user", "a", "--group", "g"], "--create needs either --user"),
    (["--create", "--user", "a"], "--create --user needs --email"),
    (["--create", "--user", "a", "--email", "a@example.com", "--name", "b"],
     "--name cannot be used with --create --user"),
    (["--create", "--group", "g", "--mr-accept", "yes"], "--mr-accept cannot be used"),
    (["--delete"], "--delete needs either --user"),
    (["--delete", "--user", "a", "--fullname", "A"], "--fullname cannot be used"),
    (["--list-users", "--list-groups"], "--list-groups cannot be used with --list-users"),
    (["--list-users", "--user", "a"], "--user cannot be used with --list-users"),
    (["--user", "a", "--fullname", "A", "--json"],
     "--json cannot be used with --user NAME with changes"),
    (["--create-store", "--json"], "--json cannot be used with --create-store"),
    (["--user", "a", "--group", "g"], "--group cannot be used with --user"),
    (["--user", "a", "--password", "x", "--password-prompt"], "either --password or"),
    (["--remove-store", "ABC", "--user", "a"], "--user cannot be used with --remove-store"),
    (["--unhook-store", "--json"], "--json cannot be used with --unhook-store"),
    (["--user", "a", "--admin", "yes", "--admin-level", "0"],
     "--admin contradicts --admin-level"),
    (["--user", "a", "--mr-accept-conflicts", "yes", "--mr-decline-conflict", "yes"],
     "--mr-accept-conflicts contradicts --mr-decline-conflict"),
    (["--purge-softdelete", "-3"], "must be at least 0"),
    (["--user", "a", "--ooo", "maybe"], "expected yes or no"),
    (["--mr-accept", "yes"], "nothing to do"),
    ([], "nothing to do"),
]


def test_invalid_flag_values_and_combinations_are_usage_errors(tmp_path, capsys):
    db_url = f"sqlite:///{tmp_path}/never.db"
    messages = InProcess(capsys, db_url).expect(2, *(args for args, _ in USAGE_ERRORS))
    for (args, expected), message in zip(USAGE_ERRORS, messages):
        assert expected in message and "usage: kopano-cli" in message, (args, message)
    # Through the console script: the exit code and stderr are the same.
    assert "expected yes or no" in fails(db_url, 2, "--user", "a", "--mr-accept", "maybe")
    # --password-prompt reads one line from a non-terminal stdin; an empty one is refused.
    # An empty line is refused; the end of the input (Ctrl-D) is a one-line error, exit 1.
    empty = cli(db_url, "--create", "--user", "a", "--email", "a@example.com",
                "--password-prompt", stdin="\n")
    assert empty.returncode == 2 and "the password is empty" in empty.stderr
    assert fails(db_url, 1, "--create", "--user", "a", "--email", "a@example.com",
                 "--password-prompt") == "error: no password given: the input ended (Ctrl-D)\n"
    # A settings file that cannot be used is a usage error too.
    code, _, err = InProcess(capsys, db_url).call("--config", str(tmp_path / "no.toml"),
                                                  "--list-users")
    assert (code, "no.toml does not exist" in err) == (2, True)
    assert not (tmp_path / "never.db").exists()  # usage errors never reach the database


def test_unknown_names_and_duplicates_fail_with_exit_1(db_url, local):
    local("--create", "--user", "alice", "--email", "alice@example.com")
    local("--create", "--group", "sales", "--email", "sales@example.com")
    messages = local.expect(
        1,
        ["--user", "nobody"],
        ["--user", "nobody", "--fullname", "X"],
        ["--delete", "--user", "nobody"],
        ["--group", "nogroup"],
        ["--delete", "--group", "nogroup"],
        ["--add-user", "nobody", "--group", "sales"],
        ["--add-user", "alice", "--group", "nogroup"],
        ["--add-sendas", "nobody", "--user", "alice"],
        ["--remove-sendas", "alice", "--user", "alice"],
        ["--remove-user", "alice", "--group", "sales"],
        ["--hook-store", "0123456789ABCDEF0123456789ABCDEF", "--user", "alice"],
        ["--remove-store", "0123456789ABCDEF0123456789ABCDEF"],
        ["--unhook-store", "--user", "alice"],
        ["--create-store", "--user", "nobody"],
        ["--create", "--user", "alice", "--email", "other@example.com"],
        ["--create", "--user", "bob", "--email", "Sales@Example.com"],
        ["--create", "--group", "sales"],
        ["--create", "--group", "Everyone"],
        ["--create", "--group", "ops", "--email", "alice@EXAMPLE.com"],
        ["--user", "alice", "--name", "has space"],
        ["--delete", "--group", "Everyone"],
        ["--add-user", "alice", "--group", "Everyone"],
    )
    assert all(m.startswith("error: ") for m in messages)
    assert all("Everyone is built in" in m for m in messages[-2:])
    assert "user 'nobody' does not exist" in messages[0]
    assert "group 'nogroup' does not exist" in messages[3]
    assert "already exists" in messages[14]
    assert "already used by a group" in messages[15]
    # Through the console script; an email differing only in case is a duplicate.
    assert fails(db_url, 1, "--user", "nobody") == "error: user 'nobody' does not exist\n"
    assert "already in use" in fails(db_url, 1, "--create", "--user", "bob",
                                     "--email", "ALICE@example.COM")
    assert [u["name"] for u in local.json("--list-users")] == ["alice"]


def test_a_failing_invocation_writes_nothing(db_url, local):
    local("--create", "--user", "alice", "--email", "alice@example.com", "--fullname", "Alice")
    local("--create", "--user", "bob", "--email", "bob@example.com")
    local("--create", "--group", "sales")
    # The rename is valid, the email is taken (in another case).
    fails(db_url, 1, "--user", "alice", "--name", "alice2", "--fullname", "Changed",
          "--email", "BOB@example.com")
    # Here the changes are flushed before the unknown delegate / member is looked up.
    fails(db_url, 1, "--user", "alice", "--fullname", "Changed", "--mr-accept", "yes",
          "--add-sendas", "nobody")
    local.expect(1, ["--group", "sales", "--email", "sales@example.com", "--add-user", "x"])
    alice = local.json("--user", "alice")
    assert (alice["name"], alice["fullname"], alice["mr_accept"], alice["sendas"]) == \
        ("alice", "Alice", False, [])
    assert local.json("--group", "sales") == {"name": "sales", "email": None, "members": [],
                                              "users": []}


def test_groups_create_change_list_and_delete(db_url, local):
    for name in ("alice", "bob"):
        local("--create", "--user", name, "--email", f"{name}@example.com")
    # Changes print nothing, as Kopano's tool; --verbose says what was done.
    assert ok(db_url, "--create", "--group", "sales", "--email", "sales@example.com") == ""
    assert local("--add-user", "alice", "--group", "sales", "--verbose") == \
        "Group updated: sales\n"
    local("--create", "--group", "ops")
    local("--group", "ops", "--email", "ops@example.com", "--add-user", "bob")
    local("--add-user", "bob", "--group", "sales")
    local("--remove-user", "bob", "--group", "sales")
    text = ok(db_url, "--group", "sales")
    assert labelled(text) == {
        "Name": "sales", "Email address": "sales@example.com", "Address Book": "visible",
        "Send-as": "", "Users (1)": ""}
    assert text.splitlines()[7].split() == ["alice", "localhost"]
    assert as_json(db_url, "--group", "ops") == {
        "name": "ops", "email": "ops@example.com", "members": ["bob"],
        "users": [{"name": "bob", "fullname": "", "homeserver": "localhost", "store": None}]}
    lines = ok(db_url, "--list-groups").splitlines()
    assert lines[:3] == ["Group list for Default(3):", "Groupname", "-" * 16]
    assert lines[3:] == ["Everyone", "ops", "sales", ""]
    assert as_json(db_url, "--list-groups") == [
        {"name": "Everyone", "email": None, "members": ["alice", "bob"]},
        {"name": "ops", "email": "ops@example.com", "members": ["bob"]},
        {"name": "sales", "email": "sales@example.com", "members": ["alice"]}]
    assert local.json("--group", "Everyone")["members"] == ["alice", "bob"]
    assert local.json("--user", "alice")["groups"] == ["Everyone", "sales"]
    assert local("--delete", "--group", "sales", "--verbose") == "Group deleted: sales\n"
    assert [g["name"] for g in local.json("--list-groups")] == ["Everyone", "ops"]
    # The address is free again once the group is gone.
    local("--create", "--user", "sales", "--email", "SALES@example.com")


def test_sendas_and_user_listing(db_url, local):
    for name, extra in (("alice", ["--fullname", "Alice A"]),
                        ("bob", ["--active", "no", "--admin-level", "2"]),
                        ("beamer", ["--resource-type", "equipment"])):
        local("--create", "--user", name, "--email", f"{name}@example.com", *extra)
    assert ok(db_url, "--add-sendas", "bob", "--user", "alice") == ""
    local("--add-sendas", "beamer", "--user", "alice")
    local("--add-sendas", "beamer", "--user", "alice")  # twice is harmless
    assert labelled(ok(db_url, "--user", "alice"))["Send-as"] == "beamer, bob"
    listing = ok(db_url, "--list-users").splitlines()
    assert listing[:3] == ["User list for Default(3):",
                           f"{'User':<16} {'Full Name':<20} Homeserver", "-" * 58]
    assert listing[3:] == [f"{'alice':<16} {'Alice A':<20} localhost",
                           f"{'beamer':<16} {'':<20} localhost",
                           f"{'bob':<16} {'':<20} localhost", ""]
    assert as_json(db_url, "--list-users") == [
        {"name": "alice", "fullname": "Alice A", "homeserver": "localhost",
         "email": "alice@example.com", "active": True, "admin_level": 0,
         "resource_type": "none"},
        {"name": "beamer", "fullname": "", "homeserver": "localhost",
         "email": "beamer@example.com", "active": True, "admin_level": 0,
         "resource_type": "equipment"},
        {"name": "bob", "fullname": "", "homeserver": "localhost", "email": "bob@example.com",
         "active": False, "admin_level": 2, "resource_type": "none"}]
    local("--remove-sendas", "bob", "--user", "alice")
    assert local.json("--user", "alice")["sendas"] == ["beamer"]


def _set_oof(db_url: str, name: str, start: dt.datetime, until: dt.datetime) -> None:
    db = open_database(db_url)
    try:
        with db.write() as session:
            mailbox = session.scalar(select(Mailbox).where(Mailbox.name == name))
            session.add(OutOfOffice(mailbox_id=mailbox.id, enabled=True, subject="Away",
                                    body="Back soon", start=start, until=until))
    finally:
        db.dispose()


def _oof_rows(db_url: str) -> int:
    db = open_database(db_url)
    try:
        with db.read() as session:
            return len(list(session.scalars(select(OutOfOffice))))
    finally:
        db.dispose()


def test_delete_user_orphans_its_store_which_can_be_hooked_again(db_url, local, now):
    alice_store = local("--create", "--user", "alice", "--email", "alice@example.com",
                        "--create-store", "--verbose").split("Store created: ")[1].strip()
    local("--create", "--user", "bob", "--email", "bob@example.com")
    assert local("--create-store", "--user", "bob") == ""
    bob_store = local.json("--user", "bob")["store"]
    local("--create", "--user", "carol", "--email", "carol@example.com")
    _set_oof(db_url, "alice", now, now + dt.timedelta(days=7))
    assert labelled(local("--user", "alice"))["Out-Of-Office"] == \
        "enabled (from 2026-03-02T08:00:00Z until 2026-03-09T08:00:00Z)"
    assert local.json("--user", "alice")["out_of_office"] == {
        "enabled": True, "from": "2026-03-02T08:00:00Z", "until": "2026-03-09T08:00:00Z"}

    assert ok(db_url, "--delete", "--user", "alice", "--verbose") == \
        f"User deleted: alice (store {alice_store} is now an orphan)\n"
    assert _oof_rows(db_url) == 0  # out-of-office settings went with the user
    carol = {"name": "carol", "fullname": "", "homeserver": "localhost"}
    # No delivery yet: last modified is when the store was created (the tests' clock is
    # the real one here, so only its form is checked).
    orphans = as_json(db_url, "--list-orphans")
    stamp = orphans["stores"][0].pop("last_modified")
    local_stamp = orphans["stores"][0].pop("last_modified_local")
    assert orphans == {"stores": [{"guid": alice_store, "owner": "alice", "size": 0}],
                       "users": ["carol"], "users_details": [carol]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    text = ok(db_url, "--list-orphans")
    assert f"{alice_store} {'alice':<20} {local_stamp:<16} 0.00 MB" in text.splitlines()
    assert text.endswith("Users without stores (1):\n" + f"{'User':<16} {'Full Name':<20} "
                         f"Homeserver\n{'-' * 58}\n{'carol':<16} {'':<20} localhost\n")

    # Hooking alice's old store to bob orphans bob's own store.
    assert ok(db_url, "--hook-store", alice_store.lower(), "--user", "bob", "--verbose") == \
        f"Store hooked: {alice_store} as user bob\n"
    assert local.json("--user", "bob")["store"] == alice_store
    assert [(s["guid"], s["owner"]) for s in local.json("--list-orphans")["stores"]] == [
        (bob_store, "bob")]
    local.expect(1, ["--remove-store", alice_store])  # a hooked store is not removed
    assert local("--unhook-store", "--user", "bob", "--verbose") == \
        f"Store unhooked: {alice_store} (was user bob)\n"
    assert local("--remove-store", bob_store, "--verbose") == f"Store removed: {bob_store}\n"
    assert local("--remove-store", alice_store) == ""
    assert local.json("--list-orphans") == {
        "stores": [], "users": ["bob", "carol"],
        "users_details": [{**carol, "name": "bob"}, carol]}
    # Removed just now: not "more than 30 days ago"; bare, every soft-deleted store.
    assert ok(db_url, "--purge-softdelete", "30", "--verbose") == \
        "Soft-deleted stores purged: 0\n"
    assert ok(db_url, "--purge-softdelete", "--verbose") == "Soft-deleted stores purged: 2\n"
    assert local("--purge-softdelete") == ""
    local.expect(1, ["--hook-store", bob_store, "--user", "carol"])


def test_there_is_only_one_public_store(db_url, local):
    public = ok(db_url, "--create-store", "--verbose")
    assert public.startswith("Public store created: ")
    guid = public.split(": ")[1].strip()
    assert fails(db_url, 1, "--create-store") == "error: the public store already exists\n"
    local("--create", "--user", "dave", "--email", "dave@example.com", "--create-store")
    dave_store = local.json("--user", "dave")["store"]
    local("--delete", "--user", "dave")
    assert "already exists" in local.expect(1, ["--hook-store", dave_store])[0]
    # The public store is not an orphan; once it is removed, an orphan may take its place.
    assert [s["guid"] for s in local.json("--list-orphans")["stores"]] == [dave_store]
    local("--remove-store", guid)
    assert ok(db_url, "--hook-store", dave_store, "--verbose") == \
        f"Store hooked: {dave_store} as the public store\n"
    assert local.json("--list-orphans")["stores"] == []
    local.expect(1, ["--create-store"])
    # --unhook-store without --user: the public store becomes an orphan (Kopano's).
    assert local("--unhook-store") == ""
    assert [s["guid"] for s in local.json("--list-orphans")["stores"]] == [dave_store]
    assert local.expect(1, ["--unhook-store"]) == ["error: there is no public store\n"]


def test_who_may_book_settings_delegates_and_time_zone(db_url, local, tmp_path):
    for name in ("room", "alice", "bob"):
        local("--create", "--user", name, "--email", f"{name}@example.com")
    local("--create", "--group", "staff")
    text = tmp_path / "response.txt"
    text.write_text("Keys at the desk.\r\nThanks!\r\n")
    ok(db_url, "--user", "room", "--mr-verify-organizer", "authenticated", "--mr-book-in",
       "group:Staff, Domain:Example.ORG,alice", "--mr-request-in", "internal",
       "--mr-allow-external", "no", "--mr-working-hours", "mon-thu 8:00-18:00,Fri 08:00-14:00",
       "--mr-min-duration", "15", "--mr-response-text", str(text), "--mr-approval-timeout",
       "48", "--mr-notify-delegates", "yes", "--mr-add-delegate", "bob",
       "--mr-add-delegate", "alice", "--timezone", "Europe/Berlin")
    data = as_json(db_url, "--user", "room")
    assert {k: data[k] for k in (*WHO_MAY_BOOK_JSON, "mr_delegates", "timezone")} == {
        "timezone": "Europe/Berlin", "mr_verify_organizer": "authenticated",
        "mr_book_in": ["group:Staff", "domain:example.org", "alice"],
        "mr_request_in": ["internal"], "mr_allow_external": False,
        "mr_working_hours": "Mon-Thu 08:00-18:00, Fri 08:00-14:00", "mr_min_duration": 15,
        "mr_response_text": "Keys at the desk.\nThanks!", "mr_approval_timeout": 48,
        "mr_notify_delegates": True, "mr_delegates": ["alice", "bob"]}
    details = labelled(ok(db_url, "--user", "room"))
    assert {k: details[k] for k in (*WHO_MAY_BOOK_LABELS, "Delegates", "Time zone")} == {
        "Verify organizer": "authenticated",
        "Book-in policy": "group:Staff, domain:example.org, alice",
        "Request-in policy": "internal", "Allow external organizers": "no",
        "Working hours": "Mon-Thu 08:00-18:00, Fri 08:00-14:00",
        "Min duration (minutes)": "15", "Response text": "Keys at the desk.\\nThanks!",
        "Approval timeout (hours)": "48", "Notify delegates": "yes",
        "Delegates": "alice, bob", "Time zone": "Europe/Berlin"}
    # From stdin, and cleared again; a delegate removed; the default zone again.
    ok(db_url, "--user", "room", "--mr-response-text", "-", stdin="From stdin.\n")
    assert local.json("--user", "room")["mr_response_text"] == "From stdin."
    local("--user", "room", "--mr-response-text", "none", "--mr-remove-delegate", "alice",
          "--timezone", "")
    room = local.json("--user", "room")
    assert (room["mr_response_text"], room["mr_delegates"], room["timezone"]) == \
        ("", ["bob"], "UTC")


@pytest.mark.parametrize(("args", "why"), [
    (["--mr-book-in", "none,alice"], "none cannot be combined with other entries"),
    (["--mr-request-in", "role:x"], "not an entry: 'role:x'"),
    (["--mr-working-hours", "Mon 18:00-08:00"], "the end must be after the start"),
    (["--mr-verify-organizer", "maybe"], "invalid choice: 'maybe'"),
    (["--mr-approval-timeout", "0"], "must be at least 1"),
    (["--mr-response-text", "/nonexistent/file"], "cannot read /nonexistent/file"),
    (["--timezone", "Mars/Olympus"], "unknown IANA time zone 'Mars/Olympus'"),
])
def test_bad_who_may_book_values_are_usage_errors(db_url, local, args, why):
    local("--create", "--user", "room", "--email", "room@example.com")
    [message] = local.expect(2, ["--user", "room", *args])
    assert why in message
    assert "Traceback" not in message


def test_delegates_must_be_users_and_groups_nest(db_url, local):
    for name in ("room", "alice"):
        local("--create", "--user", name, "--email", f"{name}@example.com")
    assert "user 'nobody' does not exist" in fails(db_url, 1, "--user", "room",
                                                   "--mr-add-delegate", "nobody")
    assert "alice is not a delegate of room" in fails(db_url, 1, "--user", "room",
                                                      "--mr-remove-delegate", "alice")
    # The users and groups a list names must exist (groups in any letter case).
    assert fails(db_url, 1, "--user", "room", "--mr-book-in", "group:staff") == \
        "error: --mr-book-in: group 'staff' does not exist\n"
    assert fails(db_url, 1, "--user", "room", "--mr-request-in", "alice,bobby") == \
        "error: --mr-request-in: user 'bobby' does not exist\n"
    for group in ("staff", "all-staff"):
        local("--create", "--group", group)
    local("--user", "room", "--mr-book-in", "group:STAFF,alice,domain:example.org")
    local("--group", "staff", "--add-user", "alice")
    assert ok(db_url, "--group", "all-staff", "--add-user", "staff") == ""
    assert as_json(db_url, "--group", "all-staff") == {
        "name": "all-staff", "email": None, "members": [], "member_groups": ["staff"],
        "users": []}
    assert labelled(ok(db_url, "--group", "all-staff"))["Member groups"] == "staff"
    assert "cannot be a member of itself" in fails(db_url, 1, "--group", "staff",
                                                   "--add-user", "staff")
    assert "no user or group named 'nobody'" in fails(db_url, 1, "--group", "staff",
                                                      "--add-user", "nobody")
    local("--group", "all-staff", "--remove-user", "staff")
    assert "member_groups" not in local.json("--group", "all-staff")
