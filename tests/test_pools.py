"""Pools (resource collections): Kolab's collection scenarios over LMTP, on SQLite and
PostgreSQL. A request to the pool books one free member; the pool answers DELEGATED with
DELEGATED-TO the member, the member ACCEPTED with DELEGATED-FROM the pool (RFC 5546
§3.2.2.3)."""

from __future__ import annotations

import email
import email.policy
import json

from sqlalchemy import select

from mr_engine.store.db import Database
from mr_engine.store.directory import add_member, create_group, get_user, set_pool
from mr_engine.store.models import Booking, Mailbox, Occurrence
from mr_engine.core.freebusy import BUSY, TENTATIVE, Period, all_busy
from mr_engine.testing import commands
from mr_engine.testing.accounts import add_resource
from mr_engine.testing.calendars import book, freebusy_of, periods_of
from mr_engine.testing.http import get
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.lmtp_client import RawClient, deliver, send_message
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import server_at
from mr_engine.testing.store_views import messages_of, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9
from tests.test_kopano_cli import InProcess

POOL = "rooms@example.com"
A, B, C = "a@example.com", "b@example.com", "c@example.com"


def make_pool(db: Database, *names: str) -> None:
    for name in names:
        add_resource(db, name, f"{name}@example.com")
    with db.write() as session:
        group = create_group(session, "rooms", POOL)
        for name in names:
            add_member(session, group, get_user(session, name))
        set_pool(session, group, True)


def booked(db: Database) -> list[tuple[str, str, str]]:
    """(member, uid, start) of every booked occurrence, in that order."""
    with db.read() as session:
        rows = session.execute(
            select(Mailbox.name, Booking.uid, Occurrence.start)
            .join(Booking, Booking.id == Occurrence.booking_id)
            .join(Mailbox, Mailbox.id == Booking.resource_id)
            .order_by(Mailbox.name, Booking.uid, Occurrence.start))
        return [(name, uid, start.strftime("%H:%M")) for name, uid, start in rows]


def attendee_of(reply) -> tuple[str, str, dict]:
    [vevent] = reply_vevents(reply.content)
    att = vevent["ATTENDEE"]
    return str(att), str(att.params["PARTSTAT"]), {k: str(v) for k, v in att.params.items()}


def text_of(content: bytes) -> str:
    """The text/plain part of a queued reply, unwrapped."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    return message.get_body(("plain",)).get_content()


def replies(db: Database) -> list[tuple[str, str, str]]:
    """(sender, subject, PARTSTAT) of every queued reply."""
    return [(r.sender, r.subject, attendee_of(r)[1]) for r in outbox_rows(db)]


def to_both(port: int, message: bytes, *to: str) -> None:
    """One transaction to several recipients (LMTP answers each after DATA)."""
    client = RawClient(port)
    client.reply()  # the greeting
    try:
        _, answers = send_message(client, "organizer@remote.example", list(to), message)
    finally:
        client.close()
    assert all(a.startswith("250") for a in answers), answers


def delegated_update(uid: str, start, sequence: int, member: str, **kw) -> bytes:
    """The organizer's update after the delegation: the pool DELEGATED, the member listed."""
    extra = (f'ATTENDEE;CUTYPE=RESOURCE;PARTSTAT=ACCEPTED;DELEGATED-FROM="mailto:{POOL}"'
             f":mailto:{member}")
    return invite(uid, start, start + HOUR, POOL, sequence=sequence, extra=extra, **kw)


def test_request_to_pool_books_a_member_with_delegation_replies(db, db_url):
    make_pool(db, "a", "b")
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL, message_id="<p1@remote>"), POOL)
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL, message_id="<p1@remote>"), POOL)
    assert booked(db) == [("a", "u1", "09:00")]  # ties by name; the redelivery is caught
    pool_reply, member_reply = outbox_rows(db)
    assert (pool_reply.sender, pool_reply.subject) == (POOL, "Delegated: Planning")
    assert attendee_of(pool_reply)[0] == f"mailto:{POOL}"
    assert attendee_of(pool_reply)[2]["DELEGATED-TO"] == f"mailto:{A}"
    assert attendee_of(pool_reply)[1] == "DELEGATED"
    assert (member_reply.sender, member_reply.subject) == (A, "Accepted: Planning")
    assert attendee_of(member_reply)[1:] == (
        "ACCEPTED", {"PARTSTAT": "ACCEPTED", "CN": "A", "DELEGATED-FROM": f"mailto:{POOL}"})
    assert [m.folder for m in messages_of(db, "a")] == ["Processed Requests"]
    assert messages_of(db, "b") == []


def test_choice_is_the_member_with_fewest_hours_that_day(db, db_url):
    make_pool(db, "a", "b", "c")
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("x", T9 + 5 * HOUR, T9 + 7 * HOUR, A), A)
        deliver(server.port, invite("y", T9 + 5 * HOUR, T9 + 6 * HOUR, B), B)
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL), POOL)  # c: 0 hours
        deliver(server.port, invite("u2", T9, T9 + HOUR, POOL), POOL)  # c is busy: b, 1 hour
    assert ("c", "u1", "09:00") in booked(db) and ("b", "u2", "09:00") in booked(db)


def test_a_series_goes_to_the_member_free_for_every_occurrence(db, db_url):
    make_pool(db, "a", "b")
    book(db, "a", "x", [(T9 + 48 * HOUR, T9 + 49 * HOUR)])  # a is busy on the third day only
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("s", T9, T9 + HOUR, POOL, rrule="FREQ=DAILY;COUNT=3"), POOL)
    assert [row for row in booked(db) if row[1] == "s"] == [("b", "s", "09:00")] * 3
    assert [sender for sender, _, _ in replies(db)] == [POOL, B]


