"""Only the organizer changes or cancels a booked meeting (hardening issue, item 1).

Every attendee knows a meeting's UID: a REQUEST or CANCEL for it from anyone but the
organizer who booked it changes nothing, over LMTP on both databases.
"""

from __future__ import annotations

import logging

from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import agenda, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

BOSS = "boss@remote.example"
MALLORY = "mallory@remote.example"
WEEKLY = "FREQ=WEEKLY;COUNT=10"
NOT_ORGANIZER = "only the organizer of this meeting can change it"


def _send(server, message: bytes) -> None:
    deliver(server.port, message)


def _booked(db_url: str) -> list[tuple[str, str]]:
    return [(e["start"], e["organizer"]) for e in agenda(db_url, "room")]


def test_cancel_from_another_attendee_changes_nothing_and_is_logged(db, db_url, caplog):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        _send(server, invite("m1", T9, T9 + HOUR, ROOM, organizer=BOSS))
        before = _booked(db_url)
        with caplog.at_level(logging.WARNING):
            _send(server, invite("m1", T9, T9 + HOUR, ROOM, organizer=MALLORY,
                                 method="CANCEL", sequence=1))
    assert _booked(db_url) == before and before[0][1] == BOSS
    assert f"cancel from {MALLORY}, who is not the organizer {BOSS}" in caplog.text
    assert len(outbox_rows(db)) == 1  # boss's acceptance; no reply to a CANCEL


def test_request_from_another_attendee_is_declined_to_them_and_the_booking_stays(db, db_url):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        _send(server, invite("m1", T9, T9 + HOUR, ROOM, organizer=BOSS))
        before = _booked(db_url)
        _send(server, invite("m1", T9 + 3 * HOUR, T9 + 4 * HOUR, ROOM, organizer=MALLORY,
                             sequence=5))
    assert _booked(db_url) == before
    decline = outbox_rows(db)[-1]
    assert decline.recipients == MALLORY and decline.subject.startswith("Declined")
    [vevent] = reply_vevents(decline.content)
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "DECLINED"
    assert NOT_ORGANIZER in str(vevent["COMMENT"])


def test_instance_request_and_this_and_future_cancel_from_another_are_refused(db, db_url):
    add_resource(db, "room", ROOM)
    second = T9 + 7 * 24 * HOUR
    with server_at(db_url, NOW) as server:
        _send(server, invite("s1", T9, T9 + HOUR, ROOM, organizer=BOSS, rrule=WEEKLY))
        before = _booked(db_url)
        _send(server, invite("s1", second + HOUR, second + 2 * HOUR, ROOM, organizer=MALLORY,
                             sequence=3, recurrence_id=second))
        _send(server, invite("s1", second, second + HOUR, ROOM, organizer=MALLORY,
                             method="CANCEL", sequence=4,
                             extra=f"RECURRENCE-ID;RANGE=THISANDFUTURE:{second:%Y%m%dT%H%M%SZ}"))
    assert _booked(db_url) == before and len(before) == 10
    replies = outbox_rows(db)
    assert [r.recipients for r in replies] == [BOSS, MALLORY]
    assert NOT_ORGANIZER in str(reply_vevents(replies[1].content)[0]["COMMENT"])


def test_the_organizer_may_change_and_cancel_in_any_letter_case(db, db_url):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        _send(server, invite("m1", T9, T9 + HOUR, ROOM, organizer=BOSS))
        _send(server, invite("m1", T9 + HOUR, T9 + 2 * HOUR, ROOM, organizer=BOSS.upper(),
                             sequence=1))
        assert [start for start, _ in _booked(db_url)] == ["2026-03-10T10:00:00Z"]
        _send(server, invite("m1", T9, T9 + HOUR, ROOM, organizer="Boss@Remote.Example",
                             method="CANCEL", sequence=2))
    assert _booked(db_url) == []
