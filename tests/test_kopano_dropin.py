"""Issue 16: the Kopano admin tools as a drop-in. The manual's examples (User management,
§8.1-8.9) run verbatim through the console scripts and are compared line by line with the
manual's layout; scripts in the style of a site's cron jobs behave as on Kopano. On SQLite
and PostgreSQL (``db_url``) where the store matters.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from typing import Any

import pytest
from sqlalchemy import select, update

from mr_engine.store.db import Database
from mr_engine.store.models import Store
from mr_engine.testing import commands
from mr_engine.testing.accounts import add_resource
from mr_engine.testing.invites import invite
from mr_engine.testing.paths import BIN
from mr_engine.testing.store_views import agenda, messages_of, outbox_rows
from mr_engine.testing.times import HOUR

MB = 1024 * 1024


def tool(db_url: str | None, script: str, *args: str, stdin: str | bytes = "",
         cwd: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """An installed console script; text in and out unless ``stdin`` is bytes."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    if db_url is not None:
        environ["MR_ENGINE_DATABASE_URL"] = db_url
    return commands.run([str(BIN / script), *args], input=stdin, capture_output=True,
                        text=not isinstance(stdin, bytes), env={**environ, **env},
                        cwd=cwd, timeout=60)


def cli(db_url: str, *args: str, **env: str) -> str:
    """kopano-cli that must succeed; its stdout (the new-store notice is allowed once)."""
    done = tool(db_url, "kopano-cli", *args, **env)
    assert done.returncode == 0 and "error" not in done.stderr, (args, done.stderr)
    return done.stdout


def as_json(db_url: str, *args: str) -> Any:
    return json.loads(cli(db_url, *args, "--json"))


def _set(db: Database, model: Any, where: Any, **values: Any) -> None:
    with db.write() as session:
        session.execute(update(model).where(where).values(**values))


# The console scripts' layouts are the CLI's own, the same on either backend: these run on
# SQLite alone (each is some twenty subprocesses); the same commands run on PostgreSQL in
# tests/test_kopano_cli.py.
LAYOUTS_ON_SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@LAYOUTS_ON_SQLITE
def test_manual_user_details_line_by_line(db, db_url):
    """§8.2: ``kopano-cli --user john``, each line as the manual lays it out."""
    cli(db_url, "--create", "-u", "john", "--email", "john@example.com", "--fullname",
        "John Doe", "--password", "secret", "--create-store", "--add-feature", "imap",
        "--add-feature", "mobile,outlook")
    cli(db_url, "-u", "john", "--qw", "1024")
    guid = as_json(db_url, "--user", "john")["store"]
    _set(db, Store, Store.guid == guid, size=int(462.40 * MB) + 1)
    lines = cli(db_url, "--user", "john").splitlines()
    assert lines[:22] == [
        "Name:                          john",
        "Full name:                     John Doe",
        "Email address:                 john@example.com",
        "Active:                        yes",
        "Administrator:                 no",
        "Address Book:                  visible",
        "Features:                      imap; mobile; outlook; webapp",
        f"Store:                         {guid}",
        "Store size:                    462.40 MB",
        "Send-as:",
        "Delegation:",
        "Auto-accept meeting requests:  no",
        "Out-Of-Office:                 disabled",
        "Current user store quota settings:",
        "    Quota overrides:           yes",
        "    Warning level:             1024.00 MB",
        "    Soft level:                unlimited",
        "    Hard level:                unlimited",
        "Groups (1):",
        "    Groupname",
        "    ----------------",
        "    Everyone"]
    # Then Kopano's permissions heading, and our own lines after Kopano's.
    assert lines[22:25] == ["", "Permissions:", ""]
    assert lines[25] == "Time zone:                     UTC"
    assert "Auto-process meeting requests: no" in lines
    # An auto-accepting resource shows the real tool's two inverse lines under it.
    cli(db_url, "-u", "john", "--mr-accept", "yes", "--mr-accept-conflicts", "no")
    shown = cli(db_url, "--user", "john").splitlines()
    assert shown[11:14] == ["Auto-accept meeting requests:  yes",
                            "    Accept conflicting:        no",
                            "    Accept recurring:          yes"]
    assert "Decline conflicting:           yes" in shown
    cli(db_url, "-u", "john", "--remove-feature", "mobile", "--admin", "yes")
    data = as_json(db_url, "--user", "john")
    # Taken from the user: off, though the server's disabled_features would not say so.
    assert (data["features"], data["admin_level"]) == (
        {"imap": True, "pop3": False, "mobile": False, "outlook": True, "webapp": True}, 1)


