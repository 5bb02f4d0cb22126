"""Kopano's event scripts (§8.5.1.1): run after the commit with KOPANO_USER / KOPANO_GROUP,
a failing one logged, a hanging one killed at script_timeout, a rolled-back change runs
nothing; kopano-cli's creations and deletions run them."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from mr_engine.cli.kopano_cli import main
from mr_engine.config import ConfigError, Settings, load_settings
from mr_engine.store import event_scripts
from mr_engine.store.db import open_database
from mr_engine.testing import commands
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.mail import msg
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import RunningServer, make_settings
from mr_engine.testing.store_views import messages_of


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def recorder(tmp_path) -> tuple[str, Path]:
    """A script appending its event's variables to a file."""
    out = tmp_path / "events.txt"
    return script(tmp_path, "record", f'echo "$1 user=$KOPANO_USER group=$KOPANO_GROUP" '
                                      f'>> {out}'), out


def run(settings: Settings, event: str, name: str) -> int | None:
    planned = event_scripts.planned(settings, event, name)
    assert planned is not None
    return event_scripts.execute(planned)


def test_the_script_gets_the_name_in_its_environment(recorder):
    path, out = recorder
    settings = Settings(createuser_script=path, creategroup_script=f"{path} --group")
    assert run(settings, "createuser", "john") == 0
    assert run(settings, "creategroup", "sales") == 0
    assert out.read_text().splitlines() == [" user=john group=", "--group user= group=sales"]
    assert event_scripts.planned(settings, "deleteuser", "john") is None  # none set


def test_failing_missing_and_hanging_scripts_are_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mr_engine.store.event_scripts")
    failing = script(tmp_path, "failing", "echo 'no LDAP home' >&2; exit 3")
    # A script that starts a child holding its stderr: the timeout kills both.
    hanging = script(tmp_path, "hanging", "sleep 30 & sleep 30")
    settings = Settings(createuser_script=failing, deleteuser_script=hanging,
                        creategroup_script=str(tmp_path / "absent"), script_timeout=1)
    assert run(settings, "createuser", "john") == 3
    started = time.monotonic()
    assert run(settings, "deleteuser", "john") is None
    assert time.monotonic() - started < 10
    assert run(settings, "creategroup", "sales") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"createuser script {failing} for john failed with exit status 3: no LDAP home",
        f"deleteuser script {hanging} for john killed after 1 s",
        f"creategroup script {tmp_path / 'absent'} for sales could not be started: "
        "No such file or directory"]


def test_scripts_run_after_the_commit_only(tmp_path, recorder, db_url):
    path, out = recorder
    settings = Settings(createuser_script=path)
    db = open_database(db_url)
    try:
        with pytest.raises(RuntimeError), db.write() as session:
            event_scripts.queue_event(session, settings, "createuser", "rolled-back")
            raise RuntimeError("the change fails")
        with db.write() as session:
            event_scripts.queue_event(session, settings, "createuser", "john")
            session.execute(text("SELECT 1"))
            assert not out.exists()  # not before the commit
        event_scripts.submit(event_scripts.planned(settings, "createuser", "done")).result(30)
    finally:
        db.dispose()
    assert out.read_text().splitlines() == [" user=john group=", " user=done group="]


def test_kopano_cli_runs_them_on_creation_and_deletion(recorder, db_url, monkeypatch,
                                                       capsys):
    path, out = recorder
    for event in ("createuser", "deleteuser", "creategroup", "deletegroup"):
        monkeypatch.setenv(f"MR_ENGINE_{event.upper()}_SCRIPT", f"{path} {event}")
    for args in (["--create", "-u", "john", "--email", "john@example.com"],
                 ["--create", "-g", "sales"], ["--delete", "-g", "sales"],
                 ["--delete", "-u", "john"], ["--delete", "-u", "nobody"]):
        main(["--database-url", db_url, *args])
        _wait_for_scripts()
    assert "'nobody' does not exist" in capsys.readouterr().err  # and runs nothing
    assert out.read_text().splitlines() == [
        "createuser user=john group=", "creategroup user= group=sales",
        "deletegroup user= group=sales", "deleteuser user=john group="]


def test_just_in_time_creation_runs_it_and_delivery_does_not_wait(db, db_url, slapd,
                                                                   tmp_path, caplog):
    """The createuser script of a recipient created just in time starts after the row's
    commit and runs on while the delivery is answered; then one that fails is logged."""
    caplog.set_level(logging.INFO, logger="mr_engine.store.event_scripts")
    started, release = tmp_path / "started", tmp_path / "release"
    waiting = script(tmp_path, "waiting", f'echo "$KOPANO_USER" >> {started}\n'
                     f'while [ ! -e {release} ]; do sleep 0.05; done\nexit 4')
    settings = make_settings(db_url, **slapd.settings(createuser_script=waiting,
                                                      script_timeout=60))
    with RunningServer(settings) as server:
        deliver(server.port, msg(message_id="<jit-1@remote.example>"), "alice@example.com")
        # Answered 250 while the script still waits for the test (and for at most 60 s).
        assert len(messages_of(db, "alice")) == 1 and not release.exists()
        release.touch()
        _wait_for_scripts()
        assert started.read_text() == "alice\n"
        deliver(server.port, msg(message_id="<jit-2@remote.example>"), "bob@example.com")
        _wait_for_scripts()
    assert len(messages_of(db, "bob")) == 1
    failed = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert failed == [f"createuser script {waiting} for alice failed with exit status 4",
                      f"createuser script {waiting} for bob failed with exit status 4"]


def _wait_for_scripts() -> None:
    """Until the scripts queued so far have run (the runner takes them in order)."""
    event_scripts.submit(event_scripts.Run("wait", ("true",), "X", "", 5)).result(30)


def test_the_command_waits_for_its_scripts_before_it_exits(tmp_path):
    """kopano-cli (the console script, e.g. --sync from cron) ends only once the scripts
    its change queued have run."""
    out = tmp_path / "out"
    slow = script(tmp_path, "slow", f'sleep 1\necho "$KOPANO_USER" > {out}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    env.update(MR_ENGINE_DATABASE_URL=f"sqlite:///{tmp_path}/store.db",
               MR_ENGINE_CREATEUSER_SCRIPT=slow)
    done = commands.run([str(BIN / "kopano-cli"), "--create", "-u", "zed", "--email",
                         "zed@example.com"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0 and out.read_text() == "zed\n"


def test_a_script_setting_that_cannot_be_split_is_a_configuration_error(tmp_path):
    away = {"MR_ENGINE_SYSTEM_CONFIG": str(tmp_path / "none.toml")}
    with pytest.raises(ConfigError, match="createuser_script.*No closing quotation"):
        load_settings(environ={**away, "MR_ENGINE_CREATEUSER_SCRIPT": "/bin/x 'open"})
    settings = load_settings(environ={**away, "MR_ENGINE_CREATEUSER_SCRIPT": "/bin/x 'a b'"})
    assert event_scripts.planned(settings, "createuser", "u").command == ("/bin/x", "a b")
