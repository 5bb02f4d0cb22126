"""Meeting requests delivered over LMTP to resources: booking, replies, updates, cancels."""

from __future__ import annotations

import datetime as dt
import threading

from mr_engine.core.itip import read_calendar
from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.lmtp_client import RawClient, deliver, send_message
from mr_engine.testing.paths import BIN, checkout_of
from mr_engine.testing.servers import RunningServer, server_at
from mr_engine.testing.store_views import agenda, messages_of, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9, UTC

FIXTURES = checkout_of(__file__) / "fixtures"


def test_request_is_booked_replied_and_filed_as_processed(db, db_url):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM, message_id="<i1@remote>"))
    [entry] = agenda(db_url, "room")
    assert entry == {"uid": "u1", "recurrence_id": None, "summary": "Planning",
                     "start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z",
                     "organizer": "organizer@remote.example", "status": "booked"}
    [reply] = outbox_rows(db)
    assert reply.sender == ROOM and reply.recipients == "organizer@remote.example"
    assert reply.subject == "Accepted: Planning" and reply.status == "queued"
    [vevent] = reply_vevents(reply.content)
    assert str(vevent["ATTENDEE"].params["PARTSTAT"]) == "ACCEPTED"
    assert [m.folder for m in messages_of(db, "room")] == ["Processed Requests"]


def test_conflicting_request_is_declined_with_the_reason(db, db_url):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("a", T9, T9 + HOUR, ROOM))
        deliver(server.port, invite("b", T9 + HOUR / 2, T9 + HOUR * 1.5, ROOM))
        deliver(server.port, invite("c", T9 + HOUR, T9 + 2 * HOUR, ROOM))  # back-to-back
    assert [e["uid"] for e in agenda(db_url, "room")] == ["a", "c"]
    subjects = [m.subject for m in outbox_rows(db)]
    assert subjects == ["Accepted: Planning", "Declined: Planning",
                        "New time proposed: Planning", "Accepted: Planning"]  # + the COUNTER
    [declined] = reply_vevents(outbox_rows(db)[1].content)
    assert str(declined["ATTENDEE"].params["PARTSTAT"]) == "DECLINED"
    assert "2026-03-10" in str(declined["COMMENT"])


def test_same_request_delivered_twice_books_and_replies_once(db, db_url):
    add_resource(db, "room", ROOM)
    message = invite("u1", T9, T9 + HOUR, ROOM)  # no Message-ID: SEQUENCE/DTSTAMP decide
    with server_at(db_url, NOW) as server:
        deliver(server.port, message)
        deliver(server.port, message)
    assert len(agenda(db_url, "room")) == 1 and len(outbox_rows(db)) == 1


def test_update_moves_the_booking_and_stale_update_is_ignored(db, db_url):
    add_resource(db, "room", ROOM)
    stamp = dt.datetime(2026, 2, 1, tzinfo=UTC)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM, sequence=1, dtstamp=stamp))
        deliver(server.port, invite("u1", T9 + 3 * HOUR, T9 + 4 * HOUR, ROOM, sequence=2,
                                    dtstamp=stamp))
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM, sequence=1,
                                    dtstamp=stamp + HOUR))
    [entry] = agenda(db_url, "room")
    assert entry["start"] == "2026-03-10T12:00:00Z"
    assert len(outbox_rows(db)) == 2  # the stale revision got no reply


def test_cancel_frees_the_resource_without_a_reply(db, db_url):
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM, method="CANCEL", sequence=1))
        deliver(server.port, invite("u2", T9, T9 + HOUR, ROOM))
    assert [e["uid"] for e in agenda(db_url, "room")] == ["u2"]
    assert [m.subject for m in outbox_rows(db)] == ["Accepted: Planning"] * 2


def test_non_invitations_and_broken_calendars_reach_the_inbox(db, db_url):
    add_resource(db, "room", ROOM)
    broken = invite("u1", T9, T9 + HOUR, ROOM).replace(b"DTSTART:20260310T090000Z",
                                                       b"DTSTART:not-a-time")
    publish = (FIXTURES / "mozilla" / "message-non-invite.eml").read_bytes()
    with server_at(db_url, NOW) as server:
        deliver(server.port, broken)
        deliver(server.port, publish)
        deliver(server.port, invite("u9", T9, T9 + HOUR, "someone.else@example.com"))
    assert [m.folder for m in messages_of(db, "room")] == ["Inbox"] * 3
    assert agenda(db_url, "room") == [] and outbox_rows(db) == []


def test_mailbox_without_auto_accept_just_gets_the_mail(db, db_url):
    add_resource(db, "room", ROOM, mr_accept=False)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
    assert [m.folder for m in messages_of(db, "room")] == ["Inbox"]
    assert agenda(db_url, "room") == []


