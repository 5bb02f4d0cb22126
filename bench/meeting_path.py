"""Load 2's meeting requests through the group committer, in process: CPU µs per request.

``python -m bench.meeting_path [--pg] [-n N] [--batch B] [--profile FILE]`` builds the
requests as load 2 does (``bench.messages``) for the pre-loaded equipment resource (10,000
bookings), parses each as the LMTP side does (the protocol side's "parse"), then commits
them through ``Committer._commit`` in batches of B, durably as ``serve`` does, and prints
the thread CPU time of both sides, the wall time and the SQL statements per request (those through SQLAlchemy: store.prepared's run on the DBAPI cursor and are not counted).
``--pg`` runs on a throwaway durable PostgreSQL (``mr_engine.testing.pgcluster``);
``--profile`` adds cProfile's cumulative times of the main stages (with its overhead) and
keeps the profile. ``SRC=dir`` imports the engine from another tree (before/after).
For profiling work on the booking path, not a benchmark: no load, no network.
"""
import argparse
import asyncio
import cProfile
import datetime as dt
import logging
import os
import pathlib
import pstats
import random
import sys
import tempfile
import time
import zoneinfo

if os.environ.get("SRC"):
    sys.path.insert(0, os.environ["SRC"])
from sqlalchemy import event
from bench import store as bstore
from bench.messages import invite_template, invite, DOMAIN
from mr_engine.config import load_settings
from mr_engine.delivery.committer import Committer, DeliveryJob
from mr_engine.delivery.context import Envelope, parse_message, message_id_of
from mr_engine.store.db import open_database

def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)

logging.basicConfig(level=os.environ.get("LOGLEVEL", "WARNING"))
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pg", action="store_true")
    ap.add_argument("-n", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--warm", type=int, default=200)
    ap.add_argument("--profile", default="")
    ap.add_argument("--bookings", type=int, default=10000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mrh")
    cluster = None
    if a.pg:
        from mr_engine.testing.pgcluster import Cluster
        cluster = Cluster(durable=True); cluster.start()
        fs = bstore.FreshStore.create(cluster.url, pathlib.Path(work), "h")
        url = fs.url
    else:
        url = f"sqlite:///{work}/store.db"
    try:
        run(a, url, work)
    finally:
        if cluster: cluster.stop()

def run(a, url, work):
    now = utcnow()
    db0 = bstore.open_store(url)
    rid = bstore.create_resource(db0, bstore.RESOURCE, 1000, now)
    bstore.preload(db0, rid, bstore.booking_window_plan(a.bookings, now), now)
    db0.dispose()
    settings = load_settings({"database_url": url, "home": work}, environ={})
    db = open_database(url)
    stmts = [0]; log_sql = os.environ.get("LOGSQL")
    def _count(conn, cur, st, params, ctx, many):
        stmts[0] += 1
        if log_sql: print("SQL", st.replace("\n", " ")[:230])
    event.listen(db.engine, "before_cursor_execute", _count)
    committer = Committer(db, settings, clock=utcnow)
    zone = zoneinfo.ZoneInfo(settings.default_timezone)
    template = invite_template(bstore.resource_address())
    base = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    rng = random.Random(7)
    loop = asyncio.new_event_loop()
    def make(i):
        start = base + dt.timedelta(minutes=15 * rng.randrange(169 * 96))
        return invite(template, f"req-{i}@{DOMAIN}", start, start + dt.timedelta(hours=1), f"req.{i}@{DOMAIN}")
    def envelope(content):
        parsed = parse_message(content)
        env = Envelope(sender="organizer@remote.example", content=content, message=parsed,
                       message_id=message_id_of(parsed), peer="127.0.0.1", helo="x", client="127.0.0.1:1")
        env.invitation(zone)  # what the LMTP handler reads before the hand-off
        env.listing
        getattr(env, "authors", None)  # (not in older trees)
        return env
    def go(n, off, prof=None):
        bodies = [make(off + i) for i in range(n)]
        t0 = time.thread_time()
        envs = [envelope(b) for b in bodies]
        tparse = time.thread_time() - t0
        s0 = stmts[0]
        t0 = time.thread_time(); w0 = time.perf_counter()
        if prof: prof.enable()
        for k in range(0, n, a.batch):
            jobs = [DeliveryJob(e, bstore.resource_address(), rid, loop, loop.create_future()) for e in envs[k:k + a.batch]]
            committer._commit(jobs)
        if prof: prof.disable()
        tc = time.thread_time() - t0; wall = time.perf_counter() - w0
        return tparse / n * 1e6, tc / n * 1e6, (stmts[0] - s0) / n, wall / n * 1e6
    go(a.warm, 10**6)
    prof = cProfile.Profile(time.thread_time) if a.profile else None
    p, c, s, w = go(a.n, 0, prof)
    loop.run_until_complete(asyncio.sleep(0))
    print(f"{'pg' if a.pg else 'sqlite'} n={a.n} batch={a.batch}: parse {p:.0f} us/req, committer CPU {c:.0f} us/req, wall {w:.0f} us/req, statements {s:.2f}/req ({s*a.batch:.1f}/batch)")
    if prof:
        prof.dump_stats(a.profile)
        st = pstats.Stats(prof); st.sort_stats("cumulative")
        total = c * a.n / 1e6
        keys = {"booking.process": ("services/booking.py", "process"), "check (decide)": ("services/booking.py", "check"),
                "busy_intervals": ("calendar_store.py", "busy_intervals"),
                "reply build": ("core/reply.py", None), "outgoing": ("core/outgoing.py", None),
                "enqueue": ("store/outbox.py", "enqueue"), "commit": ("orm/session.py", "commit"),
                "flush": ("orm/session.py", "flush"), "file message": ("store/messages.py", None)}
        for name, (f, fn) in keys.items():
            best = 0
            for (file, line, func), (cc, nc, tt, ct, callers) in st.stats.items():
                if file.endswith(f) and (fn is None or func == fn):
                    best = max(best, ct)
            print(f"  {name:18s} {best / a.n * 1e6:8.0f} us/req (profiled)")
    committer.mail.close()
    db.dispose()

if __name__ == "__main__":
    main()
