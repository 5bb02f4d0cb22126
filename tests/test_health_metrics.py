"""``/healthz`` and ``/metrics``: exact totals across worker processes, a worker's death,
one process on its own registry, and 503 when the database stops answering."""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import re
import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from mr_engine.core.oof_rules import suppression_reason
from mr_engine.services.oof import suppression_kind
from mr_engine.store.db import open_database, probe
from mr_engine.store.models import Mailbox
from mr_engine.store.oof_state import set_oof
from mr_engine.testing import pgcluster
from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import RawClient, deliver, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.processes import children, free_port, serving_pid
from mr_engine.testing.servers import ServeProcess, serve_env, server_at
from mr_engine.testing.times import NOW

from .test_http_front import get

Samples = dict[tuple[str, frozenset], float]
SENDER = "s@r.example"


def scrape(port: int) -> Samples:
    status, kind, body = get(port, "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples
            if s.name.startswith("mr_engine_")}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def settled(port: int, name: str, expected: float, **labels: str) -> Samples:
    """A scrape once ``name`` has reached ``expected`` (what other processes and threads
    do after answering takes a moment)."""
    deadline = time.monotonic() + 20
    while True:
        samples = scrape(port)
        if value(samples, name, **labels) == expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def steady(port: int, samples: Samples) -> Samples:
    """A scrape equal to the one before it, from *samples* on: a relay pass counts its
    attempts, then claims again, a write that the store's write lock metrics time."""
    deadline = time.monotonic() + 20
    while True:
        again = scrape(port)
        if again == samples or time.monotonic() > deadline:
            return again
        samples = again
        time.sleep(0.1)


def greeted(port: int) -> RawClient:
    client = RawClient(port)
    assert client.reply()[0].startswith("220 ")
    return client


def spread(port: int, workers: list[int], each: int) -> tuple[list[RawClient], int]:
    """Greeted sessions, *each* on every worker, in turn (the first worker's, the second's,
    ...), and how many were opened: on a loaded machine a worker slower to wake than
    ``Acceptor.DEFER`` leaves its share to the other, whose extra sessions are closed."""
    by_worker: dict[int, list[RawClient]] = {pid: [] for pid in workers}
    for opened in range(1, 41):
        client = greeted(port)
        mine = by_worker[serving_pid(client.sock, workers)]
        if len(mine) < each:
            mine.append(client)
        else:
            client.close()
        if all(len(sessions) == each for sessions in by_worker.values()):
            return [c for turn in zip(*by_worker.values()) for c in turn], opened
    raise AssertionError(f"40 sessions, not {each} on each worker: {by_worker}")


def away(db, *names: str) -> None:
    with db.write() as session:
        for name in names:
            mailbox = session.scalar(select(Mailbox).where(Mailbox.name == name))
            set_oof(session, mailbox, enabled=True, subject="Away", body="Back soon")


def next_week() -> dt.datetime:
    # The served clock is the real one: the meeting is a week after it, whatever the date.
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)).replace(
        hour=9, minute=0, second=0, microsecond=0)


def deliver_the_mix(clients: list[RawClient]) -> list[list[str]]:
    """Two users (alice away), a duplicate, an unknown recipient, a meeting request; one
    session each, in turn, so that the duplicate and the second auto-reply see the first."""
    start = next_week()
    return [
        send_message(clients[0], SENDER, ["alice@example.com", "bob@example.com"], msg())[1],
        send_message(clients[1], SENDER, ["alice@example.com"], msg())[1],
        send_message(clients[2], SENDER, ["nobody@example.com", "alice@example.com"],
                     msg(message_id="<m2@example.com>"))[1],
        send_message(clients[3], "organizer@remote.example", [ROOM],
                     invite("u-metrics", start, start + dt.timedelta(hours=1), ROOM))[1],
    ]


# What the mix above adds up to, whichever worker did which part.
EXPECTED = {
    ("mr_engine_deliveries_total", "delivered"): 4,
    ("mr_engine_deliveries_total", "duplicate"): 1,
    ("mr_engine_deliveries_total", "refused"): 1,
    ("mr_engine_deliveries_total", "temporary_failure"): 0,
}


def changed(before: Samples, after: Samples) -> dict:
    """The samples that differ between two scrapes, each as (before, after), but for the
    store's write lock timings: each worker's relay polls every second with a claim, a
    write, whenever its pass comes round."""
    return {key: (before.get(key), after.get(key)) for key in before.keys() | after.keys()
            if before.get(key) != after.get(key)
            and not key[0].startswith("mr_engine_store_write_")}