def test_recurring_request_declined_when_recurring_is_not_allowed(db, db_url):
    add_resource(db, "room", ROOM, mr_decline_recurring=True)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("s", T9, T9 + HOUR, ROOM, rrule="FREQ=WEEKLY;COUNT=4"))
    [reply] = outbox_rows(db)
    assert reply.subject == "Declined: Planning"
    # Kopano's words (kopano-mr-accept), capital R and all.
    assert str(reply_vevents(reply.content)[0]["COMMENT"]) == "Recurring meetings are not allowed"


def test_thunderbird_series_exception_and_cancel(db, db_url):
    """The Thunderbird conversation from the fixtures: series, moved instance, cancel."""
    add_resource(db, "receiver", "receiver@example.com")
    now = dt.datetime(2022, 3, 1, tzinfo=UTC)
    mozilla = FIXTURES / "mozilla"
    with server_at(db_url, now) as server:
        deliver(server.port, (mozilla / "repeat-event.eml").read_bytes(), "receiver@example.com")
        starts = [e["start"] for e in agenda(db_url, "receiver")]
        assert starts == ["2022-03-16T11:00:00Z", "2022-03-17T11:00:00Z", "2022-03-18T11:00:00Z"]
        deliver(server.port, (mozilla / "exception-major.eml").read_bytes(),
                "receiver@example.com")
        moved = [(e["recurrence_id"], e["start"]) for e in agenda(db_url, "receiver")]
        assert ("2022-03-17T11:00:00Z", "2022-03-17T05:00:00Z") in moved and len(moved) == 3
        deliver(server.port, (mozilla / "cancel-repeat-event.eml").read_bytes(),
                "receiver@example.com")
    assert agenda(db_url, "receiver") == []
    assert all(m.folder == "Processed Requests" for m in messages_of(db, "receiver"))
    assert [m.recipients for m in outbox_rows(db)] == ["sender@example.com"] * 2


def _storm(db_url: str, servers: list[RunningServer], count: int) -> None:
    def one(i: int) -> None:
        deliver(servers[i % len(servers)].port,
                invite(f"storm-{i}", T9, T9 + HOUR, "beamer@example.com"), "beamer@example.com")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_parallel_requests_for_one_slot_accept_exactly_capacity(db, db_url):
    """Two server processes' worth of committers on one database: check-and-book is serialized."""
    add_resource(db, "beamer", "beamer@example.com", resource_type="equipment",
                 resource_capacity=3)
    with server_at(db_url, NOW) as one, server_at(db_url, NOW) as two:
        _storm(db_url, [one, two], 12)
    assert len(agenda(db_url, "beamer")) == 3
    subjects = sorted(m.subject for m in outbox_rows(db))
    assert subjects.count("Accepted: Planning") == 3 and subjects.count("Declined: Planning") == 9


def test_kopano_mr_accept_processes_stdin_like_delivery(db, db_url):
    add_resource(db, "room", ROOM)
    env = {"MR_ENGINE_DATABASE_URL": db_url}
    future = dt.datetime.now(UTC).replace(microsecond=0, second=0) + dt.timedelta(days=2)
    run = lambda message, user="room": commands.run(  # noqa: E731
        [str(BIN / "kopano-mr-accept"), user], input=message, env=env, capture_output=True)
    first = run(invite("cli", future, future + HOUR, ROOM))
    assert first.returncode == 0 and first.stdout.decode().strip() == "accepted"
    second = run(invite("cli2", future, future + HOUR, ROOM))
    assert second.returncode == 0 and second.stdout.decode().startswith("declined: ")
    assert run(b"Subject: hi\r\n\r\nplain mail\r\n").returncode == 1
    cancel = run(invite("cli", future, future + HOUR, ROOM, method="CANCEL", sequence=1))
    assert cancel.returncode == 0 and cancel.stdout.decode().strip() == "cancelled"
    assert run(invite("x", future, future + HOUR, ROOM), user="ghost").returncode == 1
    # accepted, declined (and its COUNTER proposing a free time); no reply to a CANCEL
    assert len(outbox_rows(db)) == 3


def test_outlook_invitation_in_a_windows_zone_is_booked_in_utc(db, db_url):
    """Exchange's base64 calendar with `FLE Standard Time` (Europe/Helsinki)."""
    data = (FIXTURES / "mozilla" / "outlook-test-invite.eml").read_bytes()
    import email
    from mr_engine.core.imip import find_calendar
    from mr_engine.core.itip import parse_invitation
    inv = parse_invitation(find_calendar(email.message_from_bytes(data)), UTC)
    attendee = inv.events[0].attendees[0].address
    add_resource(db, "res", attendee)
    start = inv.events[0].start
    with server_at(db_url, start - dt.timedelta(days=1)) as server:
        deliver(server.port, data, attendee)
    [entry] = agenda(db_url, "res")
    assert entry["start"] == start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_rsvp_false_books_without_a_reply_and_missing_rsvp_still_gets_one(db, db_url):
    add_resource(db, "room", ROOM)
    no_rsvp = invite("u2", T9 + 2 * HOUR, T9 + 3 * HOUR, ROOM).replace(b";RSVP=TRUE", b"")
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM, rsvp="FALSE"))
        deliver(server.port, no_rsvp)
    assert [e["uid"] for e in agenda(db_url, "room")] == ["u1", "u2"]
    assert len(outbox_rows(db)) == 1


