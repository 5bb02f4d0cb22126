"""A booked series holds its slots for its whole life (hardening issue, item 2).

Occurrences are materialized up to a horizon that the server, a window change and every
request move on; the tests pass ``now`` explicitly and run on both databases.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import time
import zoneinfo

from sqlalchemy import event, select
from sqlalchemy.orm.attributes import set_committed_value

from mr_engine.cli import dry_run
from mr_engine.core import booked_calendar
from mr_engine.store import directory
from mr_engine.services import booking, horizon
from mr_engine.core.itip import invitation_in, read_calendar
from mr_engine.store.models import Booking, Mailbox

from mr_engine.services.meeting_requests import extend_and_queue

from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.paths import BIN, checkout_of
from mr_engine.testing.servers import RunningServer, make_settings, server_at
from mr_engine.testing.store_views import agenda, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

FIXTURES = checkout_of(__file__) / "fixtures"

DAY = dt.timedelta(days=1)
WEEK = 7 * DAY
ENDLESS = "FREQ=WEEKLY"


class Clock:
    """A clock the test moves: the server reads it at every delivery."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _starts(db_url: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    return [e["start"] for e in agenda(db_url, "room", _iso(start), _iso(end))]


def _horizons(db) -> list[dt.datetime | None]:
    with db.read() as session:
        return list(session.scalars(select(Booking.horizon).order_by(Booking.id)))


def _set_window(db, days: int, **fields) -> None:
    with db.write() as session:
        room = directory.get_user(session, "room")
        directory.update_user(session, room, mr_booking_window_days=days, **fields)


def _extend(db, db_url: str, now: dt.datetime) -> horizon.Extended:
    with db.write() as session:
        room = directory.get_user(session, "room")
        return extend_and_queue(session, room, make_settings(db_url), now)


def test_a_single_meeting_on_a_series_date_300_days_later_is_declined(db, db_url):
    add_resource(db, "room", ROOM)
    clock = Clock(NOW)
    with RunningServer(make_settings(db_url), clock=clock) as server:
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule=ENDLESS))
        clock.now = NOW + 300 * DAY
        day = T9 + 43 * WEEK  # 301 days on: beyond the series' first window of 180 days
        deliver(server.port, invite("single", day, day + HOUR, ROOM))
    decline, proposal = outbox_rows(db)[-2:]  # the decline and its COUNTER
    assert (decline.subject, proposal.subject) == ("Declined: Planning",
                                                   "New time proposed: Planning")
    # Kopano's words, then the date taken (core.decline_texts).
    assert str(reply_vevents(decline.content)[0]["COMMENT"]) == \
        f"The requested time slots are unavailable on the following dates: " \
        f"{day:%Y-%m-%d} 09:00-10:00 (UTC)"
    assert _starts(db_url, day - HOUR, day + 2 * HOUR) == [_iso(day)]


def test_the_server_extends_every_series_when_it_starts(db, db_url):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule=ENDLESS))
    later = NOW + 300 * DAY
    with server_at(db_url, later):
        deadline = time.monotonic() + 30
        while _horizons(db)[0] < later + 180 * DAY and time.monotonic() < deadline:
            time.sleep(0.05)  # its first maintenance pass runs in the background
    ahead = _starts(db_url, later, later + 180 * DAY)
    assert len(ahead) >= 25 and ahead[-1] >= _iso(later + 173 * DAY)
    assert _horizons(db)[0] >= later + 180 * DAY + horizon.DUE_AHEAD


def test_raising_the_window_extends_every_series_at_once(db, db_url):
    add_resource(db, "room", ROOM, mr_booking_window_days=30)
    with server_at(db_url, NOW) as server:
        for i in range(3):
            deliver(server.port, invite(f"s{i}", T9 + i * HOUR, T9 + (i + 1) * HOUR, ROOM,
                                        rrule=ENDLESS))
    # Materialized up to the window (or a step past it, when a later request caught up).
    assert len(_starts(db_url, NOW + 30 * DAY + horizon.STEP, NOW + 400 * DAY)) == 0
    _set_window(db, 400)
    done = _extend(db, db_url, NOW)
    assert done.series == 3 and done.declined == 0
    assert len(_starts(db_url, NOW + 386 * DAY, NOW + 400 * DAY)) == 3 * 2
    assert all(h >= NOW + 400 * DAY for h in _horizons(db))


