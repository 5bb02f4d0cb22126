"""``mr-engine serve`` with worker processes: shared listeners, balanced sessions, one session
limit, restarts, and shutdown, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from mr_engine.config import ConfigError, load_settings

from mr_engine.testing.accounts import add_users
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import ServeProcess, serve_env
from mr_engine.testing.store_views import messages_of


def greeted(port: int) -> RawClient:
    client = RawClient(port)
    assert client.reply()[0].startswith("220 ")
    return client


def wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_share_the_sessions_and_both_deliver(db, db_url):
    add_users(db, "alice")
    with ServeProcess(serve_env(db_url), "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        assert len(serve.workers()) == 2
        # A worker leaves a connection to a less busy one for a few ms, then takes it itself
        # (acceptor.Acceptor): on a loaded machine one round may land in one worker, so
        # rounds go on until both have delivered. A worker that never accepts still fails.
        rounds = 0
        while rounds < 5 and len(_delivering(serve)) < 2:
            _four_concurrent_sessions(serve.port, rounds)
            rounds += 1
        assert serve.stop() == 0
    assert len(messages_of(db, "alice")) == 4 * rounds
    pids = _delivering(serve)
    assert len(pids) == 2 and serve.proc.pid not in pids
    assert "all workers stopped" in serve.lines[-1]


def _four_concurrent_sessions(port: int, round_: int) -> None:
    clients = [greeted(port) for _ in range(4)]
    replies: list[list[str]] = []
    # Concurrently: the two workers' committers write the one store at the same time.
    threads = [threading.Thread(target=lambda c=c, i=i: replies.append(send_message(
        c, "s@r.example", ["alice@example.com"], msg(message_id=f"<w{round_}.{i}@r.example>"))[1]))
        for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(replies) == [["250 2.0.0 Ok: delivered"]] * 4
    for client in clients:
        client.close()


def _delivering(serve: ServeProcess) -> set[int]:
    """The processes that logged a delivery so far."""
    return {int(m) for m in re.findall(r"\[(\d+)\]: delivered", "".join(serve.lines))}


def test_the_supervisor_holds_no_engine_code_and_keeps_its_process_id(db, db_url):
    with ServeProcess(serve_env(db_url), "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        # serve execs the lean supervisor: same pid, none of the engine's libraries mapped.
        assert "mr_engine.delivery.workers" in _read(f"/proc/{serve.proc.pid}/cmdline")
        assert not _maps_any(serve.proc.pid, DATABASE_CODE + EVENT_LOOP_CODE)
        assert all(_maps_any(pid, DATABASE_CODE) for pid in serve.workers())
        assert all(_maps_any(pid, EVENT_LOOP_CODE) for pid in serve.workers())
        assert serve.stop() == 0


DATABASE_CODE = ("sqlalchemy", "sqlite3", "psycopg", "libpq")
EVENT_LOOP_CODE = ("_asyncio.", "_ssl.")  # asyncio's C parts, and ssl that asyncio imports


def _maps_any(pid: int, libraries: tuple[str, ...]) -> bool:
    maps = _read(f"/proc/{pid}/maps")
    return any(lib in maps for lib in libraries)


def _read(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read().decode(errors="replace")


def test_max_sessions_counts_the_sessions_of_every_worker(db, db_url):
    with ServeProcess(serve_env(db_url, max_sessions="2"), "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        first, second = greeted(serve.port), greeted(serve.port)
        third = RawClient(serve.port)
        assert third.reply()[0].startswith("421 4.3.2")
        first.close()
        # The slot is free again once the worker has seen the close.
        wait_until(lambda: _greeting(serve.port).startswith("220 "))
        second.close()
        assert serve.stop() == 0


def _greeting(port: int) -> str:
    client = RawClient(port)
    try:
        return client.reply()[0]
    finally:
        client.close()


def test_a_worker_that_dies_is_replaced(db, db_url):
    add_users(db, "alice")
    with ServeProcess(serve_env(db_url), "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        victim, survivor = serve.workers()
        os.kill(victim, signal.SIGKILL)
        serve.wait_for(f"(pid {victim}) ended with status -9; restarting it")
        serve.wait_for("ready", count=3)
        assert survivor in serve.workers() and victim not in serve.workers()
        for i in range(4):  # whichever worker takes them, each delivers
            client = greeted(serve.port)
            _, data = send_message(client, "s@r.example", ["alice@example.com"],
                                   msg(message_id=f"<r{i}@r.example>"))
            assert data == ["250 2.0.0 Ok: delivered"]
            client.close()
        assert serve.stop() == 0
    assert len(messages_of(db, "alice")) == 4


def test_workers_end_when_the_supervisor_is_killed(db, db_url):
    with ServeProcess(serve_env(db_url), "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        workers = serve.workers()
        serve.proc.kill()
        serve.proc.wait(10)
        wait_until(lambda: not any(_alive(pid) for pid in workers))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_unix_socket_is_shared_and_removed_at_stop(db, db_url, tmp_path):
    add_users(db, "alice")
    path = tmp_path / "lmtp.sock"
    env = serve_env(db_url, lmtp_listen=f"unix:{path},127.0.0.1:0")
    with ServeProcess(env, "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        client = RawClient(0, unix_path=str(path))
        client.reply()
        _, data = send_message(client, "s@r.example", ["alice@example.com"], msg())
        assert data == ["250 2.0.0 Ok: delivered"]
        client.close()
        assert serve.stop() == 0
    assert not path.exists()


@pytest.mark.parametrize("raw, workers", [("auto", 0), ("0", 0), ("3", 3)])
def test_workers_setting(raw, workers):
    settings = load_settings(environ={"MR_ENGINE_WORKERS": raw})
    assert settings.workers == workers
    assert settings.worker_count == (workers or len(os.sched_getaffinity(0)))


def test_a_negative_worker_count_is_refused():
    with pytest.raises(ConfigError, match="workers"):
        load_settings(environ={"MR_ENGINE_WORKERS": "-1"})


def test_sigterm_right_after_start_stops_cleanly(db, db_url):
    for delay in (0.0, 0.05, 0.2):  # while the supervisor is still forking its workers
        with ServeProcess(serve_env(db_url), "--workers", "4", wait=False) as serve:
            serve.wait_for("supervisor")
            time.sleep(delay)
            assert serve.stop() == 0, "".join(serve.lines[-10:])


def test_stopping_refuses_new_clients_and_finishes_the_message_in_flight(db, db_url):
    add_users(db, "alice")
    with ServeProcess(serve_env(db_url), "--workers", "2") as serve:
        serve.wait_for("ready", count=2)
        client = greeted(serve.port)
        client.command("LHLO test.example")
        for line in ("MAIL FROM:<s@r.example>", "RCPT TO:<alice@example.com>"):
            assert client.command(line)[0].startswith("250")
        assert client.command("DATA")[0].startswith("354")
        serve.proc.terminate()
        # Both workers hold the listening socket: refused once each has closed its copy.
        serve.wait_for("signal received", count=2)
        with pytest.raises(ConnectionRefusedError):
            RawClient(serve.port)
        client.send(msg().replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        assert client.reply()[0].startswith("250 2.0.0")
        assert serve.proc.wait(30) == 0
    assert len(messages_of(db, "alice")) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_address_in_use_is_a_clear_error(db, db_url, workers):
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(BIN / "mr-engine"), "serve", "--workers", workers],
                                env=serve_env(db_url, lmtp_listen=f"127.0.0.1:{port}"),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == \
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


# A worker that has served a delivery, in a fresh interpreter: which SQLAlchemy dialects it
# imported. Each one not in use costs every worker about 2 MB (load 4, peak memory).
_DIALECTS_AFTER_A_DELIVERY = """
import sys
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.servers import RunningServer, make_settings

