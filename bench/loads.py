"""The four loads: plain delivery, meeting requests, conflict-check latency, peak memory.

Loads 1 and 2 go over LMTP to a running server (``client.run_load``), given the engine's
``cpu_split.EngineCpu`` also with its CPU time per transaction around them; load 3 runs the
conflict check in-process against the real database; load 4 is read from /proc by the
caller (``processes.Engine.vm_hwm_kb``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import statistics
import time
import zoneinfo
from dataclasses import dataclass, field

from sqlalchemy import func, select

from mr_engine.services.booking import check
from mr_engine.store.calendar_store import busy_intervals
from mr_engine.store.models import Mailbox, OutboundMessage
from mr_engine.core.recurrence import Instance

from . import store as bstore
from .client import LoadResult, percentile, run_load
from .cpu_split import EngineCpu, Meter
from .messages import DOMAIN, SENDER, invite, invite_template, plain_template, \
    with_message_id


@dataclass(frozen=True)
class Limits:
    connections: int
    max_messages: int
    duration: float
    warmup: int


# --- load 1: plain delivery -------------------------------------------------------------------

def load1(target: str, port: int, users: list[str], shapes: tuple[int, ...], limits: Limits,
          message_size: int, failures: list[str], cpu: EngineCpu | None = None) -> list[dict]:
    """Load 1's shapes against one server, a result each; refusals and errors are failures.
    With ``cpu`` (an engine's), each result has its CPU µs per message by side too."""
    results = []
    for rcpts in shapes:
        meter = Meter(cpu).start() if cpu is not None else None
        result = plain_delivery(target, port, users, rcpts, limits, message_size)
        results.append(result.as_dict())
        if meter is not None:
            results[-1]["cpu_us_per_message"] = meter.sides(sent(result, limits))
        if result.refused or result.errors:
            failures.append(f"load 1 on {target} ({rcpts} rcpt): {result.errors[:3]}")
    return results


def plain_delivery(target: str, port: int, users: list[str], recipients: int,
                   limits: Limits, message_size: int) -> LoadResult:
    """``limits.connections`` sessions, each message to ``recipients`` users of its own."""
    template = plain_template(message_size)
    run = f"{target}.{recipients}.{os.getpid()}.{time.monotonic_ns()}"

    def factory(index: int, seq: int) -> tuple[list[str], bytes]:
        rcpts = [users[(index * recipients + j) % len(users)] for j in range(recipients)]
        return rcpts, with_message_id(template, f"{run}.{index}.{seq}@{DOMAIN}")

    return asyncio.run(run_load(target, "127.0.0.1", port, limits.connections, recipients,
                                factory, limits.max_messages, limits.duration, limits.warmup,
                                SENDER))


def sent(load: LoadResult, limits: Limits) -> int:
    """The transactions a load sent: the measured ones and every connection's warm-up (the
    CPU time read around it covers both)."""
    return load.messages + load.connections * limits.warmup


# --- load 2: meeting requests -----------------------------------------------------------------

MEASURED = "Benchmark meeting"
WARMUP = "Warm-up meeting"


@dataclass
class MeetingResult:
    load: LoadResult
    accepted: int = 0  # replies "Accepted: ..." queued for measured requests
    declined: int = 0
    relayed: int = 0  # of those replies, sent to the smarthost when the load ended
    drain_seconds: float | None = None  # after the load, until the relay had sent them all
    left_queued: int = 0  # replies still queued when the drain wait gave up
    # CPU µs per request, by side and by stage; the store write lock's figures (SQLite)
    cpu: dict = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.accepted / self.load.seconds if self.load.seconds else 0.0

    def as_dict(self) -> dict:
        return {"requests_sent": self.load.messages, "accepted_and_answered": self.accepted,
                "declined": self.declined, "seconds": round(self.load.seconds, 3),
                "accepted_per_s": round(self.per_s, 1),
                "p50_ms": round(self.load.percentile_ms(50), 2),
                "p99_ms": round(self.load.percentile_ms(99), 2),
                "relayed_by_end": self.relayed, "refused": self.load.refused,
                "relay_drain_seconds": (round(self.drain_seconds, 2)
                                        if self.drain_seconds is not None else None),
                "still_queued_after_drain_wait": self.left_queued,
                "connections": self.load.connections, "errors": self.load.errors[:5],
                **self.cpu}


def relay_drain(database_url: str, timeout: float) -> tuple[float | None, int]:
    """Wait (at most ``timeout`` s) until the relay has sent every queued reply to the sink;
    returns (seconds it took or None, replies still queued)."""
    db = bstore.open_store(database_url)
    started = time.monotonic()
    try:
        while True:
            with db.read() as session:
                left = session.scalar(select(func.count()).select_from(OutboundMessage)
                                      .where(OutboundMessage.status == "queued")) or 0
            waited = time.monotonic() - started
            if left == 0:
                return waited, 0
            if waited >= timeout:
                return None, left
            time.sleep(0.25)
    finally:
        db.dispose()


def meeting_requests(port: int, database_url: str, resource: str, limits: Limits,
                     now: dt.datetime, cpu: EngineCpu | None = None) -> MeetingResult:
    """Single-instance one-hour REQUESTs at random quarter hours inside the booking window,
    each with its own UID; the resource's capacity is large, so every one should fit.
    With ``cpu``, the engine's CPU µs per request by side and by stage too."""
    template = invite_template(resource)
    warm = template.replace(MEASURED.encode(), WARMUP.encode())
    base = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    run = f"{os.getpid()}.{time.monotonic_ns()}"
    rngs = [random.Random(1000 + i) for i in range(limits.connections)]

    def factory(index: int, seq: int) -> tuple[list[str], bytes]:
        start = base + dt.timedelta(minutes=15 * rngs[index].randrange(169 * 96))
        body = invite(warm if seq < limits.warmup else template,
                      f"req-{run}-{index}-{seq}@{DOMAIN}", start,
                      start + dt.timedelta(hours=1), f"req.{run}.{index}.{seq}@{DOMAIN}")
        return [resource], body

    meter = Meter(cpu).start() if cpu is not None else None
    load = asyncio.run(run_load("mr-engine", "127.0.0.1", port, limits.connections, 1, factory,
                                limits.max_messages, limits.duration, limits.warmup, SENDER))
    result = MeetingResult(load)
    if meter is not None:
        result.cpu = {"cpu_us_per_request": meter.sides(sent(load, limits)),
                      "cpu_stages_per_request": meter.stages(sent(load, limits))}
        lock = meter.write_lock()
        if lock and lock["holds"]:  # SQLite's (PostgreSQL has no store-wide lock)
            result.cpu["write_lock"] = lock
    db = bstore.open_store(database_url)
    try:
        with db.read() as session:
            def count(*where) -> int:
                return session.scalar(select(func.count()).select_from(OutboundMessage)
                                      .where(*where)) or 0
            replies = OutboundMessage.subject.in_([f"Accepted: {MEASURED}",
                                                   f"Declined: {MEASURED}"])
            result.accepted = count(OutboundMessage.subject == f"Accepted: {MEASURED}")
            result.declined = count(OutboundMessage.subject == f"Declined: {MEASURED}")
            result.relayed = count(replies, OutboundMessage.status == "sent")
    finally:
        db.dispose()
    return result


# --- load 3: conflict-check latency -------------------------------------------------------------

@dataclass
class ConflictPoint:
    occurrences: int
    samples: list[float] = field(default_factory=list, repr=False)
    busy_found: int = 0
    preload_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"occurrences": self.occurrences, "repetitions": len(self.samples),
                "median_us": round(statistics.median(self.samples) * 1e6, 1),
                "p99_us": round(percentile(self.samples, 99) * 1e6, 1),
                "busy_intervals_found": self.busy_found,
                "preload_seconds": round(self.preload_seconds, 2)}