@LAYOUTS_ON_SQLITE
def test_manual_group_list_and_orphan_layouts(db, db_url):
    """§8.2.2 (a group and its users), the listings, and §8.2.3's orphan listing."""
    for name, full in (("john", "John Doe"), ("jane", "Jane Roe"), ("old", "Old Timer")):
        cli(db_url, "--create", "-u", name, "--email", f"{name}@example.com", "--fullname",
            full, "--create-store")
    cli(db_url, "--create", "-g", "sales", "--email", "sales@example.com")
    assert cli(db_url, "-g", "sales", "--add-user", "john", "--add-user", "jane") == ""
    john = as_json(db_url, "--user", "john")["store"]
    jane = as_json(db_url, "--user", "jane")["store"]
    assert cli(db_url, "--group", "sales").splitlines() == [
        "Name:            sales",
        "Email address:   sales@example.com",
        "Address Book:    visible",
        "Send-as:",
        "Users (2):",
        f"{'Username':<16} {'Fullname':<20} {'Homeserver':<20} Store",
        "-" * 91,
        f"{'jane':<16} {'Jane Roe':<20} {'localhost':<20} {jane}",
        f"{'john':<16} {'John Doe':<20} {'localhost':<20} {john}"]
    assert cli(db_url, "--list-users").splitlines() == [
        "User list for Default(3):",
        f"{'User':<16} {'Full Name':<20} Homeserver", "-" * 58,
        f"{'jane':<16} {'Jane Roe':<20} localhost", f"{'john':<16} {'John Doe':<20} localhost",
        f"{'old':<16} {'Old Timer':<20} localhost", ""]
    assert cli(db_url, "--list-groups").splitlines() == [
        "Group list for Default(2):", "Groupname", "-" * 16, "Everyone", "sales", ""]

    old = as_json(db_url, "--user", "old")["store"]
    cli(db_url, "--delete", "-u", "old")
    cli(db_url, "--create", "-u", "new", "--email", "new@example.com", "--fullname", "New One")
    # Last modified in the local zone: 12:22 UTC is 14:22 in Amsterdam in May.
    _set(db, Store, Store.guid == old, created_at=dt.datetime(2017, 5, 1, 12, 22,
                                                              tzinfo=dt.timezone.utc),
         size=int(1.5 * MB))
    text = cli(db_url, "--list-orphans", MR_ENGINE_DEFAULT_TIMEZONE="Europe/Amsterdam")
    assert text.splitlines() == [
        "Stores without users:",
        f"{'Store guid':<32} {'Guessed username':<20} {'Last modified':<16} Store size",
        "-" * 87,
        f"{old} {'old':<20} 2017/05/01 14:22 1.50 MB",
        "",
        "Users without stores (1):",
        f"{'User':<16} {'Full Name':<20} Homeserver", "-" * 58,
        f"{'new':<16} {'New One':<20} localhost"]
    assert as_json(db_url, "--list-orphans")["stores"][0]["last_modified"] == \
        "2017-05-01T12:22:00Z"
    stores = as_json(db_url, "--list-stores")
    assert sorted(s["user"] or "" for s in stores) == ["", "jane", "john"]
    assert cli(db_url, "--list-stores").splitlines()[0].split() == [
        "Store", "guid", "Username", "Store", "size"]


