"""``python -m bench``: start ``mr-engine serve`` on a fresh store and measure it.

The order of a run: make the store (users, the resource, its pre-loaded calendar), start the
SMTP sink the engine relays its replies to, start the engine, run load 1 (8x1 and 8x4) and
load 2 over LMTP while sampling the engine's memory (load 4), and stop it; then the same
three again on a store that has grown (load 6, ``grown_store``: a cached copy on SQLite, built
in the run's database on PostgreSQL; ``--no-grown`` skips it); with ``--ldap``,
load 1 again with ``user_plugin = ldap`` (``ldap_load``); then run load 1 against each
``--compare`` peer with the same client; then load 3 in-process on a store of its own; then
load 5 (free/busy over HTTP, against Radicale 3) on a store and an engine of its own.
Everything listens on 127.0.0.1 only, and every load is bounded in messages and seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mr_engine.clock import utcnow

from . import freebusy_load, grown_store, ldap_load, loads, report
from . import store as bstore
from .processes import DOVECOT_HINT, Dovecot, Engine, Sink, StartError, dovecot_binary

USERS = 32
CAPACITY = 1000
SHAPES = (1, 4)  # recipients per message in load 1
PEERS = ("dovecot", "sink")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", metavar="URL",
                   help="PostgreSQL server to create the fresh store databases on (default: "
                        "SQLite files in a temporary directory)")
    p.add_argument("--postgres", action="store_true",
                   help="start a throwaway PostgreSQL 15 cluster (fsync on) for this run")
    p.add_argument("--compare", action="append", default=[], metavar="PEER",
                   help="also run load 1 against 'dovecot' and/or 'sink' (repeatable or "
                        "comma-separated) and print the ratios")
    p.add_argument("--ldap", action="store_true",
                   help="also run load 1 with user_plugin = ldap (the same users in a "
                        "throwaway OpenLDAP slapd) and print it beside the db plugin's")
    p.add_argument("--smoke", action="store_true",
                   help="everything tiny, a few seconds in all (for CI; figures meaningless)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    p.add_argument("--connections", type=int, default=8, help="LMTP sessions (default 8)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds of each LMTP load, per target and shape (default 10)")
    p.add_argument("--messages", type=int, default=20000,
                   help="at most this many messages per load-1 shape (default 20000)")
    p.add_argument("--requests", type=int, default=5000,
                   help="at most this many meeting requests in load 2 (default 5000)")
    p.add_argument("--warmup", type=int, default=5,
                   help="uncounted transactions per connection before measuring (default 5)")
    p.add_argument("--message-size", type=int, default=2048, help="bytes (default 2048)")
    p.add_argument("--bookings", type=int, default=10000,
                   help="bookings pre-loaded for load 2, a quarter recurring (default 10000)")
    p.add_argument("--sizes", default="100,1000,10000,100000",
                   help="calendar sizes of load 3 in occurrences (default 100,1000,10000,100000)")
    p.add_argument("--repetitions", type=int, default=300,
                   help="conflict checks timed per size (default 300)")
    p.add_argument("--freebusy-occurrences", type=int, default=100000,
                   help="booked occurrences of load 5's resource, in series of 100 "
                        "(default 100000)")
    p.add_argument("--freebusy-duration", type=float, default=10.0,
                   help="seconds of load 5, per server (default 10)")
    p.add_argument("--freebusy-clients", type=int, default=8,
                   help="keep-alive HTTP clients of load 5 (default 8)")
    p.add_argument("--drain-wait", type=float, default=30.0,
                   help="after load 2, wait at most this long for the relay to send the "
                        "queued replies to the sink smarthost (default 30)")
    p.add_argument("--no-grown", action="store_true",
                   help="skip load 6 (loads 1, 2 and 4 again on a store grown to 200,000 "
                        "messages and 1,000,000 booked occurrences)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    return p


def _peers(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    peers = [p.strip() for item in args.compare for p in item.split(",") if p.strip()]
    for peer in peers:
        if peer not in PEERS:
            parser.error(f"--compare takes {' or '.join(PEERS)}, not {peer!r}")
    if "dovecot" in peers and dovecot_binary() is None:
        print(DOVECOT_HINT, file=sys.stderr)
        sys.exit(2)
    return list(dict.fromkeys(peers))


def _apply_smoke(args: argparse.Namespace) -> None:
    args.duration, args.messages, args.requests = 2.0, 16, 12
    args.warmup, args.bookings, args.repetitions = 1, 200, 20
    args.drain_wait = 5.0
    args.sizes = "100,1000"
    args.freebusy_occurrences, args.freebusy_duration = 500, 1.0


def _on_tmpfs(path: Path) -> bool:
    best, fstype = "", ""
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        return False
    return fstype in ("tmpfs", "ramfs")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    peers = _peers(args, parser)
    if args.smoke:
        _apply_smoke(args)
    if args.postgres and args.database_url:
        parser.error("--postgres and --database-url exclude each other")
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes wants comma-separated integers, got {args.sizes!r}")
    if not 1 <= args.connections <= 64 or not 1 <= args.freebusy_clients <= 64:
        parser.error("--connections and --freebusy-clients must be between 1 and 64")
    if args.freebusy_occurrences < 100 or args.freebusy_duration <= 0:
        parser.error("--freebusy-occurrences must be at least 100 (one series), "
                     "--freebusy-duration positive")
    if min(args.duration, args.messages, args.requests, args.repetitions) <= 0 or \
            args.warmup < 0 or not sizes or sizes[0] <= 0 or args.message_size < 512:
        parser.error("durations, counts and sizes must be positive (--message-size >= 512)")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url names a PostgreSQL server; SQLite always runs on a "
                     "fresh file in a temporary directory")

    workdir = Path(tempfile.mkdtemp(prefix="mr-engine-bench-"))
    cluster = None
    started = time.monotonic()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    try:
        base_url = args.database_url
        if args.postgres:
            from mr_engine.testing import pgcluster
            missing = pgcluster.binaries_missing()
            if missing:
                print(missing, file=sys.stderr)
                return 2
            cluster = pgcluster.Cluster()
            cluster.start()
            base_url = cluster.url
        figures = run(args, peers, sizes, base_url, workdir)
        figures["run"].update(started=started_at,
                              total_seconds=round(time.monotonic() - started, 1))
        figures["targets"] = report.targets(figures)
        print(report.render(figures))
        if args.json:
            print(report.as_json(figures))
        return 1 if figures["run"]["failures"] else 0
    except StartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        print(f"error: {' '.join(map(str, exc.cmd))} failed:\n{detail}", file=sys.stderr)
        return 1
    finally:
        if cluster is not None:
            cluster.stop()
        if args.keep:
            print(f"(kept {workdir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, peers: list[str], sizes: list[int], base_url: str | None,
        workdir: Path) -> dict[str, Any]:
    """All six loads; the figures as one dict (see ``report``)."""
    warnings: list[str] = []
    if _on_tmpfs(workdir):
        warnings.append(f"{workdir} is on tmpfs: fsync costs nothing there, durability "
                        "figures are not comparable to a disk")
    limits = loads.Limits(args.connections, args.messages, args.duration, args.warmup)
    store = bstore.FreshStore.create(base_url, workdir, "engine")
    try:
        figures = _engine_loads(args, limits, store, workdir)
    finally:
        store.drop()
    failures = figures["run"].pop("failures")
    if not args.no_grown:
        figures["load6"] = _grown_loads(args, limits, base_url, workdir, failures)
    if args.ldap:
        figures["load1"]["results"] += ldap_load.run(limits, USERS, SHAPES, args.message_size,
                                                     base_url, workdir, failures)
    figures["load1"]["results"] += _peer_loads(peers, limits, args.message_size, workdir,
                                               failures)
    figures["load1"]["ratios"] = report.ratios(figures["load1"]["results"])
    figures["load1"]["ldap_ratios"] = report.ldap_ratios(figures["load1"]["results"])
    if "load6" in figures:
        figures["load6"]["ratios"] = report.grown_ratios(figures)
    figures["load3"] = _calendar_load(base_url, workdir, sizes, args.repetitions)
    figures["load5"] = freebusy_load.run(base_url, workdir, freebusy_load.Limits(
        args.freebusy_occurrences, args.freebusy_duration, args.freebusy_clients, 1), utcnow())
    failures.extend(figures["load5"].pop("failures"))
    warnings.extend(f"FAILED: {f}" for f in failures)
    figures["run"].update({
        "database": store.backend, "mode": "smoke" if args.smoke else "full",
        "cpus": os.cpu_count(), "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "warnings": warnings, "failures": failures,
        "limits": {"connections": args.connections, "duration_s": args.duration,
                   "max_messages": args.messages, "max_requests": args.requests,
                   "warmup_per_connection": args.warmup}})
    return figures


def _cpu_model() -> str:
    """The processor's name as /proc/cpuinfo gives it (else the platform's guess)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _prepare(db_url: str, bookings: int) -> tuple[list[str], dict[str, Any]]:
    """Users, the resource and its pre-loaded calendar, written before the server starts."""
    now = utcnow()
    db = bstore.open_store(db_url)
    try:
        users = bstore.create_users(db, USERS, now)
        rid = bstore.create_resource(db, bstore.RESOURCE, CAPACITY, now)
        t0 = time.monotonic()
        n_bookings, n_occurrences = bstore.preload(
            db, rid, bstore.booking_window_plan(bookings, now), now)
    finally:
        db.dispose()
    return users, {"capacity": CAPACITY, "preloaded_bookings": n_bookings,
                   "preloaded_occurrences": n_occurrences,
                   "preload_seconds": round(time.monotonic() - t0, 2)}


