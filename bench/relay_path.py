"""The relay's passes, in process: CPU µs per reply sent.

``python -m bench.relay_path [--pg] [-n N] [--per-pass K]`` queues K replies of load 2's
size at a time in the outbound queue and makes one relay pass (``Relay.run_pass`` over a
kept SMTP link, as ``serve`` does) to a ``bench.sink`` SMTP smarthost in another process,
until N replies are sent. It prints the relay thread's CPU time per reply and the wall time.
Under load 2 a pass carries a few replies (K=3 by default). ``--pg`` runs on a throwaway
durable PostgreSQL; ``SRC=dir`` imports the engine from another tree (before/after). For
work on the relay's cost, not a benchmark.
"""
import argparse
import datetime as dt
import os
import pathlib
import sys
import tempfile
import time

if os.environ.get("SRC"):
    sys.path.insert(0, os.environ["SRC"])
from bench import store as bstore
from bench.processes import Sink
from mr_engine.config import load_settings
from mr_engine.delivery.relay import Relay, SmtpLink
from mr_engine.store import outbox
from mr_engine.store.db import open_database

_REPLY = (b"From: projectors@bench.example\r\nTo: organizer@remote.example\r\n"
          b"Subject: Accepted: Benchmark meeting\r\n\r\n" + (b"x" * 70 + b"\r\n") * 40)


def run(a: argparse.Namespace, url: str, work: str, smarthost: str) -> None:
    settings = load_settings({"database_url": url, "home": work,
                              "smarthost": smarthost}, environ={})
    db = open_database(url)
    relay, link = Relay(db, settings), SmtpLink(settings)
    now = dt.datetime.now(dt.timezone.utc)

    def passes(n: int) -> tuple[float, float]:
        cpu = wall = 0.0
        for _ in range(0, n, a.per_pass):
            with db.write() as session:
                for _ in range(a.per_pass):
                    outbox.enqueue(session, sender="projectors@bench.example",
                                   recipients=["organizer@remote.example"], content=_REPLY,
                                   subject="Accepted", now=now)
            t0, w0 = time.thread_time(), time.perf_counter()
            done = relay.run_pass(now, link)
            cpu += time.thread_time() - t0
            wall += time.perf_counter() - w0
            assert len(done.attempts) == a.per_pass, done
        return cpu / n * 1e6, wall / n * 1e6

    passes(a.warm)
    cpu, wall = passes(a.n)
    link.close()
    db.dispose()
    print(f"{'pg' if a.pg else 'sqlite'} n={a.n} per pass={a.per_pass}: relay CPU {cpu:.0f} "
          f"us/reply, wall {wall:.0f} us/reply")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", action="store_true")
    ap.add_argument("-n", type=int, default=1500)
    ap.add_argument("--per-pass", type=int, default=3)
    ap.add_argument("--warm", type=int, default=150)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mrr")
    sink = Sink("smtp", pathlib.Path(work))
    cluster = None
    try:
        if a.pg:
            from mr_engine.testing.pgcluster import Cluster
            cluster = Cluster(durable=True)
            cluster.start()
            url = bstore.FreshStore.create(cluster.url, pathlib.Path(work), "r").url
        else:
            url = f"sqlite:///{work}/store.db"
            bstore.open_store(url).dispose()
        run(a, url, work, sink.address)
    finally:
        sink.stop()
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()