def check_totals(samples: Samples, sessions: int, later: bool = False) -> None:
    """The totals of the mix; ``later``: after a worker's restart, when a loaded machine
    may have passed the relay's 20 s retry delay, so retries may have been counted too."""
    for (name, outcome), count in EXPECTED.items():
        assert value(samples, name, outcome=outcome) == count, (outcome, samples)
    assert value(samples, "mr_engine_lmtp_sessions_total") == sessions
    assert value(samples, "mr_engine_delivery_seconds_count") == 4  # one a DATA
    assert value(samples, "mr_engine_delivery_seconds_bucket", le="+Inf") == 4
    assert value(samples, "mr_engine_meeting_requests_total", outcome="accepted") == 1
    assert value(samples, "mr_engine_oof_replies_sent_total") == 1  # alice, once
    # bob is away too, but not in To; alice's second message is within oof_interval.
    assert value(samples, "mr_engine_oof_replies_suppressed_total",
                 reason="not_addressed") == 1
    assert value(samples, "mr_engine_oof_replies_suppressed_total", reason="interval") == 1
    # The auto-reply and the room's reply, each tried once: nothing listens on the smarthost.
    deferred = value(samples, "mr_engine_relay_attempts_total", result="deferred")
    assert deferred >= 2 if later else deferred == 2
    assert value(samples, "mr_engine_relay_attempts_total", result="sent") == 0
    assert {status: value(samples, "mr_engine_outbound_queue_messages", status=status)
            for status in ("queued", "sent", "failed")} == {"queued": 2, "sent": 0, "failed": 0}


def test_metrics_are_exact_across_workers_and_survive_a_worker(db, db_url, tmp_path):
    add_users(db, "alice", "bob")
    add_resource(db, "room", ROOM)
    away(db, "alice", "bob")
    http = free_port()
    env = {**serve_env(db_url, workers="2", http_listen=f"127.0.0.1:{http}"),
           "TMPDIR": str(tmp_path)}  # where the supervisor makes the metrics directory
    with ServeProcess(env) as serve:
        serve.wait_for("ready", count=2)
        workers = serve.workers()
        files = list(tmp_path.glob("mr-engine-metrics-*"))
        assert len(files) == 1

        clients, opened = spread(serve.port, workers, 2)
        assert value(settled(http, "mr_engine_lmtp_sessions_open", 4),
                     "mr_engine_lmtp_sessions_open") == 4
        replies = deliver_the_mix(clients)
        assert replies == [["250 2.0.0 Ok: delivered"] * 2,
                           ["250 2.0.0 Ok: already delivered (duplicate Message-ID)"],
                           ["250 2.0.0 Ok: delivered"], ["250 2.0.0 Ok: delivered"]]
        for client in clients:
            client.close()
        settled(http, "mr_engine_lmtp_sessions_open", 0)
        first = steady(http, settled(http, "mr_engine_relay_attempts_total", 2,
                                     result="deferred"))
        # The deliveries were made by both workers; every scrape, by either, has them all.
        pids = {int(m) for m in re.findall(r"\[(\d+)\]: delivered", "".join(serve.lines))}
        assert pids == set(workers)
        scrapes = [scrape(http) for _ in range(6)]
        assert [changed(first, s) for s in scrapes] == [{}] * 6
        check_totals(first, sessions=opened)
        assert {p.name for p in files[0].glob("counter_*.db")} == {
            f"counter_{pid}.db" for pid in workers}

        # A worker killed with a session open: its counts stay, its open session goes.
        idle, idle_opened = spread(serve.port, workers, 1)
        assert value(settled(http, "mr_engine_lmtp_sessions_open", 2),
                     "mr_engine_lmtp_sessions_open") == 2
        os.kill(workers[0], signal.SIGKILL)
        serve.wait_for("restarting")
        serve.wait_for("ready", count=3)
        alive = [c for c in idle if _still_open(c)]
        after = settled(http, "mr_engine_lmtp_sessions_open", len(alive))
        assert len(alive) == 1  # the sessions were shared out, one a worker
        assert value(after, "mr_engine_lmtp_sessions_open") == 1
        check_totals(after, sessions=opened + idle_opened, later=True)
        for client in alive:
            client.close()
        assert serve.stop() == 0
    assert not files[0].exists()  # removed at exit


def _still_open(client: RawClient) -> bool:
    try:
        return client.command("NOOP")[0].startswith("250")
    except OSError:  # ConnectionError included: the killed worker's session
        return False


