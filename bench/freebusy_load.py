"""Load 5: free/busy over HTTP, mr-engine's VFREEBUSY against Radicale 3's CalDAV REPORT.

An equipment resource of capacity 2 holds the series of ``equipment_plan`` (100,000
occurrences by default), bulk-loaded into a store of its own; ``mr-engine serve`` answers
``GET /freebusy/<address>.vfb?start=&end=`` on loopback. Radicale, started on loopback in
the run's temporary directory, holds the same series as calendar objects of one collection
and answers the free-busy-query REPORT (RFC 4791 §7.10). Both are driven by the same
client (``http_client``): ``clients`` connections, each asking for a 60-day range whose
start moves by a random number of seconds (up to a day) with every request, so a cache of
whole answers cannot stand in for the work; each side is bounded by time.

Checked once a run, on one range: the engine's periods against the benchmark's own sweep
at capacity 2 (busy where both units are taken), Radicale's against the sweep at capacity
1 (Radicale has no capacity: busy wherever any event is), and Radicale's against the
engine's for a capacity-1 twin of the resource holding the series that touch the range.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from icalendar import Calendar

from mr_engine.testing.processes import free_port

from . import equipment_plan as plan_
from . import radicale as rad
from . import store as bstore
from .equipment_plan import Period
from .http_client import READ_TIMEOUT, Connection, Request, Response, run_http_load
from .processes import Engine, StartError
from .store import Planned

RESOURCE = "lab-rig"
TWIN = "lab-rig-single"  # capacity 1, for comparing with Radicale
WINDOW = dt.timedelta(days=60)
JITTER_SECONDS = 86400
METHOD = (f"{WINDOW.days}-day range, its start moved by 0-{JITTER_SECONDS} s at random with "
          "every request; keep-alive HTTP/1.1 where the server keeps connections (Radicale's "
          "built-in server answers HTTP/1.0 and closes each: its requests include connecting)")


@dataclass(frozen=True)
class Limits:
    occurrences: int
    duration: float  # seconds, per server
    clients: int
    warmup: int  # uncounted requests per client


def run(base_url: str | None, workdir: Path, limits: Limits,
        now: dt.datetime) -> dict[str, Any]:
    """Both sides, the check and the figures; ``failures`` lists what went wrong."""
    series = plan_.plan(limits.occurrences, now)
    base = now.replace(second=0, microsecond=0) - dt.timedelta(days=7)
    figures: dict[str, Any] = {"method": METHOD, "window_days": WINDOW.days,
                               "limits": {"clients": limits.clients, "duration_s": limits.duration,
                                          "warmup_per_client": limits.warmup},
                               "calendar": _describe(series, base), "results": [],
                               "failures": []}
    answers: dict[str, Response] = {}  # the check range's answers, by who gave them
    store = bstore.FreshStore.create(base_url, workdir, "freebusy")
    try:
        figures["calendar"]["preload_seconds"] = _prepare(store.url, series, base, now)
        _engine_side(store.url, workdir, base, limits, figures, answers)
    finally:
        store.drop()
    _radicale_side(workdir, series, base, limits, now, figures, answers)
    figures["check"] = check(answers, series, base, figures["failures"])
    figures["ratio"] = _ratio(figures["results"])
    return figures


def _describe(series: list[Planned], base: dt.datetime) -> dict[str, Any]:
    slots = [slot for _, found, _ in series for slot in found]
    return {"resource": bstore.resource_address(RESOURCE), "capacity": plan_.CAPACITY,
            "series": len(series), "occurrences": len(slots),
            "weekday_series": sum("BYDAY" in rule for _, _, rule in series),
            "first": min(s for _, s, _ in slots).isoformat() if slots else None,
            "last": max(e for _, _, e in slots).isoformat() if slots else None,
            "in_check_range": sum(s < base + WINDOW and e > base for _, s, e in slots)}


def _prepare(db_url: str, series: list[Planned], base: dt.datetime,
             now: dt.datetime) -> float:
    """The resource with every series, and its capacity-1 twin with those near the check
    range, bulk-inserted before the server starts; the seconds it took."""
    db = bstore.open_store(db_url)
    t0 = time.monotonic()
    try:
        rid = bstore.create_resource(db, RESOURCE, plan_.CAPACITY, now)
        bstore.preload(db, rid, series, now)
        twin = bstore.create_resource(db, TWIN, 1, now)
        bstore.preload(db, twin, plan_.touching(series, base, base + WINDOW), now)
    finally:
        db.dispose()
    return round(time.monotonic() - t0, 2)


# --- the requests ---------------------------------------------------------------------------

def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def freebusy_get(address: str, start: dt.datetime) -> Request:
    return Request("GET", f"/freebusy/{address}.vfb?start={_iso(start)}&end="
                          f"{_iso(start + WINDOW)}")


def _moved(base: dt.datetime, rng: random.Random) -> dt.datetime:
    return base + dt.timedelta(seconds=rng.randrange(JITTER_SECONDS))


def _is_vfreebusy(response: Response) -> str | None:
    if response.status == 200 and b"BEGIN:VFREEBUSY" in response.body:
        return None
    return f"{response.status}: {response.body[:120]!r}"


def _drive(target: str, port: int, make: Callable[[dt.datetime], Request],
           base: dt.datetime, limits: Limits, failures: list[str]) -> dict[str, Any]:
    """The load on one server, each client with its own seeded sequence of range starts;
    its figures, with the machine's load average before it (other work on the cores)."""
    rngs = [random.Random(5000 + index) for index in range(limits.clients)]
    load_before = round(os.getloadavg()[0], 2)
    result = asyncio.run(run_http_load(
        target, port, limits.clients, lambda index, seq: make(_moved(base, rngs[index])),
        _is_vfreebusy, limits.duration, limits.warmup))
    if result.failed or result.errors or not result.requests:
        failures.append(f"load 5 on {target}: {result.requests} answered, "
                        f"{result.failed} wrong: {result.errors[:3]}")
    return {**result.as_dict(), "load_average_1min_before": load_before}