def test_kopano_cli_window_change_extends_the_series_before_it_returns(db, db_url):
    add_resource(db, "room", ROOM, mr_booking_window_days=30)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)  # the CLI's own clock
    with server_at(db_url, now) as server:
        deliver(server.port, invite("series", now + DAY, now + DAY + HOUR, ROOM, rrule=ENDLESS))
    commands.run([str(BIN / "kopano-cli"), "--user", "room", "--mr-booking-window", "400"],
                 env={"MR_ENGINE_DATABASE_URL": db_url}, check=True, capture_output=True)
    assert len(_starts(db_url, now + 380 * DAY, now + 394 * DAY)) == 2


def _taken_slot(db, db_url: str, decline_conflict: bool) -> dt.datetime:
    """A single meeting 20 weeks ahead, then (window 30) a weekly series over its slot."""
    add_resource(db, "room", ROOM, mr_booking_window_days=400)
    taken = T9 + 20 * WEEK
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("single", taken, taken + HOUR, ROOM,
                                    organizer="first@remote.example"))
        _set_window(db, 30, mr_decline_conflict=decline_conflict)
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule=ENDLESS))
    _set_window(db, 400)
    return taken


def test_an_occurrence_due_on_a_taken_slot_is_declined_with_its_own_reply(db, db_url):
    taken = _taken_slot(db, db_url, decline_conflict=True)
    done = _extend(db, db_url, NOW)
    assert (done.series, done.declined) == (1, 1)
    assert [e["uid"] for e in agenda(db_url, "room", _iso(taken), _iso(taken + HOUR))] == \
        ["single"]
    decline = outbox_rows(db)[-1]
    assert decline.recipients == "organizer@remote.example"
    [vevent] = reply_vevents(decline.content)
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "DECLINED"
    assert vevent["RECURRENCE-ID"].dt == taken and "conflict on" in str(vevent["COMMENT"])
    assert len(_starts(db_url, taken + WEEK, taken + 2 * WEEK)) == 1  # the rest is booked


def test_without_decline_conflict_the_due_occurrence_is_booked_beside_it(db, db_url):
    taken = _taken_slot(db, db_url, decline_conflict=False)
    replies = len(outbox_rows(db))
    done = _extend(db, db_url, NOW)
    assert (done.series, done.declined) == (1, 0) and len(outbox_rows(db)) == replies
    assert sorted(e["uid"] for e in agenda(db_url, "room", _iso(taken), _iso(taken + HOUR))) \
        == ["series", "single"]


def test_cancelled_and_moved_occurrences_beyond_the_horizon_stay_so(db, db_url):
    add_resource(db, "room", ROOM, mr_booking_window_days=30)
    gone, moved = T9 + 10 * WEEK, T9 + 12 * WEEK
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule=ENDLESS))
        deliver(server.port, invite("series", gone, gone + HOUR, ROOM, method="CANCEL",
                                    sequence=1, recurrence_id=gone))
        _set_window(db, 120)
        deliver(server.port, invite("series", moved + 3 * HOUR, moved + 4 * HOUR, ROOM,
                                    sequence=1, recurrence_id=moved))
        _extend(db, db_url, NOW)
    assert _starts(db_url, gone - DAY, gone + DAY) == []
    assert _starts(db_url, moved - DAY, moved + DAY) == [_iso(moved + 3 * HOUR)]
    assert len(_starts(db_url, T9, T9 + 16 * WEEK)) == 16 - 1


def test_a_series_that_ends_needs_no_horizon(db, db_url):
    add_resource(db, "room", ROOM, mr_booking_window_days=30)
    cut = T9 + 2 * WEEK
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("short", T9, T9 + HOUR, ROOM, rrule="FREQ=WEEKLY;COUNT=3"))
        deliver(server.port, invite("long", T9 + HOUR, T9 + 2 * HOUR, ROOM,
                                    rrule="FREQ=WEEKLY;COUNT=30"))
        deliver(server.port, invite("cut", T9 + 2 * HOUR, T9 + 3 * HOUR, ROOM, rrule=ENDLESS))
        deliver(server.port, invite("cut", cut, cut + HOUR, ROOM, method="CANCEL", sequence=1,
                                    extra=f"RECURRENCE-ID;RANGE=THISANDFUTURE:{cut:%Y%m%dT%H%M%SZ}"))
    short, long_, ended = _horizons(db)
    assert short is None and ended is None and long_ is not None
    _set_window(db, 400)
    _extend(db, db_url, NOW)
    assert _horizons(db)[1] is None  # the 30th occurrence is booked: nothing lies beyond
    assert len([e for e in agenda(db_url, "room") if e["uid"] == "long"]) == 30


