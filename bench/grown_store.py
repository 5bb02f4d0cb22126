"""Load 6's store: one that has grown, built with bulk inserts and cached between runs.

The growth is what a year of use leaves behind, beside the benchmark's own users and
resource (which ``bench.main`` adds to it, as to the fresh store, so loads 1 and 2 are the
same): ``mailboxes`` users, each with a store (its default folders, its size the sum of its
messages') holding ``messages / mailboxes`` messages in the Inbox, and ``resources`` rooms
with ``occurrences / resources`` booked occurrences each, one hour every twelve, centred on
the build's time: three quarters of them in weekly series of ten, the rest single meetings,
each booking with its VCALENDAR as the booking path keeps it. The messages' Message-ID
claims (``delivered_ids``) are not there: the maintenance loop forgets them after the dedupe
window, so a store that has grown keeps only the recent ones.

SQLite: built once into a file in ``tempfile.gettempdir()/mr-engine-bench-cache/``, named by
the schema revision, this generator's version and its parameters (``Growth.key``); each run
copies it, as the loads write. PostgreSQL: built again in the run's database every time
(no cache; a database cannot be copied as cheaply).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select
from sqlalchemy.engine import make_url

from mr_engine.core.resource_settings import defaults
from mr_engine.store.db import HEAD_REVISION, upgrade
from mr_engine.store.models import Booking, Folder, Mailbox, Message, Occurrence, Store
from mr_engine.store.stores import DEFAULT_FOLDERS, INBOX

from . import ical
from .messages import DOMAIN, ORGANIZER, SENDER

VERSION = 1  # raise when the generator changes what it writes: the cache key changes
CHUNK = 5000  # rows per bulk insert
STEP = dt.timedelta(hours=12)  # one occurrence every twelve hours per room, an hour long
MEETING = dt.timedelta(hours=1)
SERIES = 10  # occurrences of a weekly series
WEEK_SLOTS = 14  # slots of STEP in a week
SERIES_PER_BLOCK = 10  # of the WEEK_SLOTS offsets of a block of SERIES weeks; the rest single
# Cached files of another generation are removed; other sizes of this one (the smoke run's)
# are kept beside it.
GENERATION = f"rev{HEAD_REVISION}-v{VERSION}"
CACHE = Path(tempfile.gettempdir()) / "mr-engine-bench-cache"


@dataclass(frozen=True)
class Growth:
    """How much the store has grown: the generator's parameters."""

    mailboxes: int = 10_000
    messages: int = 200_000
    resources: int = 1_000
    occurrences: int = 1_000_000
    body_size: int = 2048

    @property
    def key(self) -> str:
        """What the cached file is named by: schema, generator and parameters."""
        return (f"{GENERATION}-{self.mailboxes}mb-{self.messages}msg-"
                f"{self.resources}res-{self.occurrences}occ-{self.body_size}b")


FULL = Growth()
SMOKE = Growth(mailboxes=20, messages=200, resources=2, occurrences=600)  # series too


@dataclass
class Grown:
    """The grown store a run works on, and where it came from."""

    key: str
    counts: dict[str, int]
    cache: str  # "used", "built", or why there is none
    build_seconds: float  # building it, now or when the cache was made
    copy_seconds: float | None = None  # copying the cached file for this run, with its fsync

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def provide(url: str, growth: Growth, cache_dir: Path = CACHE) -> Grown:
    """The grown store at ``url`` (a new SQLite file or an empty PostgreSQL database)."""
    if make_url(url).get_backend_name() != "sqlite":
        return _build_in_place(url, growth)
    target = Path(make_url(url).database or "")
    cached, meta = _cached(cache_dir, growth)
    fresh = meta is None
    if fresh:
        meta = _build_cache(cache_dir, growth)
    t0 = time.monotonic()
    _copy_durably(cached, target)
    return Grown(growth.key, meta["counts"], "built" if fresh else "used",
                 meta["build_seconds"], round(time.monotonic() - t0, 2))


def _copy_durably(source: Path, target: Path) -> None:
    """Copy, then fsync: else the kernel writes the copy's gigabyte back while load 1 runs,
    and the engine's fsyncs wait behind it (load 1 would measure the copy)."""
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build_in_place(url: str, growth: Growth) -> Grown:
    engine = create_engine(url)
    try:
        t0 = time.monotonic()
        upgrade(engine)
        counts = _fill(engine, growth)
        seconds = round(time.monotonic() - t0, 1)
    finally:
        engine.dispose()
    return Grown(growth.key, counts, "none (PostgreSQL: built in the run's database)", seconds)