def test_series_within_conflict_limits_is_accepted_and_only_the_conflict_declined(db, db_url):
    add_resource(db, "room", ROOM, mr_max_conflict_instances=1)
    week = dt.timedelta(days=7)
    with server_at(db_url, NOW) as server:
        deliver(server.port, invite("single", T9 + week, T9 + week + HOUR, ROOM))
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule="FREQ=WEEKLY;COUNT=4"))
    booked = [(e["uid"], e["start"][:10]) for e in agenda(db_url, "room")]
    assert booked == [("series", "2026-03-10"), ("single", "2026-03-17"),
                      ("series", "2026-03-24"), ("series", "2026-03-31")]
    replies = outbox_rows(db)[1:]
    assert [r.subject for r in replies] == ["Accepted: Planning", "Declined: Planning"]
    [declined] = reply_vevents(replies[1].content)
    assert declined["RECURRENCE-ID"].dt == T9 + week
    assert str(declined["ATTENDEE"].params["PARTSTAT"]) == "DECLINED"


def test_several_declined_occurrences_share_one_reply_message(db, db_url):
    add_resource(db, "room", ROOM, mr_conflict_percentage=50)
    week = dt.timedelta(days=7)
    with server_at(db_url, NOW) as server:
        for n in (1, 2):
            deliver(server.port, invite(f"single{n}", T9 + n * week, T9 + n * week + HOUR, ROOM))
        deliver(server.port, invite("series", T9, T9 + HOUR, ROOM, rrule="FREQ=WEEKLY;COUNT=6"))
    replies = outbox_rows(db)[2:]
    assert [r.subject for r in replies] == ["Accepted: Planning", "Declined: Planning"]
    declined = reply_vevents(replies[1].content)
    assert [v["RECURRENCE-ID"].dt for v in declined] == [T9 + week, T9 + 2 * week]


def deliver_to_each(port: int, message: bytes, recipients: list[str]) -> list[int]:
    """One LMTP transaction (smtplib's LMTP reads one reply, not one per recipient)."""
    client = RawClient(port)
    client.reply()
    _, data = send_message(client, "organizer@remote.example", recipients, message)
    client.close()
    return [int(d[:3]) for d in data]


def test_one_calendar_parse_serves_every_resource_of_the_message(db, db_url, monkeypatch):
    from mr_engine.delivery import context

    add_resource(db, "room", ROOM)
    add_resource(db, "beamer", "beamer@example.com", resource_type="equipment")
    reads = []
    monkeypatch.setattr(context, "read_calendar",
                        lambda message: reads.append(message) or read_calendar(message))
    message = invite("both", T9, T9 + HOUR, ROOM,
                     extra="ATTENDEE;CUTYPE=RESOURCE;RSVP=TRUE:mailto:beamer@example.com")
    with server_at(db_url, NOW) as server:
        assert deliver_to_each(server.port, message, [ROOM, "beamer@example.com"]) == [250, 250]
    assert len(reads) == 1
    assert [e["uid"] for e in agenda(db_url, "room")] == ["both"]
    assert [e["uid"] for e in agenda(db_url, "beamer")] == ["both"]
    assert sorted(r.sender for r in outbox_rows(db)) == ["beamer@example.com", ROOM]


def test_floating_times_are_read_in_each_resources_own_zone(db, db_url):
    add_resource(db, "room", ROOM)  # the default zone, UTC
    add_resource(db, "berlin", "berlin@example.com", timezone="Europe/Berlin")
    message = invite("float", T9, T9 + HOUR, ROOM,
                     extra="ATTENDEE;CUTYPE=RESOURCE;RSVP=TRUE:mailto:berlin@example.com")
    message = message.replace(b"0000Z", b"0000")  # DTSTART/DTEND 09:00-10:00, floating
    with server_at(db_url, NOW) as server:
        assert deliver_to_each(server.port, message, [ROOM, "berlin@example.com"]) == [250, 250]
    assert [e["start"] for e in agenda(db_url, "room")] == ["2026-03-10T09:00:00Z"]
    assert [e["start"] for e in agenda(db_url, "berlin")] == ["2026-03-10T08:00:00Z"]