def _engine_loads(args: argparse.Namespace, limits: loads.Limits, store: bstore.FreshStore,
                  workdir: Path) -> dict[str, Any]:
    """Loads 1 and 2 against ``mr-engine serve``, and its memory meanwhile (load 4)."""
    users, calendar = _prepare(store.url, args.bookings)
    failures: list[str] = []
    smarthost = Sink("smtp", workdir)  # takes the iTIP replies the relay sends
    try:
        engine = Engine(store.url, smarthost.address, workdir)
        try:
            load1 = loads.load1("mr-engine", engine.port, users, SHAPES, limits,
                                args.message_size, failures, engine.cpu())
            meeting = loads.meeting_requests(
                engine.port, store.url, bstore.resource_address(),
                loads.Limits(args.connections, args.requests, args.duration, args.warmup),
                utcnow(), engine.cpu())
            meeting.drain_seconds, meeting.left_queued = loads.relay_drain(
                store.url, args.drain_wait)
            vmhwm = engine.vm_hwm_kb()
            pss = engine.peak_pss_kb()
        finally:
            code = engine.stop()
            if code != 0:
                failures.append(f"mr-engine serve exited with {code} (log: {engine.log})")
    finally:
        smarthost.stop()
    if meeting.load.refused or meeting.accepted != meeting.load.messages:
        failures.append(f"load 2: {meeting.load.messages} requests, {meeting.accepted} "
                        f"accepted, {meeting.declined} declined, {meeting.load.refused} refused")
    return {
        "run": {"engine_command": engine.command, "engine_env": engine.inherited,
                "failures": failures},
        "load1": {"message_size": args.message_size, "results": load1},
        "load2": {**meeting.as_dict(), **calendar},
        "memory": {"vmhwm_kb": vmhwm, "vmhwm_mb": _mb(vmhwm),
                   "pss_peak_kb": pss, "pss_peak_mb": _mb(pss)},
    }


