"""Where the engine's CPU goes: its threads' CPU time from /proc, and its stage counters.

Each worker of ``mr-engine serve`` runs the LMTP event loop in its main thread (the
protocol side) and a thread named ``committer`` (``mr_engine.cpu_time.name_thread``: the
commit side); other threads (the executor's: directory lookups, the relay) are "other".
A ``Threads`` snapshot holds every thread's CPU seconds; two of them, around a load,
divided by the transactions it sent, give µs per delivery for each side.

A thread's CPU time is read from /proc/<pid>/task/<tid>/sched (``se.sum_exec_runtime``,
nanoseconds) where the kernel has it, else from .../stat (utime + stime, in clock ticks:
10 ms, too coarse for a smoke run's few messages).

The meeting-request stages are the engine's ``mr_engine_cpu_seconds_total{stage}``
counter, scraped from its /metrics before and after load 2, and so is the SQLite store's
write lock (``mr_engine_store_write_held_seconds``, ``..._wait_seconds_total``): the share
of the load's time it was held says whether the one writer at a time is the bound.
"""

from __future__ import annotations

import os
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Mapping

from prometheus_client.parser import text_string_to_metric_families

from mr_engine.metrics import CPU_STAGES

SIDES = ("protocol", "commit", "other")
COMMITTER = "committer"
TICK = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ThreadTime:
    name: str  # the thread's comm
    seconds: float


def parse_stat(text: str) -> ThreadTime:
    """A /proc/.../stat line: the name (in parentheses, may hold any character) and
    utime + stime (fields 14 and 15) in seconds."""
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    return ThreadTime(name, (int(fields[11]) + int(fields[12])) * TICK)


def parse_sched(text: str) -> float | None:
    """``se.sum_exec_runtime`` (milliseconds) of a /proc/.../sched file, in seconds."""
    for line in text.splitlines():
        if line.startswith("se.sum_exec_runtime"):
            return float(line.split(":", 1)[1]) / 1000.0
    return None


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:  # the thread (or process) has ended
        return None


def thread_time(pid: int, tid: int) -> ThreadTime | None:
    stat = _read(f"/proc/{pid}/task/{tid}/stat")
    if stat is None:
        return None
    found = parse_stat(stat)
    sched = _read(f"/proc/{pid}/task/{tid}/sched")
    precise = parse_sched(sched) if sched is not None else None
    return found if precise is None else ThreadTime(found.name, precise)


def side(pid: int, tid: int, name: str) -> str:
    if tid == pid:
        return "protocol"
    return "commit" if name == COMMITTER else "other"


@dataclass(frozen=True)
class Threads:
    """Every thread's CPU seconds, by (process id, thread id), at one moment."""

    times: Mapping[tuple[int, int], ThreadTime] = field(default_factory=dict)

    @classmethod
    def of(cls, pids: list[int]) -> "Threads":
        times = {}
        for pid in pids:
            try:
                tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                continue
            for tid in tids:
                found = thread_time(pid, tid)
                if found is not None:
                    times[(pid, tid)] = found
        return cls(times)

    def since(self, before: "Threads") -> dict[str, float]:
        """CPU seconds of each side from ``before`` to this snapshot."""
        spent = dict.fromkeys(SIDES, 0.0)
        for (pid, tid), now in self.times.items():
            earlier = before.times.get((pid, tid))
            spent[side(pid, tid, now.name)] += now.seconds - (earlier.seconds if earlier else 0)
        return spent


def parse_stages(text: str) -> dict[str, float]:
    """The CPU seconds of each stage in a /metrics scrape (0 for a stage not there)."""
    stages = dict.fromkeys(CPU_STAGES, 0.0)
    for family in text_string_to_metric_families(text):
        if family.name != "mr_engine_cpu_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("stage") in stages:
                stages[sample.labels["stage"]] += sample.value
    return stages


_HELD = "mr_engine_store_write_held_seconds"  # a histogram: _sum and _count
_WAIT = "mr_engine_store_write_wait_seconds_total"


