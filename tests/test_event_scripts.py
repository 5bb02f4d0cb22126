"""Kopano's event scripts (§8.5.1.1): run after the commit with KOPANO_USER / KOPANO_GROUP,
a failing one logged, a hanging one killed at script_timeout, a rolled-back change runs
nothing; kopano-cli's creations and deletions run them."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from mr_engine.cli.kopano_cli import main
from mr_engine.config import Settings
from mr_engine.store import event_scripts
from mr_engine.store.db import open_database


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
        event_scripts.submit(event_scripts.planned(settings, "createuser", "done")).result(10)
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
        event_scripts.submit(event_scripts.Run("wait", ("true",), "X", "", 5)).result(10)
    assert "'nobody' does not exist" in capsys.readouterr().err  # and runs nothing
    assert out.read_text().splitlines() == [
        "createuser user=john group=", "creategroup user= group=sales",
        "deletegroup user= group=sales", "deleteuser user=john group="]