def test_no_member_free_the_pool_declines(db, db_url):
    make_pool(db, "a", "b")
    with server_at(db_url, NOW) as server:
        for member in (A, B):
            deliver(server.port, invite(f"busy-{member}", T9, T9 + HOUR, member), member)
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL), POOL)
    assert [uid for _, uid, _ in booked(db)] == ["busy-a@example.com", "busy-b@example.com"]
    assert replies(db)[-1] == (POOL, "Declined: Planning", "DECLINED")
    text = text_of(outbox_rows(db)[-1].content)
    assert "no member of the pool is free" in text
    assert "- 2026-03-10 08:00-09:00 (UTC)" in text.split("Free at these times:")[1]
    assert "09:00-10:00" not in text.split("Free at these times:")[1]


def test_rescheduled_booking_moves_to_another_member(db, db_url):
    make_pool(db, "a", "b")
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL), POOL)  # a
        deliver(server.port, invite("x", T9 + 3 * HOUR, T9 + 4 * HOUR, A), A)
        to_both(server.port, delegated_update("u1", T9 + 3 * HOUR, 1, A), POOL, A)
    assert booked(db) == [("a", "x", "12:00"), ("b", "u1", "12:00")]
    moved = [r for r in replies(db)[3:]]
    assert moved == [(POOL, "Delegated: Planning", "DELEGATED"),
                     (B, "Accepted: Planning", "ACCEPTED"), (A, "Declined: Planning", "DECLINED")]
    assert attendee_of(outbox_rows(db)[3])[2]["DELEGATED-TO"] == f"mailto:{B}"


def test_delegated_update_that_fits_stays_and_is_answered_once(db, db_url):
    make_pool(db, "a", "b")
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL), POOL)
        deliver(server.port, invite("y", T9 + HOUR, T9 + 2 * HOUR, B), B)  # a has fewer hours
        to_both(server.port, delegated_update("u1", T9 + HOUR, 1, A), POOL, A)
        to_both(server.port, delegated_update("u1", T9 + HOUR, 1, A), A, POOL)  # again
    assert booked(db) == [("a", "u1", "10:00"), ("b", "y", "10:00")]
    assert replies(db)[3:] == [(POOL, "Delegated: Planning", "DELEGATED"),
                               (A, "Accepted: Planning", "ACCEPTED")]


def test_cancel_to_pool_or_to_member_frees_the_booking(db, db_url):
    make_pool(db, "a", "b")
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL), POOL)
        deliver(server.port, invite("u2", T9 + HOUR, T9 + 2 * HOUR, POOL), POOL)
        deliver(server.port, invite("u1", T9, T9 + HOUR, POOL, method="CANCEL", sequence=1),
                POOL)
        deliver(server.port, delegated_update("u2", T9 + HOUR, 1, A, method="CANCEL"), A)
    assert booked(db) == []
    assert len(outbox_rows(db)) == 4  # no reply to a CANCEL


def test_kopano_cli_makes_a_pool_of_resources_only(capsys, db, db_url):
    cli = InProcess(capsys, db_url)
    cli("--create", "--user", "a", "--email", A, "--resource-type", "room")
    cli("--create", "--user", "bob", "--email", "bob@example.com", "--password", "x")
    cli("--create", "--group", "rooms", "--email", POOL, "--mr-pool", "yes")
    cli("--group", "rooms", "--add-user", "a")
    shown = cli.json("--group", "rooms")
    assert (shown["mr_pool"], shown["members"]) == (True, ["a"])
    assert "Pool:" in cli("--group", "rooms") and "a " in cli("--group", "rooms")
    [err] = cli.expect(1, ["--group", "rooms", "--add-user", "bob"])
    assert "bob is not a resource" in err
    cli("--group", "rooms", "--mr-pool", "no", "--add-user", "bob")
    assert "mr_pool" not in cli.json("--group", "rooms")
    [err] = cli.expect(1, ["--group", "rooms", "--mr-pool", "yes"])
    assert "cannot be a pool: bob is not a resource" in err


def at(hours: float):
    return T9 + hours * HOUR


def test_pool_periods_are_busy_where_every_member_is():
    a = [Period(at(0), at(2), BUSY), Period(at(3), at(4), TENTATIVE)]
    b = [Period(at(1), at(5), BUSY)]
    assert all_busy([a, b]) == [Period(at(1), at(2), BUSY), Period(at(3), at(4), TENTATIVE)]
    assert all_busy([a, b, []]) == [] and all_busy([]) == []


def test_pool_freebusy_over_http_and_the_cli(db, db_url):
    make_pool(db, "a", "b")
    book(db, "a", "x", [(at(0), at(2))])
    book(db, "b", "y", [(at(1), at(3))])
    book(db, "b", "z", [(at(5), at(6))])
    with server_at(db_url, NOW, http_listen=("127.0.0.1:0",)) as server:
        answers = [get(server.http_port, f"/freebusy/{name}?start=2026-03-09&end=2026-03-12")
                   for name in (f"{POOL}.vfb", "rooms")]
    assert {a.status for a in answers} == {200}
    assert periods_of(answers[0].body) == [(at(1), at(2), BUSY)]
    assert str(freebusy_of(answers[1].body)["ORGANIZER"]) == f"mailto:{POOL}"
    done = commands.run([str(BIN / "mr-engine"), "freebusy", POOL, "--start", "2026-03-09",
                         "--end", "2026-03-12", "--json"], capture_output=True, text=True,
                        env={"MR_ENGINE_DATABASE_URL": db_url})
    assert json.loads(done.stdout) == [
        {"start": "2026-03-10T10:00:00Z", "end": "2026-03-10T11:00:00Z", "type": "BUSY"}]
