"""Private by default: the store's directory and files, and the LMTP unix sockets, get their
modes whatever the umask (the real commands, run under umask 022), and a configured group."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
from pathlib import Path

import pytest

from mr_engine.delivery import listeners
from mr_engine.store.store_access import prepare_sqlite_store

from mr_engine.testing import commands
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import ServeProcess, serve_env

GROUP = "daemon"  # a group every Debian machine has; the tests run as root
GID = grp.getgrnam(GROUP).gr_gid


@pytest.fixture(autouse=True)
def umask_022():
    previous = os.umask(0o022)  # inherited by the commands run here
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def run(command: str, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = serve_env(settings.pop("db_url"), **settings)
    return commands.run([str(BIN / command), *args], env=env, capture_output=True,
                        text=True, timeout=60)


def create_alice(db_url: str) -> None:
    created = run("kopano-cli", "--create", "--user", "alice", "--email",
                  "alice@example.com", "--password", "a", db_url=db_url)
    assert created.returncode == 0, created.stderr


def deliver_one(socket_path: Path) -> None:
    client = RawClient(0, unix_path=str(socket_path))
    client.reply()
    _, data = send_message(client, "s@r.example", ["alice@example.com"], msg())
    assert data == ["250 2.0.0 Ok: delivered"]
    client.close()


def store_files(database: Path) -> list[Path]:
    """The database and what SQLite and the writer lock put beside it, all of them there."""
    files = [database, *(Path(f"{database}{s}") for s in ("-wal", "-shm", "-writer.lock"))]
    assert all(f.exists() for f in files), sorted(os.listdir(database.parent))
    return files


def test_the_commands_make_the_store_and_the_socket_private_under_umask_022(tmp_path):
    database, sock = tmp_path / "var" / "store.db", tmp_path / "lmtp.sock"
    db_url = f"sqlite:///{database}"
    upgraded = run("mr-engine", "db", "upgrade", db_url=db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert mode(database.parent) == 0o700 and mode(database) == 0o600
    create_alice(db_url)
    assert mode(Path(f"{database}-writer.lock")) == 0o600
    env = serve_env(db_url, lmtp_listen=f"unix:{sock}")
    with ServeProcess(env, "--workers", "2", wait=False) as serve:
        serve.wait_for("ready", count=2)
        assert mode(sock) == 0o660
        deliver_one(sock)  # while it runs, -wal and -shm are there
        assert {f.name: mode(f) for f in store_files(database)} == \
            {f.name: 0o600 for f in store_files(database)}
        assert serve.stop() == 0


def test_a_store_group_gets_read_access_and_the_socket_its_group_and_mode(tmp_path):
    database, sock = tmp_path / "var" / "store.db", tmp_path / "lmtp.sock"
    db_url = f"sqlite:///{database}"
    env = serve_env(db_url, lmtp_listen=f"unix:{sock}", store_group=GROUP,
                    lmtp_socket_group=str(GID), lmtp_socket_mode="0620")
    with ServeProcess(env, "--workers", "2", wait=False) as serve:
        serve.wait_for("ready", count=2)  # serve created the store
        assert (mode(sock), os.stat(sock).st_gid) == (0o620, GID)
        create_alice(db_url)  # another process that knows nothing of the group
        deliver_one(sock)
        # The setgid bit: files made in the directory by any user get its group.
        assert (mode(database.parent), database.parent.stat().st_gid) == (0o2750, GID)
        assert {(f.name, mode(f), f.stat().st_gid) for f in store_files(database)} == \
            {(f.name, 0o640, GID) for f in store_files(database)}
        assert serve.stop() == 0


@pytest.mark.parametrize("command", [("mr-engine", "db", "upgrade"),
                                     ("kopano-cli", "--list-users")])
def test_the_commands_create_a_store_for_the_group_too(tmp_path, command):
    database = tmp_path / "var" / "store.db"
    done = run(*command, db_url=f"sqlite:///{database}", store_group=GROUP)
    assert done.returncode == 0, done.stderr
    assert (mode(database.parent), database.parent.stat().st_gid) == (0o2750, GID)
    assert (mode(database), database.stat().st_gid) == (0o640, GID)


def test_a_store_open_to_other_users_loses_their_access_and_nothing_is_loosened(
        tmp_path, caplog):
    (tmp_path / "var").mkdir(0o755)
    database = tmp_path / "var" / "store.db"  # as an older version made it, under umask 022
    for path, old in ((database, 0o644), (Path(f"{database}-wal"), 0o666),
                      (Path(f"{database}-shm"), 0o600)):
        path.write_bytes(b"")
        path.chmod(old)
    prepare_sqlite_store(str(database), store_group=GROUP)
    # The others' bits are gone, the group's kept; nothing is granted, not to the group.
    assert [mode(f) for f in (database, Path(f"{database}-wal"), Path(f"{database}-shm"))] \
        == [0o640, 0o660, 0o600]
    assert database.stat().st_gid == os.getegid()
    assert "could be read by any user; mode 0644 -> 0640" in caplog.text
    assert mode(database.parent) == 0o755  # a directory it did not make: not its to change


def test_the_store_directory_is_private_also_under_a_permissive_umask(tmp_path):
    os.umask(0)
    database = tmp_path / "a" / "b" / "store.db"
    prepare_sqlite_store(str(database))
    assert (mode(database.parent), mode(database)) == (0o700, 0o600)


def test_a_socket_is_its_owners_alone_until_it_has_its_mode(tmp_path, monkeypatch):
    path = tmp_path / "lmtp.sock"
    seen: list[int] = []
    chmod = os.chmod
    monkeypatch.setattr(os, "chmod", lambda p, m, **kw: (seen.append(mode(Path(p))),
                                                         chmod(p, m, **kw)))
    sockets = listeners.bind((f"unix:{path}",), listeners.SocketAccess(0o666, gid=GID))
    try:
        assert seen == [0o600]
        assert (mode(path), path.stat().st_gid) == (0o666, GID)
    finally:
        sockets.close()
    assert not path.exists()


@pytest.mark.parametrize("key, value, message", [
    ("lmtp_socket_group", "no-such-group", "unknown group 'no-such-group'"),
    ("lmtp_socket_user", "no-such-user", "unknown user 'no-such-user'"),
    ("lmtp_socket_mode", "0869", "expected an octal mode such as 0660"),
    ("store_group", "no-such-group", "unknown group 'no-such-group'"),
])
def test_a_bad_socket_or_store_setting_stops_serve_naming_the_key(tmp_path, key, value,
                                                                   message):
    result = run("mr-engine", "serve", db_url=f"sqlite:///{tmp_path}/store.db",
                 lmtp_listen=f"unix:{tmp_path}/lmtp.sock", **{key: value})
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: invalid value for {key} (from environment MR_ENGINE_{key.upper()}): "
        f"{message}" + (f", got {value!r}" if key == "lmtp_socket_mode" else ""))
    assert not (tmp_path / "store.db").exists()