def _cached(cache_dir: Path, growth: Growth) -> tuple[Path, dict[str, Any] | None]:
    """The cached file's path, and its description if it is complete."""
    path = cache_dir / f"grown-{growth.key}.db"
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return path, None
    return path, meta if path.exists() and meta.get("key") == growth.key else None


def _build_cache(cache_dir: Path, growth: Growth) -> dict[str, Any]:
    """Build into a private file, then rename it into place: a run killed halfway, or two
    runs building at once, never leave a half-built store under the cache's name."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    current = f"grown-{GENERATION}-"
    for old in cache_dir.glob("grown-*"):  # an older schema or generator: never used again
        if not old.name.startswith(current):
            old.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(dir=cache_dir, prefix=".building-", suffix=".db")
    os.close(fd)
    try:
        t0 = time.monotonic()
        engine = _bulk_engine(Path(name))
        try:
            upgrade(engine)
            counts = _fill(engine, growth)
        finally:
            engine.dispose()
        meta = {"key": growth.key, "counts": counts,
                "build_seconds": round(time.monotonic() - t0, 1),
                "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        path, _ = _cached(cache_dir, growth)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
    path.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def _bulk_engine(path: Path) -> Engine:
    """SQLite without a journal or fsyncs: the file is a cache that only becomes one once
    complete (renamed into place), so a crash mid-build loses nothing. The engine opens
    its copies with its own settings (WAL, synchronous=FULL)."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-200000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    return engine


