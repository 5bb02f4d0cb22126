"""The engine's Prometheus metrics, defined once, and the scrape that exposes them.

Every layer may count here (it imports only prometheus_client and the standard library).
Names follow the Prometheus conventions: the ``mr_engine_`` prefix, ``_total`` on counters
(prometheus_client adds it), base units in the name (``_seconds``).

With worker processes (``mr-engine serve``, ``workers`` > 1) each worker writes its values
to files in ``PROMETHEUS_MULTIPROC_DIR``, which the supervisor creates before forking
(``delivery.metric_files``); prometheus_client chooses that mode when it is first imported,
so the variable must be set before then. A scrape, answered by any one worker, then adds up
every worker's files. Without the variable (one process, or a server in a test) the values
are this process's own.

What a delivery does inside its transaction (a booking, an auto-reply) is a ``Count`` held
until that transaction has committed: the group committer may run a batch twice (see
``delivery.committer``), and a rolled-back delivery did nothing worth counting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The answers an LMTP recipient gets (RFC 2033 §4.2: one per recipient after DATA).
DELIVERY_OUTCOMES = ("delivered", "duplicate", "refused", "temporary_failure")

DELIVERIES = Counter(
    "mr_engine_deliveries", "LMTP recipients answered, by outcome", ["outcome"])
LMTP_SESSIONS = Counter("mr_engine_lmtp_sessions", "LMTP sessions opened")
# livesum: the sessions of live workers only (a dead worker's are gone with it).
LMTP_SESSIONS_OPEN = Gauge("mr_engine_lmtp_sessions_open", "LMTP sessions open now",
                           multiprocess_mode="livesum")
# Group commit makes most answers take one fsync: a few ms on SSDs, up to a second on disks.
DELIVERY_SECONDS = Histogram(
    "mr_engine_delivery_seconds", "Seconds from the end of DATA to the answers",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MEETING_REQUESTS = Counter(
    "mr_engine_meeting_requests", "Meeting requests processed for resources, by decision",
    ["outcome"])
RELAY_ATTEMPTS = Counter(
    "mr_engine_relay_attempts",
    "Outbound messages attempted by the relay, by result (a partly refused message once "
    "for each result)", ["result"])
OOF_SENT = Counter("mr_engine_oof_replies_sent", "Out-of-office replies queued")
OOF_SUPPRESSED = Counter(
    "mr_engine_oof_replies_suppressed",
    "Messages to a user out of office that got no reply, by reason", ["reason"])

# The stages of ``mr_engine.cpu_time``: a meeting request's calendar read, its decision and
# its reply's composition, and the rest of the commit side (every delivery's transaction).
CPU_STAGES = ("parse", "decide", "reply_build", "commit")
CPU_SECONDS = Counter(
    "mr_engine_cpu_seconds",
    "CPU seconds of the delivery's stages: a meeting request's calendar parse, decision and "
    "reply build, and the rest of the commit side (transactions and COMMITs)", ["stage"])

# SQLite's one writer at a time (``store.db.WriterLock``, every worker and the CLI): held
# most of the time, it is what bounds the write rate. Group commit makes a hold a batch.
STORE_WRITE_HELD_SECONDS = Histogram(
    "mr_engine_store_write_held_seconds",
    "Seconds each write transaction held the SQLite store's write lock (all workers take "
    "turns on it)", buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
STORE_WRITE_WAIT_SECONDS = Counter(
    "mr_engine_store_write_wait_seconds",
    "Seconds writers waited for the SQLite store's write lock, summed over the writers")

for _stage in CPU_STAGES:
    CPU_SECONDS.labels(_stage)
for _outcome in DELIVERY_OUTCOMES:  # zeros from the start, so rates exist before the first
    DELIVERIES.labels(_outcome)


@dataclass(frozen=True)
class Count:
    """One increment of a counter, held until the transaction it describes has committed."""

    counter: Counter
    labels: tuple[str, ...] = ()

    def record(self) -> None:
        (self.counter.labels(*self.labels) if self.labels else self.counter).inc()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class _ThisProcess(Collector):
    """This process's metrics (the default registry), as a part of a scrape's registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _Fixed(Collector):
    """Metrics computed for one scrape (from the database: the same whichever worker)."""

    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def queue_depth(by_status: Mapping[str, int]) -> Collector:
    gauge = GaugeMetricFamily("mr_engine_outbound_queue_messages",
                              "Messages in the outbound queue, by status", labels=["status"])
    for status, count in sorted(by_status.items()):
        gauge.add_metric([status], count)
    return _Fixed(gauge)


def exposition(accept: str | None, *extra: Collector) -> tuple[bytes, str]:
    """(body, Content-Type): every worker's metrics (or this process's) and ``extra``, in
    the format the scraper's Accept header asks for (the Prometheus text format unless it
    asks for OpenMetrics), as prometheus_client's own HTTP handlers choose it."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