@LAYOUTS_ON_SQLITE
def test_cron_style_scripts(db, db_url):
    """-u a -u b applies to both; --purge-softdelete 30 purges only what is older;
    kopano-set-oof -u john -m 0 switches out-of-office off, quietly to scripts."""
    for name in ("a", "b", "john"):
        cli(db_url, "--create", "-u", name, "--email", f"{name}@example.com", "--create-store")
    # Changes print nothing, as Kopano's tool; both users get the change.
    assert cli(db_url, "-u", "a", "-u", "b", "--mr-accept", "yes",
               "--mr-accept-recurring", "no", "--qh", "100") == ""
    for one in as_json(db_url, "-u", "a", "-u", "b"):
        assert (one["mr_accept"], one["mr_decline_recurring"], one["quota_hard"]) == \
            (True, True, 100 * MB)
    assert [json.loads(cli(db_url, "-u", "a", "--json"))["name"]] == ["a"]
    assert cli(db_url, "--verbose", "-u", "a", "-u", "b", "--fullname", "X") == \
        "User updated: a\nUser updated: b\n"

    stores = {name: as_json(db_url, "--user", name)["store"] for name in ("a", "b")}
    for name in ("a", "b"):
        cli(db_url, "--delete", "-u", name)
        cli(db_url, "--remove-store", stores[name])
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
    _set(db, Store, Store.guid == stores["a"], deleted_at=long_ago)
    assert cli(db_url, "--purge-softdelete", "30") == ""
    with db.read() as session:
        left = set(session.scalars(select(Store.guid).where(Store.deleted_at.is_not(None))))
    assert left == {stores["b"]}

    tool(db_url, "kopano-set-oof", "-u", "john", "-m", "1", "-t", "Away")
    done = tool(db_url, "kopano-set-oof", "-u", "john", "-m", "0")
    assert (done.returncode, json.loads(done.stdout)["set"]) == (0, False)
    assert cli(db_url, "--user", "john").count("Out-Of-Office:                 disabled") == 1


@LAYOUTS_ON_SQLITE
def test_set_oof_habits_and_the_same_state_through_kopano_cli(db, db_url, tmp_path):
    cli(db_url, "--create", "-u", "john", "--email", "john@example.com",
        "--timezone", "Europe/Berlin")
    # The real tool's server options are accepted and ignored, with a note.
    done = tool(db_url, "kopano-set-oof", "-u", "john", "-m", "1", "-h", "file:///x",
                "-s", "key.pem", "-p", "pw", "-P", "--from", "2030-07-01 09:00",
                "--until", "2030-07-15 18:00", "-t", "Holiday")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ("note: -h, -s, -p, -P ignored: mr-engine has no separate server "
                           "to contact\n")
    # Read in the user's zone (Berlin, summer: UTC+2); ISO in UTC without a flag.
    state = json.loads(done.stdout)
    assert (state["from"], state["until"]) == ("2030-07-01T07:00:00Z", "2030-07-15T16:00:00Z")
    # -m - keeps the mode while changing the rest; --dump-json is the real tool's form.
    dumped = tool(db_url, "kopano-oof", "-u", "john", "-m", "-", "--until", "infinite",
                  "--dump-json")
    assert json.loads(dumped.stdout) == {
        "set": True, "from": "2030-07-01 09:00:00", "until": "infinite", "active": False,
        "subject": "Holiday", "message": ""}
    assert json.loads(tool(db_url, "kopano-oof", "-u", "john", "--json").stdout)["from"] == \
        "2030-07-01T07:00:00Z"
    # kopano-cli's --ooo flags change the same state.
    body = tmp_path / "oof.txt"
    body.write_text("Back on Monday.\n", encoding="utf-8")
    assert cli(db_url, "-u", "john", "--ooo", "no", "--ooo-subject", "Gone", "--ooo-message",
               str(body), "--ooo-from", "2030-08-01 08:00", "--ooo-until", "2030-08-02") == ""
    dumped = json.loads(tool(db_url, "kopano-set-oof", "-u", "john", "--dump-json").stdout)
    assert dumped == {"set": False, "from": "2030-08-01 08:00:00",
                      "until": "2030-08-02 00:00:00", "active": False, "subject": "Gone",
                      "message": "Back on Monday.\n"}
    assert as_json(db_url, "--user", "john")["out_of_office"] == {
        "enabled": False, "from": "2030-08-01T06:00:00Z", "until": "2030-08-01T22:00:00Z"}
    cli(db_url, "-u", "john", "--ooo-clear")
    cleared = json.loads(tool(db_url, "kopano-set-oof", "-u", "john", "--dump-json").stdout)
    assert (cleared["subject"], cleared["from"], cleared["until"]) == ("", "infinite",
                                                                       "infinite")


