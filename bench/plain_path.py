"""Plain deliveries through the group committer, in process: CPU µs per delivery, each side.

``python -m bench.plain_path [-n N] [--sessions S] [--rcpts R]`` runs S concurrent "sessions"
on an event loop, each handing one message at a time (to R users) to a running ``Committer``
through ``Committer.deliver``, as the LMTP handler does after DATA, durably on SQLite. It
prints the event loop thread's and the committer thread's CPU time per delivery
(``bench.cpu_split``'s /proc counters) and the mean batch size. For work on the hand-off and
the per-batch cost of plain delivery, not a benchmark: no network, one process.
"""
import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import threading
import time
import zoneinfo
from datetime import tzinfo

if os.environ.get("SRC"):
    sys.path.insert(0, os.environ["SRC"])
from bench import store as bstore
from bench.cpu_split import thread_time
from bench.messages import plain_template, with_message_id
from mr_engine.config import load_settings
from mr_engine.delivery.committer import Committer
from mr_engine.delivery.context import Envelope, message_id_of, parse_message
from mr_engine.store.db import open_database


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def envelope(content: bytes, zone: tzinfo) -> Envelope:
    parsed = parse_message(content)
    env = Envelope(sender="s@remote.example", content=content, message=parsed,
                   message_id=message_id_of(parsed), peer="127.0.0.1", helo="x",
                   client="127.0.0.1:1")
    env.invitation(zone)  # as the LMTP handler does, on the protocol side
    env.listing
    return env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--rcpts", type=int, default=1)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mrp")
    url = f"sqlite:///{work}/store.db"
    db0 = bstore.open_store(url)
    users = bstore.create_users(db0, 50, utcnow())
    db0.dispose()
    settings = load_settings({"database_url": url, "home": work}, environ={})
    db = open_database(url)
    ids = _mailbox_ids(db, users)
    committer = Committer(db, settings, clock=utcnow)
    batches = _count_batches(committer)
    committer.start()
    template = plain_template()
    zone = zoneinfo.ZoneInfo(settings.default_timezone)
    counter = iter(range(10**9))

    async def session(k: int, n: int) -> None:
        for _ in range(n):
            i = next(counter)
            env = envelope(with_message_id(template, f"<p{i}@bench>"), zone)
            targets = [(users[(i + r) % len(users)], ids[(i + r) % len(users)])
                       for r in range(a.rcpts)]
            await committer.deliver(env, targets)

    async def run(n: int) -> None:
        await asyncio.gather(*(session(k, n // a.sessions) for k in range(a.sessions)))

    loop = asyncio.new_event_loop()
    loop.run_until_complete(run(400))
    pid, loop_tid, com_tid = os.getpid(), threading.get_native_id(), committer._thread.native_id
    l0, c0, b0 = thread_time(pid, loop_tid), thread_time(pid, com_tid), batches[0]
    w0 = time.perf_counter()
    loop.run_until_complete(run(a.n))
    wall = time.perf_counter() - w0
    l1, c1 = thread_time(pid, loop_tid), thread_time(pid, com_tid)
    d = a.n * a.rcpts
    print(f"sessions={a.sessions} rcpts={a.rcpts} n={a.n}: loop {(l1.seconds - l0.seconds) / d * 1e6:.0f} us, "
          f"committer {(c1.seconds - c0.seconds) / d * 1e6:.0f} us a delivery, "
          f"batch {d / max(1, batches[0] - b0):.1f}, {a.n / wall:.0f} msg/s")
    committer.stop()
    db.dispose()


def _mailbox_ids(db, users: list[str]) -> list[int]:
    from mr_engine.store import directory
    with db.write() as s:
        return [directory.get_user(s, f"user{i:03d}").id for i in range(len(users))]


def _count_batches(committer: Committer) -> list[int]:
    count = [0]
    commit = committer._commit

    def counted(batch):
        count[0] += 1
        return commit(batch)
    committer._commit = counted
    return count


if __name__ == "__main__":
    main()