@dataclass(frozen=True)
class WriteLock:
    """The store write lock's counters in one scrape, summed over the workers."""

    held: float = 0.0  # seconds held
    holds: float = 0.0  # write transactions that held it
    waited: float = 0.0  # seconds waited for it, summed over the writers

    @classmethod
    def parse(cls, text: str) -> "WriteLock":
        found = {_HELD + "_sum": 0.0, _HELD + "_count": 0.0, _WAIT: 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in found:
                    found[sample.name] += sample.value
        return cls(found[_HELD + "_sum"], found[_HELD + "_count"], found[_WAIT])

    def since(self, before: "WriteLock", seconds: float) -> dict[str, float]:
        """From ``before`` to this scrape, ``seconds`` apart: the share of that time it was
        held, the holds, and the mean ms a hold held it and a writer waited."""
        holds = self.holds - before.holds
        return {"held_share": round((self.held - before.held) / seconds, 3) if seconds else 0.0,
                "holds": int(holds),
                "held_ms": round((self.held - before.held) * 1e3 / holds, 2) if holds else 0.0,
                "wait_ms": round((self.waited - before.waited) * 1e3 / holds, 2) if holds else 0.0}


def per_unit(spent: Mapping[str, float], units: int) -> dict[str, float]:
    """µs of each key per unit (0 without units)."""
    return {key: round(s * 1e6 / units, 1) if units else 0.0 for key, s in spent.items()}


def shares(spent: Mapping[str, float]) -> dict[str, float]:
    """Each key's percentage of the total."""
    total = sum(spent.values())
    return {key: round(100 * s / total, 1) if total else 0.0 for key, s in spent.items()}


@dataclass
class EngineCpu:
    """What to read of one running engine: its workers (``pids``) and its /metrics."""

    pids: Callable[[], list[int]]
    metrics_url: str | None = None

    def threads(self) -> Threads:
        return Threads.of(self.pids())

    def scrape(self) -> str | None:
        """Its /metrics (every worker's counters summed); None when not scraped."""
        if self.metrics_url is None:
            return None
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
                return response.read().decode()
        except OSError:
            return None


@dataclass
class Meter:
    """Around one load: ``start()`` before, ``result(units)`` after."""

    engine: EngineCpu
    _threads: Threads = field(default_factory=Threads)
    _scraped: str | None = None
    _started: float = 0.0
    _ended: tuple[str | None, float] | None = None  # the scrape after, and when

    def start(self) -> "Meter":
        # Scraped before the threads are read (and after, once they have been: ``sides``
        # first), so that the scrape's own CPU stays out of the load's.
        self._scraped = self.engine.scrape()
        self._started = time.monotonic()
        self._threads = self.engine.threads()
        return self

    def sides(self, units: int) -> dict[str, float]:
        """µs per unit of each side since ``start``."""
        return per_unit(self.engine.threads().since(self._threads), units)

    def stages(self, units: int) -> dict[str, dict[str, float]] | None:
        """µs per unit of each stage since ``start``, and their shares (%)."""
        after, _ = self._after()
        if after is None or self._scraped is None:
            return None
        before, now = parse_stages(self._scraped), parse_stages(after)
        spent = {stage: now[stage] - before[stage] for stage in CPU_STAGES}
        return {"us": per_unit(spent, units), "percent": shares(spent)}

    def write_lock(self) -> dict[str, float] | None:
        """The store write lock since ``start`` (``WriteLock.since``)."""
        after, ended = self._after()
        if after is None or self._scraped is None:
            return None
        return WriteLock.parse(after).since(WriteLock.parse(self._scraped),
                                            ended - self._started)

    def _after(self) -> tuple[str | None, float]:
        """The scrape after the load, made once for ``stages`` and ``write_lock``."""
        if self._ended is None:
            self._ended = (self.engine.scrape(), time.monotonic())
        return self._ended


# --- the report's lines -----------------------------------------------------------------------

STAGE_WORDS = {"parse": "parse", "decide": "decide", "reply_build": "reply build",
               "commit": "commit"}


def _sides_text(us: Mapping[str, float]) -> str:
    return (f"protocol {us['protocol']:.0f} µs, commit {us['commit']:.0f} µs "
            f"(other threads {us['other']:.0f} µs)")


def delivery_lines(results: list[dict]) -> list[str]:
    """Load 1: the engine's CPU per message of each shape, by side."""
    parts = [f"{r['connections']}x{r['recipients_per_message']}: "
             f"{_sides_text(r['cpu_us_per_message'])}"
             for r in results if r.get("cpu_us_per_message")]
    if not parts:
        return []
    return ["CPU per delivery (one message, the engine's threads, warm-up included): "
            + "; ".join(parts)]


def request_lines(load2: Mapping) -> list[str]:
    """Load 2: the engine's CPU per request, by side and by stage (with shares)."""
    out = []
    if load2.get("cpu_us_per_request"):
        out.append(f"CPU per request by thread: {_sides_text(load2['cpu_us_per_request'])}")
    stages = load2.get("cpu_stages_per_request")
    if stages:
        out.append("CPU per request: " + ", ".join(
            f"{STAGE_WORDS[s]} {stages['us'][s]:.0f} µs ({stages['percent'][s]:.0f}%)"
            for s in CPU_STAGES))
    lock = load2.get("write_lock")
    if lock and lock["holds"]:
        out.append(f"store write lock (SQLite's one writer, all workers): held "
                   f"{lock['held_share']:.0%} of the load's time, {lock['holds']} holds of "
                   f"{lock['held_ms']:.1f} ms, {lock['wait_ms']:.1f} ms waited for each")
    return out