def test_a_catch_up_with_nothing_due_is_one_query(db, db_url):
    add_resource(db, "room", ROOM)
    with db.write() as session:
        room = directory.get_user(session, "room")
        for i in range(500):
            session.add(Booking(resource_id=room.id, uid=f"b{i}", calendar="", organizer="",
                                summary="", status="booked", created_at=NOW, updated_at=NOW,
                                horizon=NOW + 400 * DAY))
    statements = []
    with db.write() as session:
        room = session.scalar(select(Mailbox).where(Mailbox.name == "room"))
        listen = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            done = horizon.catch_up(session, room, horizon.Extender.of(
                room, make_settings(db_url), NOW))
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)
    assert done.series == 0 and len(statements) == 1


def test_a_series_extended_earlier_in_the_transaction_is_not_due_again(db, db_url):
    # The committer runs a batch's requests in one transaction: the second request for
    # the resource must see the horizon the first one moved (and not yet flushed).
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule=ENDLESS))
    later = NOW + 300 * DAY
    with db.write() as session:
        room = directory.get_user(session, "room")
        ext = horizon.Extender.of(room, make_settings(db_url), later)
        first, _ = horizon.catch_up_with(session, room, ext, "other")
        second, booking = horizon.catch_up_with(session, room, ext, "series")
    assert (first.series, second.series) == (1, 0)
    assert booking is not None and booking.uid == "series"
    assert _horizons(db)[0] >= later + 180 * DAY + horizon.DUE_AHEAD


def test_a_booking_window_moved_while_the_lock_was_awaited_reads_the_bookings_again(db, db_url):
    # booking.process sends the lock and this read together: the due date was worked out
    # from the row as it was before the lock, which the lock's read may then move.
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule=ENDLESS))
    booked_until = _horizons(db)[0]
    with db.write() as session:
        room = directory.get_user(session, "room")
        # Not due by the window the series was booked with (a day before its horizon).
        ext = horizon.Extender.of(room, make_settings(db_url), NOW - 2 * DAY)
        catch_up = horizon.catch_up_later(session, room, ext, "series")
        set_committed_value(room, "mr_booking_window_days", 1000)  # what the lock read
        done, booking = catch_up()
    assert done.series == 1 and booking is not None and booking.uid == "series"
    assert booked_until < NOW + 1000 * DAY <= _horizons(db)[0]


def test_a_series_booked_as_the_lock_moved_the_window_is_expanded_to_that_window(
        db, db_url, monkeypatch):
    # booking.process expands a request before the resource's lock; the row read with the
    # lock (another process widened the window meanwhile) sets the horizon the series is
    # stored with, so its occurrences must reach that horizon, or a later meeting is
    # accepted on a slot the series holds and catch-up never fills it.
    add_resource(db, "room", ROOM)  # a window of 180 days
    lock_later = booking.lock_mailbox_later

    def widened_by_another_process(session, mailbox_id):
        locked = lock_later(session, mailbox_id)

        def read():
            room = locked()
            set_committed_value(room, "mr_booking_window_days", 540)
            return room
        return read
    monkeypatch.setattr(booking, "lock_mailbox_later", widened_by_another_process)
    settings = make_settings(db_url)
    request = dry_run.envelope(invite("series", T9, T9 + HOUR, ROOM, rrule=ENDLESS), settings,
                               "test")
    with db.write() as session:
        room = directory.get_user(session, "room")
        outcome = booking.process(session, booking.read_request(room, request, settings, NOW))
    assert outcome.outcome == "accepted"
    assert _horizons(db)[0] >= NOW + 540 * DAY
    day = T9 + 60 * WEEK  # 420 days on: beyond the old window, within the new one
    assert _starts(db_url, day - HOUR, day + 2 * HOUR) == [_iso(day)]


def test_the_kept_calendar_reads_back_as_the_invitation_was_read():
    raw = (FIXTURES / "own" / "exchange-series-exception.eml").read_bytes()
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    inv = invitation_in(read_calendar(email.message_from_bytes(raw, policy=email.policy.compat32)),
                        zone)
    kept = booked_calendar.calendar_of(inv)
    assert "BEGIN:VTIMEZONE" in kept and "\r\n" in kept and "\n\n" not in kept
    again = booked_calendar.read(kept, zoneinfo.ZoneInfo("UTC"))
    assert [(e.recurrence_id, e.start, e.end, e.rrule) for e in again.events] == \
        [(e.recurrence_id, e.start, e.end, e.rrule) for e in inv.events]
