"""A fresh store for the benchmark, its users and resource, and fast calendar pre-loading.

SQLite: a new file in the run's temporary directory. PostgreSQL: a new database created on
the server named by ``--database-url`` (the URL's database is only used to connect) and
dropped afterwards. Users and the resource are made with the engine's own directory
service; bookings are pre-loaded with SQLAlchemy Core bulk inserts into ``bookings`` and
``occurrences``, exactly the rows ``mr_engine.services.booking`` writes (each booking's
VCALENDAR included), plus the resource's ``longest_occurrence`` that bounds the conflict
query and its ``calendar_version``.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from sqlalchemy import case, create_engine, insert, text, update
from sqlalchemy.engine import make_url

from mr_engine.store import directory
from mr_engine.store.db import Database, open_database
from mr_engine.store.models import Booking, Mailbox, Occurrence

from . import ical
from .messages import DOMAIN, ORGANIZER

RESOURCE = "projectors"
CHUNK = 5000  # rows per bulk insert



@dataclass
class FreshStore:
    """A database that exists only for this run."""

    url: str
    backend: str  # "sqlite" | "postgresql"
    _admin_url: str | None = None
    _name: str | None = None

    @classmethod
    def create(cls, base_url: str | None, workdir: Path, label: str) -> "FreshStore":
        if not base_url or base_url.startswith("sqlite"):
            return cls(f"sqlite:///{workdir / (label + '.db')}", "sqlite")
        url = make_url(base_url)
        name = f"mr_bench_{os.getpid()}_{label}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        return cls(url.set(database=name).render_as_string(hide_password=False),
                   url.get_backend_name(), base_url, name)

    def drop(self) -> None:
        if self._admin_url is None:
            return  # SQLite files go with the temporary directory
        admin = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def user_address(i: int) -> str:
    return f"user{i:03d}@{DOMAIN}"


def resource_address(name: str = RESOURCE) -> str:
    return f"{name}@{DOMAIN}"


def create_users(db: Database, count: int, now: dt.datetime) -> list[str]:
    with db.write() as session:
        for i in range(count):
            directory.create_user(session, name=f"user{i:03d}", email=user_address(i),
                                  fullname=f"Bench User {i}", now=now)
    return [user_address(i) for i in range(count)]


def create_resource(db: Database, name: str, capacity: int, now: dt.datetime) -> int:
    """An equipment resource that auto-accepts and declines conflicts; returns its id."""
    with db.write() as session:
        mailbox = directory.create_user(session, name=name, email=resource_address(name),
                                        fullname=f"Bench {name}", now=now)
        directory.update_user(session, mailbox, resource_type="equipment",
                              resource_capacity=capacity, mr_accept=True,
                              mr_decline_conflict=True)
        return mailbox.id


# A booking to pre-load: its UID, its occurrences as (recurrence_id, start, end), and its
# RRULE value ("" for a single meeting) that yields exactly those occurrences.
Slot = tuple[dt.datetime | None, dt.datetime, dt.datetime]
Planned = tuple[str, list[Slot], str]


def preload(db: Database, resource_id: int, bookings: Iterable[Planned],
            now: dt.datetime) -> tuple[int, int]:
    """Insert the bookings and their occurrences; returns (bookings, occurrences).

    As the booking path leaves them: each booking keeps its VCALENDAR, every occurrence is
    materialized (no horizon), and the resource's ``longest_occurrence`` and
    ``calendar_version`` (one change: a free/busy cache must not serve the old calendar)
    are raised."""
    n_bookings = n_occurrences = longest = 0
    with db.write() as session:
        for chunk in _chunks(bookings, CHUNK):
            rows = [{"resource_id": resource_id, "uid": uid, "sequence": 0, "dtstamp": now,
                     "organizer": ORGANIZER, "summary": ical.SUMMARY,
                     "calendar": _calendar(uid, slots, rule, now), "horizon": None,
                     "status": "booked", "created_at": now, "updated_at": now}
                    for uid, slots, rule in chunk]
            ids = session.scalars(insert(Booking).returning(
                Booking.id, sort_by_parameter_order=True), rows).all()
            occ = [{"booking_id": bid, "resource_id": resource_id, "recurrence_id": rid,
                    "start": start, "end": end, "summary": ical.SUMMARY,
                    "transparent": False, "status": "booked"}
                   for bid, (_, slots, _) in zip(ids, chunk) for rid, start, end in slots]
            for part in _chunks(occ, CHUNK):
                session.execute(insert(Occurrence), part)
            longest = max([longest] + [int((o["end"] - o["start"]).total_seconds())
                                       for o in occ])
            n_bookings += len(chunk)
            n_occurrences += len(occ)
        session.execute(update(Mailbox).where(Mailbox.id == resource_id).values(
            longest_occurrence=case((Mailbox.longest_occurrence < longest, longest),
                                     else_=Mailbox.longest_occurrence),
            calendar_version=Mailbox.calendar_version + 1))
    return n_bookings, n_occurrences


def _calendar(uid: str, slots: list[Slot], rule: str, now: dt.datetime) -> str:
    return ical.booked_calendar(ical.vevent(uid, slots[0][1], slots[0][2], rule, now))


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def booking_window_plan(count: int, now: dt.datetime, seed: int = 6,
                        window_days: int = 175, series_length: int = 8) -> Iterator[Planned]:
    """``count`` bookings inside the booking window, a quarter of them weekly series.

    Singles last 30, 60 or 90 minutes at a random quarter hour; a series has
    ``series_length`` weekly occurrences that all fall inside the window.
    """
    rng = random.Random(seed)
    base = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    quarters = window_days * 96
    series_quarters = quarters - series_length * 7 * 96
    for i in range(count):
        minutes = rng.choice((30, 60, 90))
        if i % 4 == 3:
            first = base + dt.timedelta(minutes=15 * rng.randrange(series_quarters))
            starts = [first + dt.timedelta(weeks=w) for w in range(series_length)]
            slots = [(s, s, s + dt.timedelta(minutes=minutes)) for s in starts]
            rule = f"FREQ=WEEKLY;COUNT={series_length}"
        else:
            start = base + dt.timedelta(minutes=15 * rng.randrange(quarters))
            slots, rule = [(None, start, start + dt.timedelta(minutes=minutes))], ""
        yield f"preload-{i}@{DOMAIN}", slots, rule


def dense_plan(occurrences: int, middle: dt.datetime, label: str) -> Iterator[Planned]:
    """A calendar that grows in time at a steady density: a one-hour booking every half
    hour (two at a time), ``occurrences`` of them centred on ``middle``. A quarter of the
    bookings are series of four weekly occurrences, interleaved with the singles."""
    step = dt.timedelta(minutes=30)
    first = middle - step * (occurrences // 2)
    taken: set[int] = set()
    n = 0
    for slot in range(occurrences):
        if slot in taken:
            continue
        start = first + step * slot
        weekly = [slot + k * 336 for k in range(4)]  # 336 half hours in a week
        if n % 4 == 3 and weekly[-1] < occurrences and not taken.intersection(weekly):
            taken.update(weekly)
            slots = [(first + step * s, first + step * s, first + step * s + 2 * step)
                     for s in weekly]
            rule = f"FREQ=WEEKLY;COUNT={len(weekly)}"
        else:
            taken.add(slot)
            slots, rule = [(None, start, start + 2 * step)], ""
        n += 1
        yield f"dense-{label}-{slot}@{DOMAIN}", slots, rule


def open_store(url: str) -> Database:
    return open_database(url, pool_size=2)
