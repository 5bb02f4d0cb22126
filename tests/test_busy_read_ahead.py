"""A new meeting's busy intervals read with its booking (``calendar_store.due_or_booked``
with ``ahead``): one statement instead of two inside the resource's lock, answering the
check exactly as its own read would, and only while that holds. On SQLite and PostgreSQL.

Whether the held read answered is seen from an occurrence inserted behind the calendar
store's back (no ``touch``): a held read does not show it, a fresh read does.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert

from mr_engine.cli import dry_run
from mr_engine.config import Settings
from mr_engine.core.policy import Busy
from mr_engine.core.recurrence import Instance
from mr_engine.services import booking
from mr_engine.store import calendar_store as cal
from mr_engine.store.directory import get_user
from mr_engine.store.models import Occurrence
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite
from mr_engine.testing.times import HOUR, NOW, T9

DUE = NOW + dt.timedelta(days=200)


def _book(session, room, uid: str, start: dt.datetime, end: dt.datetime,
          transparent: bool = False, status: str = cal.BOOKED) -> cal.NewBooking:
    return cal.new_booking(session, room, [Instance(None, start, end, uid, transparent, False)],
                           uid=uid, sequence=0, dtstamp=NOW,
                           organizer="organizer@remote.example", organizer_name="", summary=uid,
                           attendee_count=1, calendar="", status=status, created_at=NOW,
                           updated_at=NOW, horizon=None, pool_id=None)


def _calendar(session, room) -> None:
    """Before, overlapping, long, transparent, tentative, after: what a check must tell."""
    _book(session, room, "before", T9 - 2 * HOUR, T9 - HOUR)
    _book(session, room, "overlap", T9 + HOUR / 2, T9 + 2 * HOUR)
    _book(session, room, "long", T9 - 20 * HOUR, T9 + HOUR / 4)
    _book(session, room, "free", T9, T9 + HOUR, transparent=True)
    _book(session, room, "held", T9, T9 + HOUR / 2, status=cal.TENTATIVE)
    _book(session, room, "after", T9 + 3 * HOUR, T9 + 4 * HOUR)


def _times(busy: Busy) -> tuple[dt.datetime, dt.datetime]:
    return busy.start, busy.end


def _behind_the_back(session, room, start: dt.datetime, end: dt.datetime) -> None:
    session.execute(insert(Occurrence).values(
        booking_id=cal.find_booking(session, room.id, "before").id, resource_id=room.id,
        recurrence_id=None, start=start, end=end, summary="sneaked", transparent=False,
        status=cal.BOOKED))


def _room(db):
    add_resource(db, "room", ROOM)
    with db.write() as session:
        _calendar(session, get_user(session, "room"))


def test_the_held_read_answers_the_check_once_as_its_own_read_would(db):
    _room(db)
    with db.write() as session:
        room = get_user(session, "room")
        fresh = cal.busy_intervals(session, room, T9, T9 + 2 * HOUR, None)
        assert sorted(fresh, key=_times) == [Busy(T9 - 20 * HOUR, T9 + HOUR / 4), Busy(T9, T9 + HOUR / 2),
                                 Busy(T9 + HOUR / 2, T9 + 2 * HOUR)]
        ahead = cal.BusyRead.of(room, T9, T9 + 2 * HOUR, None)
        assert cal.due_or_booked(session, room.id, DUE, "new", ahead) == []
        _behind_the_back(session, room, T9, T9 + HOUR)
        assert sorted(cal.busy_intervals(session, room, T9, T9 + 2 * HOUR, None),
                      key=_times) == sorted(fresh, key=_times)
        assert Busy(T9, T9 + HOUR) in cal.busy_intervals(session, room, T9, T9 + 2 * HOUR, None)


def test_another_read_reads_afresh(db):
    _room(db)
    with db.write() as session:
        room = get_user(session, "room")
        cal.due_or_booked(session, room.id, DUE, "new", cal.BusyRead.of(room, T9, T9 + HOUR, None))
        _behind_the_back(session, room, T9, T9 + HOUR)
        assert Busy(T9, T9 + HOUR) in cal.busy_intervals(session, room, T9, T9 + 2 * HOUR, None)


def test_nothing_is_held_when_the_meeting_is_booked(db):
    _room(db)
    with db.write() as session:
        room = get_user(session, "room")
        ahead = cal.BusyRead.of(room, T9, T9 + HOUR, None)
        assert [b.uid for b in cal.due_or_booked(session, room.id, DUE, "after", ahead)] == \
            ["after"]
        _behind_the_back(session, room, T9, T9 + HOUR)
        assert Busy(T9, T9 + HOUR) in cal.busy_intervals(session, room, T9, T9 + HOUR, None)


def test_an_occurrence_written_since_ends_the_held_read(db):
    _room(db)
    with db.write() as session:
        room = get_user(session, "room")
        cal.due_or_booked(session, room.id, DUE, "new", cal.BusyRead.of(room, T9, T9 + HOUR, None))
        cal.add_occurrences(session, room, cal.find_booking(session, room.id, "after"),
                            [Instance(None, T9 + HOUR / 4, T9 + HOUR / 3, "after", False, False)])
        assert Busy(T9 + HOUR / 4, T9 + HOUR / 3) in \
            cal.busy_intervals(session, room, T9, T9 + HOUR, None)


def test_a_read_held_in_a_savepoint_does_not_answer_outside_it(db):
    _room(db)
    with db.write() as session:
        room = get_user(session, "room")
        try:
            with session.begin_nested():
                cal.due_or_booked(session, room.id, DUE, "new",
                                  cal.BusyRead.of(room, T9, T9 + HOUR, None))
                raise RuntimeError("the delivery failed")
        except RuntimeError:
            pass
        _behind_the_back(session, room, T9, T9 + HOUR)
        assert Busy(T9, T9 + HOUR) in cal.busy_intervals(session, room, T9, T9 + HOUR, None)
        cal.due_or_booked(session, room.id, DUE, "new", cal.BusyRead.of(room, T9, T9 + HOUR, None))
        with session.begin_nested():
            assert Busy(T9, T9 + HOUR) in cal.busy_intervals(session, room, T9, T9 + HOUR, None)


def test_processing_decides_a_new_meeting_on_the_read_made_with_its_booking(db, monkeypatch):
    """``booking.process``: an occurrence sneaked in after the read ahead (while the rules'
    facts are gathered) is not seen, so the check used the held read; one there before it
    is, and declines the request."""
    _room(db)
    settings = Settings()
    asked = booking.who_asks.people

    def sneaking(session, *args):
        room = get_user(session, "room")
        _behind_the_back(session, room, T9 + 7 * HOUR, T9 + 8 * HOUR)
        return asked(session, *args)
    with db.write() as session:
        room = get_user(session, "room")
        _behind_the_back(session, room, T9 + 5 * HOUR, T9 + 6 * HOUR)
        taken = dry_run.envelope(invite("taken", T9 + 5 * HOUR, T9 + 6 * HOUR, ROOM), settings,
                                 "t")
        assert booking.process(session, booking.read_request(room, taken, settings, NOW)) \
            .outcome == "declined"
        monkeypatch.setattr(booking.who_asks, "people", sneaking)
        held = dry_run.envelope(invite("unseen", T9 + 7 * HOUR, T9 + 8 * HOUR, ROOM), settings, "t")
        assert booking.process(session, booking.read_request(room, held, settings, NOW)) \
            .outcome == "accepted"