CONFLICT_METHOD = ("in-process against the real database: mr_engine.services.booking.check "
                   "(calendar_store.busy_intervals + policy.decide) for a single one-hour instance "
                   "in the middle of the calendar, each in its own read transaction; "
                   "median of the repetitions")


def conflict_latency(database_url: str, sizes: list[int], repetitions: int,
                     now: dt.datetime) -> list[ConflictPoint]:
    """One resource per size, its calendar a steady density of bookings (two at a time)
    spread in time around ``middle``; the check is timed alone, not the transaction."""
    middle = (now + dt.timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    zone = zoneinfo.ZoneInfo("UTC")
    db = bstore.open_store(database_url)
    points = []
    try:
        for size in sizes:
            point = ConflictPoint(size)
            rid = bstore.create_resource(db, f"calendar{size}", capacity=1000, now=now)
            t0 = time.perf_counter()
            _, made = bstore.preload(db, rid, bstore.dense_plan(size, middle, str(size)), now)
            point.preload_seconds = time.perf_counter() - t0
            assert made == size, (made, size)
            for rep in range(repetitions + 10):
                start = middle + dt.timedelta(minutes=30 * (rep % 48) - 12 * 60 + 7)
                instance = Instance(None, start, start + dt.timedelta(hours=1), "check",
                                    False, False)
                with db.read() as session:
                    resource = session.get(Mailbox, rid)
                    t = time.perf_counter()
                    decision = check(session, resource, [instance], False, None, now, zone)
                    elapsed = time.perf_counter() - t
                if not decision.accepted:
                    raise AssertionError(f"conflict check declined: {decision.reasons}")
                if rep >= 10:  # the first ones warm caches and compiled statements
                    point.samples.append(elapsed)
            with db.read() as session:  # what the check saw (the same for every instance)
                point.busy_found = len(busy_intervals(session, session.get(Mailbox, rid),
                                                      instance.start, instance.end, None))
            points.append(point)
    finally:
        db.dispose()
    return points