def _grown_loads(args: argparse.Namespace, limits: loads.Limits, base_url: str | None,
                 workdir: Path, failures: list[str]) -> dict[str, Any]:
    """Load 6: loads 1, 2 and 4 again, on a store that has grown (``grown_store``)."""
    store = bstore.FreshStore.create(base_url, workdir, "grown")
    try:
        grown = grown_store.provide(
            store.url, grown_store.SMOKE if args.smoke else grown_store.FULL)
        figures = _engine_loads(args, limits, store, workdir)
    finally:
        store.drop()
    failures.extend(f"load 6: {f}" for f in figures["run"]["failures"])
    return {"store": grown.as_dict(), "load1": figures["load1"]["results"],
            "load2": figures["load2"], "memory": figures["memory"]}


def _mb(kib: int | None) -> float | None:
    return round(kib * 1024 / 1e6, 1) if kib is not None else None


def _peer_loads(peers: list[str], limits: loads.Limits, message_size: int, workdir: Path,
                failures: list[str]) -> list[dict]:
    """Load 1 against each ``--compare`` peer, with the same client and the same users."""
    users = [bstore.user_address(i) for i in range(USERS)]
    results = []
    for peer in peers:
        server = Dovecot(workdir) if peer == "dovecot" else Sink("lmtp", workdir)
        try:
            results += loads.load1(peer, server.port, users, SHAPES, limits, message_size,
                                   failures)
        finally:
            server.stop()
    return results


def _calendar_load(base_url: str | None, workdir: Path, sizes: list[int],
                   repetitions: int) -> dict[str, Any]:
    """Load 3, in-process, on a store of its own."""
    calendar = bstore.FreshStore.create(base_url, workdir, "calendar")
    try:
        points = [p.as_dict() for p in loads.conflict_latency(
            calendar.url, sizes, repetitions, utcnow())]
    finally:
        calendar.drop()
    load3: dict[str, Any] = {"method": loads.CONFLICT_METHOD, "points": points}
    if len(points) > 1 and points[0]["median_us"]:
        load3["growth"] = {"smallest": points[0]["occurrences"],
                           "largest": points[-1]["occurrences"],
                           "ratio": round(points[-1]["median_us"] / points[0]["median_us"], 3)}
    return load3