# --- the two sides --------------------------------------------------------------------------

def _engine_side(db_url: str, workdir: Path, base: dt.datetime, limits: Limits,
                 figures: dict[str, Any], answers: dict[str, Response]) -> None:
    # Load 5 queues no mail: the smarthost is a free port nothing listens on.
    engine = Engine(db_url, f"127.0.0.1:{free_port()}", workdir, "mr-engine-freebusy",
                    watch_memory=False)  # reading smaps would take the client's CPU
    try:
        address = bstore.resource_address(RESOURCE)
        answers["engine"] = fetch(engine.http_port, freebusy_get(address, base))
        answers["engine_capacity_1"] = fetch(
            engine.http_port, freebusy_get(bstore.resource_address(TWIN), base))
        figures["results"].append(_drive("mr-engine", engine.http_port,
                                         lambda start: freebusy_get(address, start), base,
                                         limits, figures["failures"]))
    finally:
        code = engine.stop()
        if code != 0:
            figures["failures"].append(f"load 5: mr-engine serve exited with {code} "
                                       f"(log: {engine.log})")


def _radicale_side(workdir: Path, series: list[Planned], base: dt.datetime, limits: Limits,
                   now: dt.datetime, figures: dict[str, Any],
                   answers: dict[str, Response]) -> None:
    figures["radicale_version"] = rad.version()
    if not rad.installed():
        figures["failures"].append(f"load 5: {rad.HINT}")
        return
    root = workdir / "radicale"
    root.mkdir()
    rad.write_collection(root / "collections", series, now)
    server = rad.Radicale(root)
    try:
        t0 = time.monotonic()  # the first REPORT also builds Radicale's item cache
        answers["radicale"] = fetch(server.port, rad.free_busy_query(base, base + WINDOW))
        figures["radicale_first_report_seconds"] = round(time.monotonic() - t0, 2)
        figures["results"].append(_drive(
            "radicale", server.port, lambda start: rad.free_busy_query(start, start + WINDOW),
            base, limits, figures["failures"]))
    finally:
        server.stop()


def fetch(port: int, request: Request) -> Response:
    async def once() -> Response:
        conn = Connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(conn.send(request), READ_TIMEOUT)
        finally:
            await conn.close()
    return asyncio.run(once())


# --- reading the answers --------------------------------------------------------------------

def busy_periods(body: bytes) -> tuple[list[Period], set[str]]:
    """The FREEBUSY periods of a VFREEBUSY (start/end or start/duration), and the FBTYPEs."""
    found: list[Period] = []
    kinds: set[str] = set()
    for component in Calendar.from_ical(body).walk("VFREEBUSY"):
        values = component.get("FREEBUSY", [])
        for prop in values if isinstance(values, list) else [values]:
            kinds.add(str(prop.params.get("FBTYPE", "BUSY")))
            found.extend(_period(p) for p in _each(prop))
    return plan_.merge(found), kinds


def _each(prop: Any) -> list[Any]:
    """A FREEBUSY value may list several periods (RFC 5545 §3.8.2.6)."""
    return list(prop.dt) if isinstance(prop.dt, list) else [prop]


def _period(prop: Any) -> Period:
    start, other = prop.dt if hasattr(prop, "dt") else prop
    end = start + other if isinstance(other, dt.timedelta) else other
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


# Who answered the check range, and at which capacity the plan's sweep must match it.
_EXPECTED = (("engine", plan_.CAPACITY), ("engine_capacity_1", 1), ("radicale", 1))


def check(answers: dict[str, Response], series: list[Planned], base: dt.datetime,
          failures: list[str]) -> dict[str, Any]:
    """Each answer against the plan, and Radicale's against the engine's capacity-1 twin."""
    found: dict[str, list[Period] | None] = {}
    out: dict[str, Any] = {"start": base.isoformat(), "end": (base + WINDOW).isoformat()}
    for name, capacity in _EXPECTED:
        if name in answers:
            expected = plan_.busy(series, base, base + WINDOW, capacity)
            out[name], found[name] = _verdict(answers[name], expected)
            if not out[name]["matches_plan"]:
                failures.append(f"load 5 check: {name} differs from the plan: {out[name]}")
    if "radicale" in found:
        out["radicale_equals_engine_capacity_1"] = same = (
            found["radicale"] is not None and found["radicale"] == found.get("engine_capacity_1"))
        if not same:
            failures.append("load 5 check: Radicale and the engine's capacity-1 twin differ")
    return out


def _verdict(response: Response,
             expected: list[Period]) -> tuple[dict[str, Any], list[Period] | None]:
    if response.status != 200:
        return {"status": response.status, "matches_plan": False,
                "periods_planned": len(expected)}, None
    found, kinds = busy_periods(response.body)
    return {"status": 200, "fbtypes": sorted(kinds), "periods_found": len(found),
            "busy_seconds_found": plan_.seconds(found), "periods_planned": len(expected),
            "busy_seconds_planned": plan_.seconds(expected),
            "matches_plan": found == expected}, found


def _ratio(results: list[dict]) -> float | None:
    """mr-engine's requests/s over Radicale's, from the counts (Radicale's rate is too
    small for its rounded figure)."""
    rate = {r["target"]: r["requests"] / r["seconds"] for r in results if r["seconds"]}
    if rate.get("mr-engine") and rate.get("radicale"):
        return round(rate["mr-engine"] / rate["radicale"], 1)
    return None
