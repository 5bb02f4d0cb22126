"""Thread names and CPU seconds by stage (``mr_engine.cpu_time``), and the benchmark's reading
of them (``bench.cpu_split``) from this test process's own /proc. No timing is asserted: the
stages run on a fake thread clock, and /proc figures are only checked to be there."""

from __future__ import annotations

import os
import sys
import threading
import types

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from bench import cpu_split
from mr_engine import cpu_time, metrics

LINUX = sys.platform.startswith("linux")


def _named_thread(name: str) -> tuple[int, threading.Event, threading.Thread]:
    """A thread that names itself ``name`` and waits; (its native id, the event ending it)."""
    ready, done, tid = threading.Event(), threading.Event(), []

    def body() -> None:
        cpu_time.name_thread(name)
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    ready.wait(10)
    return tid[0], done, thread


@pytest.mark.skipif(not LINUX, reason="thread names in /proc are Linux's")
def test_a_named_thread_shows_its_name_cut_to_15_bytes():
    tid, done, thread = _named_thread("committer-of-everything")
    try:
        with open(f"/proc/self/task/{tid}/comm") as fh:
            assert fh.read().strip() == "committer-of-ev"
    finally:
        done.set()
        thread.join()


def test_naming_where_proc_cannot_be_written_does_nothing(monkeypatch):
    monkeypatch.setattr(cpu_time.threading, "get_native_id", lambda: 0)  # no such task
    cpu_time.name_thread("committer")


def _value(stage: str) -> float:
    return metrics.CPU_SECONDS.labels(stage)._value.get()


@pytest.fixture
def clock(monkeypatch):
    """A thread clock the test advances by hand."""
    now = [100.0]
    monkeypatch.setattr(cpu_time, "time", types.SimpleNamespace(thread_time=lambda: now[0]))
    return now


def test_a_stage_charges_its_block_and_an_inner_stage_only_to_itself(clock):
    before = {stage: _value(stage) for stage in metrics.CPU_STAGES}
    with cpu_time.DECIDE:
        clock[0] += 2.0
        with cpu_time.REPLY_BUILD:
            clock[0] += 0.5
        clock[0] += 1.0
    assert _value("decide") - before["decide"] == pytest.approx(3.0)
    assert _value("reply_build") - before["reply_build"] == pytest.approx(0.5)
    assert _value("commit") == before["commit"] and _value("parse") == before["parse"]


def test_a_stage_left_by_an_exception_is_charged_and_closed(clock):
    before = _value("commit"), _value("parse")
    with pytest.raises(ValueError):
        with cpu_time.COMMIT:
            with cpu_time.PARSE:
                clock[0] += 1.0
                raise ValueError
    with cpu_time.COMMIT:
        clock[0] += 4.0
    assert _value("parse") - before[1] == pytest.approx(1.0)
    assert _value("commit") - before[0] == pytest.approx(4.0)  # not the parse's too
    assert cpu_time._open.frames == []


def test_stages_open_on_one_thread_are_not_seen_by_another(clock):
    seen = []
    with cpu_time.DECIDE:
        thread = threading.Thread(target=lambda: seen.append(list(cpu_time._open.frames)))
        thread.start()
        thread.join()
        assert len(cpu_time._open.frames) == 1
    assert seen == [[]]


# --- bench.cpu_split ------------------------------------------------------------------------

def test_a_stat_line_gives_the_name_and_utime_plus_stime():
    line = "4242 (a (b) c) S 1 2 3 0 -1 4194560 10 0 0 0 250 150 0 0 20 0 3 0 5 6 7\n"
    found = cpu_split.parse_stat(line)
    assert found.name == "a (b) c"
    assert found.seconds == pytest.approx(400 * cpu_split.TICK)


def test_sched_gives_the_runtime_in_seconds():
    text = ("python (4242, #threads: 3)\n---\nse.exec_start   :   5.0\n"
            "se.sum_exec_runtime                          :          1234.567890\n")
    assert cpu_split.parse_sched(text) == pytest.approx(1.23456789)
    assert cpu_split.parse_sched("no such line\n") is None


@pytest.mark.skipif(not LINUX, reason="/proc/<pid>/task is Linux's")
def test_this_process_threads_are_read_and_split_by_side():
    tid, done, thread = _named_thread(cpu_split.COMMITTER)
    try:
        pid = os.getpid()
        before = cpu_split.Threads.of([pid])
        sum(range(200_000))  # some CPU on the main thread, the "protocol side"
        after = cpu_split.Threads.of([pid])
    finally:
        done.set()
        thread.join()
    assert (pid, pid) in after.times and after.times[(pid, tid)].name == "committer"
    assert cpu_split.side(pid, pid, after.times[(pid, pid)].name) == "protocol"
    assert cpu_split.side(pid, tid, "committer") == "commit"
    assert cpu_split.side(pid, tid + 1, "asyncio_0") == "other"
    spent = after.since(before)
    assert set(spent) == set(cpu_split.SIDES) and all(s >= 0 for s in spent.values())
    assert cpu_split.Threads.of([2 ** 22 + 1]).times == {}  # no such process: nothing


def test_the_stage_counters_are_read_from_a_scrape():
    registry = CollectorRegistry()
    counter = Counter("mr_engine_cpu_seconds", "stages", ["stage"], registry=registry)
    counter.labels("decide").inc(0.25)
    counter.labels("commit").inc(0.75)
    stages = cpu_split.parse_stages(generate_latest(registry).decode())
    assert stages == {"parse": 0.0, "decide": 0.25, "reply_build": 0.0, "commit": 0.75}


def test_per_unit_and_shares():
    assert cpu_split.per_unit({"a": 0.003, "b": 0.001}, 10) == {"a": 300.0, "b": 100.0}
    assert cpu_split.per_unit({"a": 1.0}, 0) == {"a": 0.0}
    assert cpu_split.shares({"a": 3.0, "b": 1.0}) == {"a": 75.0, "b": 25.0}


def test_the_report_lines_name_each_side_and_stage():
    us = {"protocol": 800.0, "commit": 650.0, "other": 20.0}
    lines = cpu_split.delivery_lines([{"connections": 8, "recipients_per_message": 1,
                                       "cpu_us_per_message": us}, {"target": "sink"}])
    assert lines == ["CPU per delivery (one message, the engine's threads, warm-up "
                     "included): 8x1: protocol 800 µs, commit 650 µs (other threads 20 µs)"]
    stages = {"us": {"parse": 100.0, "decide": 200.0, "reply_build": 50.0, "commit": 650.0},
              "percent": {"parse": 10.0, "decide": 20.0, "reply_build": 5.0, "commit": 65.0}}
    lines = cpu_split.request_lines({"cpu_us_per_request": us, "cpu_stages_per_request": stages})
    assert lines[1] == ("CPU per request: parse 100 µs (10%), decide 200 µs (20%), reply "
                        "build 50 µs (5%), commit 650 µs (65%)")
    assert cpu_split.request_lines({}) == []
