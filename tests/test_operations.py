"""One store found from anywhere, --version, and ``mr-engine status`` with and without a
running server: the installed console scripts, run as an administrator runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mr_engine.config import load_settings
from mr_engine.store import outbox
from mr_engine.store.location import masked_url
from mr_engine.testing import commands
from mr_engine.testing.accounts import add_resource, add_users
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import ServeProcess, serve_env
from mr_engine.testing.times import NOW

NOTICE = "creating a new, empty store at"
STATUS_KEYS = {
    "version", "database_url", "database_answers", "database_error", "schema_revision",
    "schema_head", "schema_up_to_date", "mailbox_count", "resource_count", "queue",
    "oldest_queued_age_seconds", "last_relay_error", "pending_approvals", "server_running",
    "server_pid", "server_listeners"}


def run(script: str, *args: str, cwd: Path | None = None, **env: str):
    """A console script with only ``env`` for settings: never the machine's /etc file."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    environ.update(MR_ENGINE_SYSTEM_CONFIG="/nonexistent/mr-engine.toml", **env)
    return commands.run([str(BIN / script), *args], capture_output=True, text=True,
                        env=environ, cwd=cwd, timeout=60)


# --- the configuration file search and home ------------------------------------------------

def test_the_system_file_is_read_and_its_directory_is_home(tmp_path):
    system = tmp_path / "etc" / "mr-engine.toml"
    system.parent.mkdir()
    system.write_text('hostname = "mx.system"\n')
    settings = load_settings({}, environ={"MR_ENGINE_SYSTEM_CONFIG": str(system)})
    assert settings.hostname == "mx.system"
    assert settings.home == str(system.parent)
    assert settings.database_url == f"sqlite:///{system.parent}/mr-engine.db"
    assert settings.sources["hostname"] == f"file {system}"
    assert settings.sources["home"] == f"default: the directory of {system}"


def test_a_named_file_replaces_the_system_file(tmp_path):
    system, named = tmp_path / "system.toml", tmp_path / "named" / "mr.toml"
    named.parent.mkdir()
    system.write_text('hostname = "mx.system"\ndefault_domain = "system.example"\n')
    named.write_text('hostname = "mx.named"\n')
    env = {"MR_ENGINE_SYSTEM_CONFIG": str(system), "MR_ENGINE_CONFIG": str(named)}
    settings = load_settings({}, environ=env)
    assert (settings.hostname, settings.default_domain) == ("mx.named", "localhost")
    assert settings.home == str(named.parent)
    flag = load_settings({}, environ=env, config_file=str(system))
    assert flag.hostname == "mx.system" and flag.home == str(tmp_path)


def test_mr_engine_home_wins_and_a_home_in_the_file_is_relative_to_it(tmp_path):
    conf = tmp_path / "conf" / "mr.toml"
    conf.parent.mkdir()
    conf.write_text('home = "state"\n')
    env = {"MR_ENGINE_SYSTEM_CONFIG": str(conf)}
    assert load_settings({}, environ=env).home == str(conf.parent / "state")
    settings = load_settings({}, environ={**env, "MR_ENGINE_HOME": str(tmp_path / "h")})
    assert settings.database_url == f"sqlite:///{tmp_path}/h/mr-engine.db"
    assert settings.sources["home"] == "environment MR_ENGINE_HOME"


def test_without_a_file_home_is_var_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, environ={"MR_ENGINE_SYSTEM_CONFIG": str(tmp_path / "no")})
    assert settings.home == str(tmp_path / "var")


def test_an_explicit_database_url_is_kept(tmp_path):
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    settings = load_settings({}, environ={"MR_ENGINE_DATABASE_URL": url,
                                          "MR_ENGINE_HOME": str(tmp_path / "h")})
    assert settings.database_url == url and settings.home == str(tmp_path / "h")


def test_config_says_where_the_database_url_came_from(tmp_path):
    done = run("mr-engine", "config", "--json", MR_ENGINE_HOME=str(tmp_path))
    rows = json.loads(done.stdout)
    assert rows["database_url"] == {"value": f"sqlite:///{tmp_path}/mr-engine.db",
                                    "source": "default: mr-engine.db in home"}
    assert rows["home"] == {"value": str(tmp_path), "source": "environment MR_ENGINE_HOME"}


def test_every_directory_opens_the_same_store_and_only_a_new_one_is_announced(tmp_path):
    conf = tmp_path / "etc" / "mr-engine.toml"
    conf.parent.mkdir()
    conf.write_text("")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    created = run("kopano-cli", "--create", "--user", "alice", "--email", "alice@example.com",
                  cwd=one, MR_ENGINE_CONFIG=str(conf))
    assert created.returncode == 0, created.stderr
    assert f"mr-engine: {NOTICE} {conf.parent}/mr-engine.db (no store found there)" \
        in created.stderr
    listed = run("kopano-cli", "--list-users", "--json", cwd=two, MR_ENGINE_CONFIG=str(conf))
    assert [u["name"] for u in json.loads(listed.stdout)] == ["alice"]
    assert NOTICE not in listed.stderr
    assert not (one / "var").exists() and not (two / "var").exists()


