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
counter, scraped from its /metrics before and after load 2.
"""

from __future__ import annotations

import os
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

    def stages(self) -> dict[str, float] | None:
        """The stage counters, summed over the workers; None when not scraped."""
        if self.metrics_url is None:
            return None
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
                return parse_stages(response.read().decode())
        except OSError:
            return None


@dataclass
class Meter:
    """Around one load: ``start()`` before, ``result(units)`` after."""

    engine: EngineCpu
    _threads: Threads = field(default_factory=Threads)
    _stages: dict[str, float] | None = None

    def start(self) -> "Meter":
        # Scraped before the threads are read (and after, once they have been: ``sides``
        # first), so that the scrape's own CPU stays out of the load's.
        self._stages = self.engine.stages()
        self._threads = self.engine.threads()
        return self

    def sides(self, units: int) -> dict[str, float]:
        """µs per unit of each side since ``start``."""
        return per_unit(self.engine.threads().since(self._threads), units)

    def stages(self, units: int) -> dict[str, dict[str, float]] | None:
        """µs per unit of each stage since ``start``, and their shares (%)."""
        after = self.engine.stages()
        if after is None or self._stages is None:
            return None
        spent = {stage: after[stage] - self._stages[stage] for stage in CPU_STAGES}
        return {"us": per_unit(spent, units), "percent": shares(spent)}


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
    return out