def _fill(engine: Engine, growth: Growth) -> dict[str, int]:
    """Write the growth in one transaction; returns the rows of each table."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    with engine.begin() as conn:
        users = _mailboxes(conn, [_user(i, now) for i in range(growth.mailboxes)])
        _stores(conn, users, growth, now)
        rooms = _mailboxes(conn, [_room(i, now) for i in range(growth.resources)])
        _calendars(conn, rooms, growth.occurrences, now)
    with engine.connect() as conn:
        return counts(conn)


def counts(conn: Connection) -> dict[str, int]:
    """Rows per table that load 6 describes (``resources``: mailboxes with a type)."""
    found = {model.__tablename__: conn.scalar(select(func.count()).select_from(model)) or 0
             for model in (Mailbox, Store, Folder, Message, Booking, Occurrence)}
    found["resources"] = conn.scalar(select(func.count()).select_from(Mailbox).where(
        Mailbox.resource_type != "none")) or 0
    return found


def _user(i: int, now: dt.datetime) -> dict[str, Any]:
    email = f"grown{i:05d}@{DOMAIN}"
    return {**defaults(), "name": f"grown{i:05d}", "email": email, "email_lower": email,
            "fullname": f"Grown User {i}", "longest_occurrence": 0, "created_at": now}


def _room(i: int, now: dt.datetime) -> dict[str, Any]:
    email = f"room{i:04d}@{DOMAIN}"
    return {**defaults(), "name": f"room{i:04d}", "email": email, "email_lower": email,
            "fullname": f"Grown Room {i}", "resource_type": "room", "resource_capacity": 1,
            "mr_accept": True, "mr_decline_conflict": True,
            "longest_occurrence": int(MEETING.total_seconds()), "calendar_version": 1,
            "created_at": now}


def _mailboxes(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    return _insert_returning(conn, insert(Mailbox).returning(
        Mailbox.id, sort_by_parameter_order=True), rows)


def _insert_returning(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    for start in range(0, len(rows), CHUNK):
        ids += conn.scalars(stmt, rows[start:start + CHUNK]).all()
    return ids


def _insert(conn: Connection, model: Any, rows: Iterator[dict[str, Any]]) -> None:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            conn.execute(insert(model), chunk)
            chunk = []
    if chunk:
        conn.execute(insert(model), chunk)


def _stores(conn: Connection, users: list[int], growth: Growth, now: dt.datetime) -> None:
    """A store per user with its default folders, and the messages in its Inbox (spread
    evenly; the first stores take the remainder). Every store's size is its messages'."""
    per, extra = divmod(growth.messages, max(len(users), 1))
    body = _body(growth.body_size)
    heads = [[_head(n, u) for n in range(per + (k < extra))] for k, u in enumerate(users)]
    store_ids = _insert_returning(conn, insert(Store).returning(
        Store.id, sort_by_parameter_order=True),
        [{"guid": uuid.uuid4().hex.upper(), "mailbox_id": u, "owner_name": f"grown{k:05d}",
          "size": sum(len(h) + len(body) for h in heads[k]), "created_at": now}
         for k, u in enumerate(users)])
    folder_ids = _insert_returning(conn, insert(Folder).returning(
        Folder.id, sort_by_parameter_order=True),
        [{"store_id": s, "name": name} for s in store_ids for name in DEFAULT_FOLDERS])
    inbox = DEFAULT_FOLDERS.index(INBOX)
    _insert(conn, Message, (
        {"store_id": s, "folder_id": folder_ids[k * len(DEFAULT_FOLDERS) + inbox],
         "message_id": f"<grown-{users[k]}-{n}@{DOMAIN}>", "subject": f"Grown message {n}",
         "from_header": SENDER, "envelope_from": SENDER, "size": len(head) + len(body),
         "received_at": now - dt.timedelta(minutes=n), "content": head + body}
        for k, s in enumerate(store_ids) for n, head in enumerate(heads[k])))


def _body(size: int) -> bytes:
    """The text all the messages share, about ``size`` bytes with their headers."""
    line = b"The store has grown; this line is one of many alike.\r\n"
    return (line * (size // len(line) + 1))[:max(size - 200, len(line))]


def _head(n: int, user: int) -> bytes:
    return (f"Return-Path: <{SENDER}>\r\nMessage-ID: <grown-{user}-{n}@{DOMAIN}>\r\n"
            f"From: {SENDER}\r\nTo: grown@{DOMAIN}\r\nSubject: Grown message {n}\r\n"
            "\r\n").encode()


def _calendars(conn: Connection, rooms: list[int], occurrences: int,
               now: dt.datetime) -> None:
    """Each room's share of the occurrences (the first rooms take the remainder)."""
    per, extra = divmod(occurrences, max(len(rooms), 1))
    for k, room in enumerate(rooms):
        n = per + (k < extra)
        first = now.replace(minute=0, second=0) - STEP * (n // 2)
        plan = list(_room_plan(room, n, first))
        ids = _insert_returning(conn, insert(Booking).returning(
            Booking.id, sort_by_parameter_order=True),
            [_booking(room, uid, starts, now) for uid, starts in plan])
        _insert(conn, Occurrence, (
            {"booking_id": bid, "resource_id": room,
             "recurrence_id": start if len(starts) > 1 else None, "start": start,
             "end": start + MEETING, "summary": ical.SUMMARY, "transparent": False,
             "status": "booked"}
            for bid, (_, starts) in zip(ids, plan) for start in starts))


def _room_plan(room: int, n: int, first: dt.datetime) -> Iterator[tuple[str, list[dt.datetime]]]:
    """``n`` slots of STEP from ``first``, as bookings (UID, starts): blocks of SERIES
    weeks in which SERIES_PER_BLOCK offsets of the week are weekly series and the others
    single meetings; the slots after the last whole block are single meetings."""
    block = SERIES * WEEK_SLOTS
    whole = n // block
    for b in range(whole):
        for offset in range(WEEK_SLOTS):
            slots = [b * block + offset + w * WEEK_SLOTS for w in range(SERIES)]
            if offset >= SERIES_PER_BLOCK:
                yield from ((f"grown-{room}-{s}@{DOMAIN}", [first + STEP * s]) for s in slots)
            else:
                yield f"grown-{room}-{slots[0]}@{DOMAIN}", [first + STEP * s for s in slots]
    for s in range(whole * block, n):
        yield f"grown-{room}-{s}@{DOMAIN}", [first + STEP * s]


def _booking(room: int, uid: str, starts: list[dt.datetime], now: dt.datetime) -> dict:
    rule = f"FREQ=WEEKLY;COUNT={len(starts)}" if len(starts) > 1 else ""
    return {"resource_id": room, "uid": uid, "sequence": 0, "dtstamp": now,
            "organizer": ORGANIZER, "summary": ical.SUMMARY,
            "calendar": ical.booked_calendar(ical.vevent(uid, starts[0], starts[0] + MEETING,
                                                         rule, now)),
            "horizon": None, "status": "booked", "created_at": now, "updated_at": now}