def test_a_command_on_a_missing_store_says_it_creates_one(tmp_path):
    done = run("mr-engine", "queue", MR_ENGINE_HOME=str(tmp_path / "new"))
    assert done.returncode == 0
    assert f"{NOTICE} {tmp_path}/new/mr-engine.db" in done.stderr


# --- --version -----------------------------------------------------------------------------

@pytest.mark.parametrize("command, name", [
    (["mr-engine"], "mr-engine"), (["mr-engine", "serve"], "mr-engine"),
    (["mr-engine", "status"], "mr-engine"), (["kopano-cli"], "kopano-cli"),
    (["kopano-set-oof"], "kopano-set-oof"), (["kopano-oof"], "kopano-oof"),
    (["kopano-mr-accept"], "kopano-mr-accept")])
def test_every_command_prints_its_name_and_version(command, name):
    from importlib.metadata import version

    done = run(command[0], *command[1:], "--version")
    assert (done.returncode, done.stdout, done.stderr) \
        == (0, f"{name} {version('mr-engine')}\n", "")


# --- status --------------------------------------------------------------------------------

def _status(db_url: str, **env: str) -> tuple[int, dict, str]:
    done = run("mr-engine", "status", "--json", MR_ENGINE_DATABASE_URL=db_url, **env)
    return done.returncode, json.loads(done.stdout), done.stderr


def test_status_of_a_store_without_a_server(db, db_url, tmp_path):
    add_users(db, "alice")
    add_resource(db, "room", "room@example.com")
    with db.write() as session:
        outbox.enqueue(session, sender="", recipients=["a@example.org"], content=b"x",
                       subject="s", now=NOW)
        failed = outbox.enqueue(session, sender="", recipients=["b@example.org"],
                                content=b"x", subject="s", now=NOW)
    with db.write() as session:
        row = session.get(outbox.OutboundMessage, failed)
        row.status, row.last_error = outbox.FAILED, "550 5.1.1 no such user"
    code, status, stderr = _status(db_url, MR_ENGINE_HOME=str(tmp_path))
    assert code == 0, stderr
    assert set(status) == STATUS_KEYS
    assert status["database_url"] == masked_url(db_url)
    assert status["database_answers"] and status["schema_up_to_date"]
    assert status["schema_revision"] == status["schema_head"] is not None
    assert (status["mailbox_count"], status["resource_count"]) == (2, 1)
    assert status["queue"] == {"queued": 1, "sent": 0, "failed": 1}
    assert status["oldest_queued_age_seconds"] > 0  # NOW is in the past of the real clock
    assert status["last_relay_error"] == "550 5.1.1 no such user"
    assert status["pending_approvals"] in (None, 0)  # null until approvals have landed
    assert (status["server_running"], status["server_pid"], status["server_listeners"]) \
        == (False, None, {})


def test_status_masks_the_password_and_fails_when_the_database_does_not_answer():
    url = "postgresql+psycopg://mr:s3cret@127.0.0.1:1/mr"
    code, status, stderr = _status(url)
    assert code == 1 and "s3cret" not in json.dumps(status) + stderr
    assert status["database_url"] == "postgresql+psycopg://mr:***@127.0.0.1:1/mr"
    assert not status["database_answers"] and status["mailbox_count"] is None
    assert stderr.count("\n") == 1 and stderr.startswith("error: the database does not answer")


def test_status_does_not_create_a_missing_store(tmp_path):
    done = run("mr-engine", "status", MR_ENGINE_HOME=str(tmp_path))
    assert done.returncode == 1
    assert f"no store at {tmp_path}/mr-engine.db" in done.stderr
    assert "server:    not running" in done.stdout
    assert not (tmp_path / "mr-engine.db").exists()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_status_shows_the_running_server_and_its_listeners(tmp_path, workers):
    url = f"sqlite:///{tmp_path}/store.db"
    env = serve_env(url, home=str(tmp_path), workers=workers,
                    system_config="/nonexistent/mr-engine.toml")
    with ServeProcess(env) as server:
        code, status, _ = _status(url, MR_ENGINE_HOME=str(tmp_path))
        assert code == 0 and status["server_running"]
        assert status["server_pid"] == server.proc.pid
        assert status["server_listeners"] == {"lmtp": [f"127.0.0.1:{server.port}"]}
        text = run("mr-engine", "status", MR_ENGINE_DATABASE_URL=url,
                   MR_ENGINE_HOME=str(tmp_path)).stdout
        assert f"server:    running, pid {server.proc.pid}; LMTP on 127.0.0.1:{server.port}" \
            in text
        other = _status(f"sqlite:///{tmp_path}/other.db", MR_ENGINE_HOME=str(tmp_path))[1]
        assert not other["server_running"]  # a server of another store is not this one's
        assert server.stop() == 0
    assert not (tmp_path / "mr-engine-server.json").exists()
    assert not _status(url, MR_ENGINE_HOME=str(tmp_path))[1]["server_running"]


def test_a_stale_state_file_is_not_a_running_server(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    env = serve_env(url, home=str(tmp_path), workers="1",
                    system_config="/nonexistent/mr-engine.toml")
    with ServeProcess(env) as server:
        server.proc.kill()
        server.proc.wait(10)
    assert (tmp_path / "mr-engine-server.json").exists()  # SIGKILL: no clean-up
    assert not _status(url, MR_ENGINE_HOME=str(tmp_path))[1]["server_running"]