with RunningServer(make_settings(sys.argv[1])) as running:
    client = RawClient(running.port)
    client.reply()
    replies = send_message(client, "sender@remote.example", ["alice@example.com"], msg())
    assert replies[1][0].startswith("250"), replies
print(" ".join(sorted({m.split(".")[2] for m in sys.modules
                       if m.startswith("sqlalchemy.dialects.") and m.count(".") >= 2
                       and not m.split(".")[2].startswith("_")})))
"""


def test_a_worker_imports_only_its_own_databases_dialect(db, db_url):
    add_users(db, "alice")
    done = subprocess.run([sys.executable, "-c", _DIALECTS_AFTER_A_DELIVERY, db_url],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == [db.engine.dialect.name]


# A server that has delivered and answered /healthz, then shown its first page, in a fresh
# interpreter: whether jinja2 was imported by then. Mail delivery never shows a page, and
# importing jinja2 at start cost every worker about 2 MB (load 4, peak memory).
_JINJA2_BY_THE_FIRST_PAGE = """
import sys, urllib.request
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.servers import RunningServer, make_settings

with RunningServer(make_settings(sys.argv[1], http_listen=("127.0.0.1:0",))) as running:
    client = RawClient(running.port)
    client.reply()
    replies = send_message(client, "sender@remote.example", ["alice@example.com"], msg())
    assert replies[1][0].startswith("250"), replies
    base = f"http://127.0.0.1:{running.http_port}"
    assert urllib.request.urlopen(base + "/healthz").status == 200
    print("jinja2" in sys.modules)
    page = urllib.request.urlopen(base + "/").read()
    assert b"<html" in page.lower(), page[:200]
    print("jinja2" in sys.modules)
"""


def test_a_worker_imports_jinja2_at_its_first_page_not_before(db, db_url):
    add_users(db, "alice")
    done = subprocess.run([sys.executable, "-c", _JINJA2_BY_THE_FIRST_PAGE, db_url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]


def test_the_supervisor_imports_none_of_the_engine():
    # What the supervisor imports is resident in each worker it forks, and counted in each
    # one's memory (load 4): the engine is imported by the workers after the fork, and the
    # config file was read by serve before the exec.
    done = subprocess.run(
        [sys.executable, "-P", "-c", "import sys, mr_engine.delivery.workers\n"
         "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split())
    assert not imported & {"sqlalchemy", "alembic", "psycopg", "icalendar", "aiohttp",
                           "aiosmtpd", "jinja2", "prometheus_client", "tomllib", "asyncio"}