@LAYOUTS_ON_SQLITE
def test_sync_user_count_and_password_prompt_end(db, db_url):
    cli(db_url, "--create", "-u", "john", "--email", "john@example.com")
    cli(db_url, "--create", "-u", "off", "--email", "off@example.com", "--active", "no")
    cli(db_url, "--create", "-u", "room", "--email", "room@example.com",
        "--resource-type", "room")
    assert cli(db_url, "--sync") == \
        "nothing to synchronise: user_plugin db keeps the users in the store\n"
    assert cli(db_url, "--user-count").splitlines() == [
        "User counts:", f"\t{'':>12} {'Used':>10}", "\t" + "-" * 43,
        f"\t{'Active':>12} {1:>10}", f"\t{'Non-active':>12} {2:>10}",
        f"\t{'NA Users':>12} {1:>10}", f"\t{'NA Rooms':>12} {1:>10}",
        f"\t{'NA Equipment':>12} {0:>10}", f"\t{'Total':>12} {3:>10}"]
    ended = tool(db_url, "kopano-cli", "-u", "john", "--password-prompt")
    assert (ended.returncode, ended.stdout) == (1, "")
    assert ended.stderr == "error: no password given: the input ended (Ctrl-D)\n"


def test_mr_process_books_and_files_without_a_reply(db, db_url):
    add_resource(db, "room", "room@example.com", mr_accept=False)
    cli(db_url, "-u", "room", "--mr-process", "yes")
    start = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0) + \
        dt.timedelta(days=3)
    done = tool(db_url, "kopano-mr-accept", "room", stdin=invite(
        "p1", start, start + HOUR, "room@example.com"))
    assert (done.returncode, done.stdout) == (0, b"accepted\n"), done.stderr
    assert len(agenda(db_url, "room")) == 1
    assert [m.folder for m in messages_of(db, "room")] == ["Processed Requests"]
    assert outbox_rows(db) == []  # booked and filed, no reply
    assert "Auto-process meeting requests: yes" in cli(db_url, "--user", "room")


def test_mr_accept_as_kopano_dagent_calls_it(db, db_url, tmp_path):
    add_resource(db, "room", "room@example.com", mr_decline_recurring=True)
    start = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0) + \
        dt.timedelta(days=3)
    done = tool(db_url, "kopano-mr-accept", "room", "/etc/kopano/dagent.cfg", "0011AABB",
                stdin=invite("w1", start, start + HOUR, "room@example.com",
                             rrule="FREQ=WEEKLY;COUNT=3"))
    assert done.returncode == 0
    assert done.stdout == b"declined: Recurring meetings are not allowed\n"
    assert done.stderr.startswith(b"note: CONFIGFILE and ENTRYID are ignored")
    empty = tool(db_url, "kopano-mr-accept", "room", "/etc/kopano/dagent.cfg", stdin=b"")
    assert empty.returncode == 1 and b"no message on standard input" in empty.stderr


def test_the_store_does_not_depend_on_the_working_directory(tmp_path):
    home, one, two = tmp_path / "home", tmp_path / "one", tmp_path / "two"
    for path in (home, one, two):
        path.mkdir()
    created = tool(None, "kopano-cli", "--create", "-u", "john", "--email",
                   "john@example.com", cwd=str(one), MR_ENGINE_HOME=str(home))
    assert created.returncode == 0
    assert f"creating a new, empty store at {home}/mr-engine.db" in created.stderr
    listed = tool(None, "kopano-cli", "--list-users", "--json", cwd=str(two),
                  MR_ENGINE_HOME=str(home))
    assert [u["name"] for u in json.loads(listed.stdout)] == ["john"]
    assert listed.stderr == ""
    # Without a home, a command in a new directory says which new store it opens.
    elsewhere = tool(None, "kopano-cli", "--list-users", cwd=str(two),
                     MR_ENGINE_SYSTEM_CONFIG=str(tmp_path / "none.toml"))
    assert f"creating a new, empty store at {two}/var/mr-engine.db" in elsewhere.stderr