def test_one_process_counts_in_its_own_registry(db, db_url):
    add_users(db, "alice")
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        before = scrape(server.http_port)
        deliver(server.port, msg(), to="alice@example.com")
        after = scrape(server.http_port)
    for outcome in ("delivered", "duplicate", "refused", "temporary_failure"):
        grew = (value(after, "mr_engine_deliveries_total", outcome=outcome)
                - value(before, "mr_engine_deliveries_total", outcome=outcome))
        assert grew == (1 if outcome == "delivered" else 0)
    assert value(after, "mr_engine_outbound_queue_messages", status="queued") == 0
    assert ("mr_engine_outbound_queue_messages", frozenset({("status", "failed")})) in after


def test_healthz_says_ok_with_the_backend_revision_and_pid(db, db_url):
    with db.read() as session:
        revision = probe(session)
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        status, kind, body = get(server.http_port, "/healthz")
    assert status == 200 and kind.startswith("application/json")
    assert json.loads(body) == {"status": "ok", "database": db.engine.dialect.name,
                                "schema_revision": revision, "pid": os.getpid()}
    assert revision and revision[:4].isdigit()


@pytest.fixture
def cluster():
    missing = pgcluster.binaries_missing()
    if missing:
        pytest.skip(missing)
    cluster = pgcluster.Cluster(durable=False)
    cluster.start()
    yield cluster
    _signal_cluster(cluster, signal.SIGCONT)
    if (cluster.data / "postmaster.pid").exists():
        cluster.stop()


def _signal_cluster(cluster: pgcluster.Cluster, signum: int) -> None:
    """The postmaster and every backend (SIGSTOP: the server stops answering, sockets open)."""
    pid_file = cluster.data / "postmaster.pid"
    if not pid_file.exists():
        return
    postmaster = int(pid_file.read_text().split()[0])
    for pid in [postmaster, *children(postmaster)]:
        os.kill(pid, signum)


def unavailable(port: int) -> dict:
    status, kind, body = get(port, "/healthz")
    assert status == 503 and kind.startswith("application/json")
    assert body.count("\n") == 0 and "Traceback" not in body
    answer = json.loads(body)
    assert answer["status"] == "unavailable" and answer["database"] == "postgresql"
    assert "\n" not in answer["reason"] and 0 < len(answer["reason"]) <= 200
    return answer


def test_healthz_is_503_when_postgresql_hangs_or_stops(cluster):
    open_database(cluster.url).dispose()  # migrated
    with server_at(cluster.url, NOW, http_listen=("127.0.0.1:0",)) as server:
        port = server.http_port
        assert get(port, "/healthz")[0] == 200
        _signal_cluster(cluster, signal.SIGSTOP)
        started = time.monotonic()
        hung = unavailable(port)
        assert hung["reason"] == "the database did not answer within 2 s"
        assert 1.9 < time.monotonic() - started < 5
        _signal_cluster(cluster, signal.SIGCONT)
        assert get(port, "/healthz")[0] == 200

        cluster.stop()
        stopped = unavailable(port)
        assert stopped["reason"].startswith("database error: ")
        assert "sqlalche.me" not in stopped["reason"]
        # The counters are still served, without the queue depth (it needs the database).
        status, _kind, body = get(port, "/metrics")
        assert status == 200 and "mr_engine_deliveries_total" in body
        assert "mr_engine_outbound_queue_messages" not in body


@pytest.mark.parametrize("sender, headers, kind", [
    ("", "", "null_sender"),
    ("not an address", "", "invalid_sender"),
    ("alice@example.com", "", "own_address"),
    ("mailer-daemon@r.example", "", "system_sender"),
    (SENDER, "Auto-Submitted: auto-replied\n", "auto_submitted"),
    (SENDER, "Precedence: bulk\n", "precedence"),
    (SENDER, "List-Id: <l.r.example>\n", "mailing_list"),
    (SENDER, "X-Auto-Response-Suppress: OOF\n", "auto_response_suppress"),
    (SENDER, "X-Spam-Flag: YES\n", "spam"),
    (SENDER, "", "not_addressed"),
])
def test_every_suppression_reason_has_its_label(sender, headers, kind):
    to = "bob@example.com" if kind == "not_addressed" else "alice@example.com"
    message = email.message_from_string(f"From: x@r.example\nTo: {to}\n{headers}\nHi\n")
    reason = suppression_reason(sender, message, ["alice@example.com"], True)
    assert reason is not None and suppression_kind(reason) == kind
