"""Alternatives in declines, over LMTP on SQLite and PostgreSQL: a conflict decline lists free
times and free rooms (a pool's members first) in its text part and is followed by one COUNTER
(RFC 5546 §3.2.7), however often the message is delivered; a decline for seats lists bigger
rooms only; a series or ``--mr-propose-time no`` gets no COUNTER."""

from __future__ import annotations

import email
import email.policy

from icalendar import Calendar

from mr_engine.store.db import Database
from mr_engine.store.directory import add_member, create_group, get_user, set_pool
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

PEOPLE = "\n".join(f"ATTENDEE;CUTYPE=INDIVIDUAL;CN=P{n}:mailto:p{n}@remote.example"
                   for n in range(9))


def to(port: int, message: bytes) -> None:
    """``message`` delivered to the resource it invites (its To)."""
    deliver(port, message, email.message_from_bytes(message)["To"])


def text_of(content: bytes) -> str:
    message = email.message_from_bytes(content, policy=email.policy.default)
    return next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()


def counter_of(content: bytes):
    message = email.message_from_bytes(content, policy=email.policy.default)
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "COUNTER"
    return Calendar.from_ical(part.get_content())


def rooms(db: Database) -> None:
    """room (6 seats) in the pool "rooms" with pooled; other (10 seats) and small (4) outside
    it; busy is taken at T9."""
    add_resource(db, "room", ROOM, resource_seats=6, mr_enforce_seats=True)
    for name, seats in (("pooled", 0), ("other", 10), ("small", 4), ("busy", 20)):
        add_resource(db, name, f"{name}@example.com", resource_seats=seats)
    with db.write() as session:
        group = create_group(session, "rooms", "rooms@example.com")
        add_member(session, group, get_user(session, "room"))
        add_member(session, group, get_user(session, "pooled"))
        set_pool(session, group, True)


def test_a_conflict_decline_lists_times_and_rooms_and_counters_once(db, db_url):
    rooms(db)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("taken", T9, T9 + HOUR, ROOM))
        to(server.port, invite("busy", T9, T9 + HOUR, "busy@example.com"))
        asked = invite("asked", T9, T9 + HOUR, ROOM, message_id="<asked@remote>")
        deliver(server.port, asked)
        deliver(server.port, asked)  # redelivered: nothing more is sent
    rows = outbox_rows(db)
    assert [r.subject for r in rows] == ["Accepted: Planning", "Accepted: Planning",
                                         "Declined: Planning", "New time proposed: Planning"]
    text = text_of(rows[2].content)
    # Resources outside the pool that fit: other, small (seats are not the problem here).
    assert ("Free at these times:\n- 2026-03-10 08:00-09:00 (UTC)\n"
            "- 2026-03-10 10:00-11:00 (UTC)\n- 2026-03-10 07:45-08:45 (UTC)\n"
            "Free instead (invite one of them):\n- Pooled <pooled@example.com> (room)\n"
            "- Other <other@example.com> (10 seats)\n- Small <small@example.com> (4 seats)\n"
            ) in text.replace("\r\n", "\n")
    assert str(reply_vevents(rows[2].content)[0]["ATTENDEE"].params["PARTSTAT"]) == "DECLINED"
    [proposal] = counter_of(rows[3].content).walk("VEVENT")
    assert (str(proposal["UID"]), int(proposal["SEQUENCE"])) == ("asked", 0)
    assert str(proposal["ATTENDEE"]) == f"mailto:{ROOM}"
    assert proposal.decoded("DTSTART") == T9 - HOUR and proposal.decoded("DTEND") == T9
    assert rows[3].recipients == "organizer@remote.example" and rows[3].sender == ROOM


def test_seats_decline_lists_bigger_rooms_and_a_series_or_no_propose_gets_no_counter(
        db, db_url):
    rooms(db)
    with db.write() as session:
        get_user(session, "other").mr_propose_time = False
    day = 24 * HOUR
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("crowd", T9, T9 + HOUR, ROOM, extra=PEOPLE))
        to(server.port, invite("taken", T9, T9 + HOUR, "other@example.com"))
        to(server.port, invite("quiet", T9, T9 + HOUR, "other@example.com"))
        to(server.port, invite("single", T9, T9 + HOUR, "small@example.com"))
        to(server.port, invite("series", T9 - day, T9 - day + HOUR, "small@example.com",
                               rrule="FREQ=DAILY;COUNT=3"))
    rows = outbox_rows(db)
    assert [r.subject for r in rows] == ["Declined: Planning", "Accepted: Planning"] * 2 \
        + ["Declined: Planning"]  # and no COUNTER
    crowd = text_of(rows[0].content).replace("\r\n", "\n")
    assert str(reply_vevents(rows[0].content)[0]["COMMENT"]) == "9 attendees, the room seats 6"
    assert "Free at these times" not in crowd  # a small room is small at any time
    # known seats only (pooled's are unknown), enough of them (not small's 4)
    assert crowd.replace("\r\n", "\n").endswith(
        "Free instead (invite one of them):\n- Busy <busy@example.com> (20 seats)\n"
        "- Other <other@example.com> (10 seats)\n")
    for declined in (rows[2], rows[4]):  # other's conflict; the series' first conflict
        assert "Free at these times:" in text_of(declined.content)
