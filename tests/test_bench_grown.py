"""Load 6's grown store (``bench.grown_store``): the planned rows, consistent, and cached.

Built at the smoke size into a cache directory of the test's own; no timing is asserted.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import create_engine, func, select

from bench import grown_store
from mr_engine.store.db import HEAD_REVISION
from mr_engine.store.models import Booking, Message, Occurrence, Store

GROWTH = grown_store.SMOKE  # 2 rooms of 300 occurrences: two blocks of series, 20 singles


def _provide(tmp_path: Path, name: str) -> tuple[grown_store.Grown, str]:
    url = f"sqlite:///{tmp_path / name}"
    return grown_store.provide(url, GROWTH, tmp_path / "cache"), url


def test_the_store_has_the_planned_rows(tmp_path):
    grown, _ = _provide(tmp_path, "a.db")
    per_room = GROWTH.occurrences // GROWTH.resources
    blocks, singles = divmod(per_room, grown_store.SERIES * grown_store.WEEK_SLOTS)
    series = grown_store.SERIES_PER_BLOCK
    bookings_per_room = blocks * (series + (grown_store.WEEK_SLOTS - series)
                                  * grown_store.SERIES) + singles
    assert grown.counts == {
        "mailboxes": GROWTH.mailboxes + GROWTH.resources, "stores": GROWTH.mailboxes,
        "folders": 3 * GROWTH.mailboxes, "messages": GROWTH.messages,
        "resources": GROWTH.resources, "bookings": GROWTH.resources * bookings_per_room,
        "occurrences": GROWTH.occurrences}
    assert grown.cache == "built" and HEAD_REVISION in grown.key


def test_sizes_and_calendars_are_consistent(tmp_path):
    _, url = _provide(tmp_path, "a.db")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sums = dict(conn.execute(select(Message.store_id, func.sum(Message.size))
                                     .group_by(Message.store_id)).all())
            assert sums == dict(conn.execute(select(Store.id, Store.size)).all())
            assert not conn.scalar(select(func.count()).select_from(Message).where(
                Message.size != func.length(Message.content)))
            occurrences = conn.execute(select(Occurrence.resource_id, Occurrence.start,
                                              Occurrence.end)).all()
            series = conn.scalars(select(Booking.calendar).where(
                Booking.calendar.contains("RRULE:FREQ=WEEKLY;COUNT=10"))).all()
    finally:
        engine.dispose()
    by_room: dict[int, list[tuple[dt.datetime, dt.datetime]]] = {}
    for room, start, end in occurrences:
        by_room.setdefault(room, []).append((start, end))
    for spans in by_room.values():  # a room holds one meeting at a time
        spans.sort()
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert len(series) == GROWTH.resources * 2 * grown_store.SERIES_PER_BLOCK


def test_a_second_run_copies_the_cached_store(tmp_path):
    first, url = _provide(tmp_path, "a.db")
    engine = create_engine(url)
    with engine.begin() as conn:  # the loads write to their copy, never to the cache
        conn.execute(Message.__table__.delete())
    engine.dispose()
    second, copy = _provide(tmp_path, "b.db")
    assert second.cache == "used" and second.counts == first.counts
    engine = create_engine(copy)
    with engine.connect() as conn:
        assert grown_store.counts(conn) == first.counts
    engine.dispose()
    assert second.build_seconds == first.build_seconds and second.copy_seconds is not None
    assert [p.name for p in (tmp_path / "cache").glob("grown-*.db")] == \
        [f"grown-{GROWTH.key}.db"]


def test_a_build_removes_other_generations_only(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / "grown-rev0001-v1-1mb-1msg-1res-1occ-2048b.db"
    other_size = cache / f"grown-{grown_store.GENERATION}-1mb-1msg-1res-1occ-2048b.db"
    stale.touch()
    other_size.touch()
    _provide(tmp_path, "a.db")
    assert not stale.exists() and other_size.exists()
