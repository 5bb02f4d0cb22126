"""The SQLite store's write lock counts how long it is held and waited for
(``mr_engine_store_write_held_seconds``, ``..._wait_seconds_total``), and the benchmark
reads those from a scrape (``bench.cpu_split.WriteLock``). Real SQLite, real threads; no
time is asserted beyond "more than none", except where a thread is made to wait."""

from __future__ import annotations

import threading

import pytest

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from bench import cpu_split
from mr_engine.store.db import open_database

HELD = "mr_engine_store_write_held_seconds"
WAIT = "mr_engine_store_write_wait_seconds_total"


def _now() -> cpu_split.WriteLock:
    return cpu_split.WriteLock.parse(generate_latest(REGISTRY).decode())


def test_each_write_transaction_is_one_hold(tmp_path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/store.db")
    try:
        before = _now()
        for _ in range(3):
            with db.write():
                pass
        after = _now()
    finally:
        db.dispose()
    assert after.holds - before.holds == 3
    assert after.held > before.held


def test_a_writer_that_waits_for_another_counts_its_wait(tmp_path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/store.db")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write():
            holding.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    try:
        before = _now()
        other.start()
        holding.wait(10)
        threading.Timer(0.2, release.set).start()
        with db.write():  # waits until the other lets go
            pass
        other.join(10)
        after = _now()
    finally:
        release.set()
        db.dispose()
    assert after.holds - before.holds == 2
    assert after.waited - before.waited >= 0.15  # the 0.2 s the other held on
    assert after.held - before.held >= 0.15


def test_a_postgresql_store_has_no_store_wide_lock(db_url) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite's lock: the tests above")
    db = open_database(db_url)
    try:
        before = _now()
        with db.write():
            pass
        assert _now().holds == before.holds
    finally:
        db.dispose()


def test_the_scrape_gives_the_share_held_and_the_mean_hold_and_wait() -> None:
    registry = CollectorRegistry()
    held = Histogram(HELD, "held", registry=registry)
    waited = Counter(WAIT.removesuffix("_total"), "waited", registry=registry)
    before = cpu_split.WriteLock.parse(generate_latest(registry).decode())
    assert before == cpu_split.WriteLock()
    for seconds in (0.25, 0.5, 0.75):
        held.observe(seconds)
    waited.inc(0.3)
    after = cpu_split.WriteLock.parse(generate_latest(registry).decode())
    assert after == cpu_split.WriteLock(held=1.5, holds=3, waited=0.3)
    assert after.since(before, 2.0) == {"held_share": 0.75, "holds": 3, "held_ms": 500.0,
                                        "wait_ms": 100.0}
    assert after.since(after, 0.0) == {"held_share": 0.0, "holds": 0, "held_ms": 0.0,
                                       "wait_ms": 0.0}


def test_the_report_line_says_the_share_held() -> None:
    lock = {"held_share": 0.899, "holds": 1067, "held_ms": 10.45, "wait_ms": 9.81}
    assert cpu_split.request_lines({"write_lock": lock}) == [
        "store write lock (SQLite's one writer, all workers): held 90% of the load's time, "
        "1067 holds of 10.4 ms, 9.8 ms waited for each"]
    assert cpu_split.request_lines({"write_lock": {**lock, "holds": 0}}) == []
