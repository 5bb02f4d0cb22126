"""``kopano-set-oof`` and ``mr-engine queue`` run as the installed console scripts."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import zoneinfo

import pytest

from mr_engine.store import outbox
from mr_engine.store.directory import create_user, get_user
from mr_engine.store.models import OutboundMessage
from mr_engine.store.oof_state import get_oof
from mr_engine.store.stores import create_store

from mr_engine.testing import commands
from mr_engine.testing.paths import BIN
from mr_engine.testing.smarthost import Smarthost

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def run(db_url: str, script: str, *args: str, stdin: str = "", **env: str):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MR_ENGINE_")}
    environ.update(MR_ENGINE_DATABASE_URL=db_url, **env)
    return commands.run([str(BIN / script), *args], input=stdin, capture_output=True,
                        text=True, env=environ, timeout=60)


@pytest.fixture
def alice(db, now):
    with db.write() as session:
        create_store(session, create_user(session, name="alice", email="alice@example.com",
                                          now=now), now)


def wall(moment: dt.datetime) -> str:
    return moment.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M")


def test_set_oof_sets_reads_and_changes_only_what_is_given(db, db_url, alice, tmp_path):
    # Relative to the real clock, since the command decides "active" with it.
    start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).replace(second=0,
                                                                              microsecond=0)
    until = start + dt.timedelta(days=3)
    tz = {"MR_ENGINE_DEFAULT_TIMEZONE": "Europe/Berlin"}
    done = run(db_url, "kopano-set-oof", "-u", "alice", "-m", "1", "-t", "Away", "-n", "-",
               "--from", wall(start), "--until", wall(until), stdin="Back soon.\n", **tz)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "set": True, "active": True, "from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "subject": "Away",
        "message": "Back soon.\n"}
    body = tmp_path / "body.txt"
    body.write_text("Grüße aus dem Urlaub\n", encoding="utf-8")
    done = run(db_url, "kopano-oof", "--user", "alice", "--until", "infinite",
               "--message", str(body), "--mode", "0", **tz)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert (state["set"], state["active"], state["until"], state["subject"],
            state["message"]) == (False, False, None, "Away", "Grüße aus dem Urlaub\n")
    # --json (and no flag, above) print ISO 8601 in UTC; --dump-json the real tool's form,
    # in the user's zone (tests/test_kopano_dropin.py).
    assert json.loads(run(db_url, "kopano-set-oof", "-u", "alice", "--json").stdout) == state
    changed = run(db_url, "kopano-set-oof", "-u", "alice", "-t", "Gone", "--dump-json", **tz)
    assert json.loads(changed.stdout) == {**state, "subject": "Gone", "until": "infinite",
                                          "from": start.astimezone(BERLIN).strftime(
                                              "%Y-%m-%d %H:%M:%S")}
    with db.read() as session:
        stored = get_oof(session, get_user(session, "alice"))
    assert (stored.enabled, stored.start, stored.until) == (False, start, None)


def test_set_oof_errors(db, db_url, alice):
    unknown = run(db_url, "kopano-set-oof", "-u", "nobody", "-m", "1")
    assert unknown.returncode == 1 and "nobody" in unknown.stderr and unknown.stdout == ""
    bad_time = run(db_url, "kopano-set-oof", "-u", "alice", "--from", "tomorrow")
    assert bad_time.returncode == 2 and "YYYY-mm-dd HH:MM" in bad_time.stderr


def test_set_oof_without_arguments_says_so_with_its_usage(tmp_path):
    # As Kopano's tool: "No username specified." and the usage, exit 1; --help is help.
    done = run(f"sqlite:///{tmp_path}/unused.db", "kopano-set-oof")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("No username specified.\nusage: kopano-set-oof")
    helped = run(f"sqlite:///{tmp_path}/unused.db", "kopano-set-oof", "--help")
    assert helped.returncode == 0 and "--dump-json" in helped.stdout
    assert not (tmp_path / "unused.db").exists()


def test_queue_list_retry_delete(db, db_url, now):
    with db.write() as session:
        ids = [outbox.enqueue(session, sender=s, recipients=["b@example.org", "c@example.org"],
                              content=b"Subject: x\r\n\r\nx\r\n", subject=f"s{i}", now=now)
               for i, s in enumerate(["", "alice@example.com"])]
    with db.write() as session:
        row = session.get(OutboundMessage, ids[1])
        row.status, row.last_error = "failed", "550 5.1.1 unknown"
    listed = json.loads(run(db_url, "mr-engine", "queue", "--json").stdout)
    assert listed == [
        {"id": ids[0], "sender": "", "recipients": ["b@example.org", "c@example.org"],
         "subject": "s0", "status": "queued", "attempts": 0,
         "next_attempt_at": "2026-03-02T08:00:00Z", "last_error": ""},
        {"id": ids[1], "sender": "alice@example.com",
         "recipients": ["b@example.org", "c@example.org"], "subject": "s1", "status": "failed",
         "attempts": 0, "next_attempt_at": "2026-03-02T08:00:00Z",
         "last_error": "550 5.1.1 unknown"}]
    assert run(db_url, "mr-engine", "queue", "retry", "--all").returncode == 0
    assert run(db_url, "mr-engine", "queue", "delete", str(ids[0])).returncode == 0
    missing = run(db_url, "mr-engine", "queue", "delete", str(ids[0]))
    assert missing.returncode == 1 and f"message {ids[0]}" in missing.stderr
    [entry] = json.loads(run(db_url, "mr-engine", "queue", "list", "--json").stdout)
    assert (entry["id"], entry["status"]) == (ids[1], "queued")
    assert ISO_Z.match(entry["next_attempt_at"]) and entry["next_attempt_at"] > "2026-03-02T08"
    text = run(db_url, "mr-engine", "queue").stdout
    assert "alice@example.com -> b@example.org, c@example.org" in text


def test_queue_flush_sends_now_and_reports(db, db_url, now):
    host = Smarthost().start()
    try:
        with db.write() as session:
            sent_id = outbox.enqueue(session, sender="", recipients=["b@example.org"],
                                     content=b"Subject: x\r\n\r\nx\r\n", subject="x",
                                     now=now)
            later_id = outbox.enqueue(session, sender="", recipients=["c@example.org"],
                                      content=b"Subject: y\r\n\r\ny\r\n", subject="y",
                                      now=now + dt.timedelta(days=3650))  # not due for years
        done = run(db_url, "mr-engine", "queue", "flush",
                   MR_ENGINE_SMARTHOST=f"127.0.0.1:{host.port}")
        assert done.returncode == 0, done.stderr
        assert f"message {sent_id} to b@example.org: sent" in done.stdout
        assert f"message {later_id} to c@example.org: sent" in done.stdout
        assert len(host.sink.received) == 2
        retry = run(db_url, "mr-engine", "queue", "retry", str(sent_id))
        assert retry.returncode == 1 and "already sent" in retry.stderr
        assert "nothing to send" in run(db_url, "mr-engine", "queue", "flush").stdout
    finally:
        host.stop()


def test_queue_text_lists_queued_and_failed_and_all_adds_sent(db, db_url, now):
    with db.write() as session:
        ids = [outbox.enqueue(session, sender="room@example.com", recipients=[f"{s}@example.org"],
                              content=b"Subject: x\r\n\r\nx\r\n", subject=s, now=now)
               for s in ("queued", "failed", "sent")]
        for message_id, status in zip(ids[1:], ("failed", "sent")):
            session.get(OutboundMessage, message_id).status = status
    rows = {}
    for flags in ((), ("--all",), ("list", "--all")):
        listing = run(db_url, "mr-engine", "queue", *flags).stdout
        rows[flags] = {line.split()[1]: line for line in listing.splitlines()
                       if " -> " in line and line.split()[0].isdigit()}
    assert set(rows[()]) == {"queued", "failed"}
    assert "1 sent message(s) not shown: --all lists them" in run(
        db_url, "mr-engine", "queue").stdout
    assert set(rows[("--all",)]) == set(rows[("list", "--all")]) == {"queued", "failed", "sent"}
    # Only a queued message has a next attempt.
    assert "2026-03-02T08:00:00Z" in rows[("--all",)]["queued"]
    for status in ("failed", "sent"):
        assert re.search(rf"{status}\s+0\s+room@example.com -> {status}@example.org",
                         rows[("--all",)][status])
    listed = json.loads(run(db_url, "mr-engine", "queue", "--json").stdout)
    assert [(e["id"], e["status"]) for e in listed] == list(zip(ids, ("queued", "failed", "sent")))
    assert all(e["next_attempt_at"] == "2026-03-02T08:00:00Z" for e in listed)
