"""Who may book, end to end: requests over LMTP to a real server, replies caught by a real SMTP
smarthost. Book-in by a nested group and by domain, external organizers, an organizer who is
not the sender, Authentication-Results from a trusted and an untrusted service, working
hours across a daylight-saving change, the minimum duration, the response text, and a
request-in match with nobody to approve it; SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import email
import email.message
import logging
import smtplib
import time
from datetime import datetime, timedelta

import pytest

from mr_engine.store import directory
from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.servers import RunningServer, make_settings
from mr_engine.testing.times import HOUR, NOW, T9, UTC

ALICE, BOB = "alice@example.com", "bob@example.com"
PARTNER = "carol@partner.example"
REMOTE = "organizer@remote.example"


def _staff(db) -> None:
    """alice in staff, staff in all-staff; bob in no group."""
    add_users(db, "alice", "bob")
    with db.write() as session:
        staff = directory.create_group(session, "staff")
        outer = directory.create_group(session, "all-staff")
        directory.add_member(session, staff, directory.get_user(session, "alice"))
        directory.add_group_member(session, outer, staff)
        directory.add_group_member(session, staff, outer)  # a cycle: still decided


def _forged(message: bytes, sender: str) -> bytes:
    """The message with its From header naming ``sender`` instead of the organizer."""
    head, _, body = message.partition(b"\n\n")
    lines = [f"From: {sender}".encode() if line.startswith(b"From:") else line
             for line in head.split(b"\n")]
    return b"\n".join(lines) + b"\n\n" + body


def _with_header(message: bytes, header: str) -> bytes:
    return header.encode() + b"\n" + message


class Room:
    """A running server for the room, and the replies its smarthost received."""

    def __init__(self, server: RunningServer, smarthost) -> None:
        self.server, self.sink = server, smarthost.sink

    def send(self, message: bytes, envelope_sender: str) -> None:
        with smtplib.LMTP("127.0.0.1", self.server.port) as client:
            assert client.sendmail(envelope_sender, [ROOM], message) == {}

    def ask(self, uid: str, organizer: str, start: datetime = T9, end: datetime | None = None,
            envelope_sender: str | None = None, replies: int = 1, **kw) -> list:
        """Send a request by ``organizer``; the ``replies`` it got (parsed messages)."""
        before = len(self.sink.received)
        message = kw.pop("message", None) or invite(uid, start, end or start + HOUR, ROOM,
                                                    organizer=organizer, **kw)
        self.send(message, envelope_sender or organizer)
        deadline = time.monotonic() + 10
        while len(self.sink.received) < before + replies:
            assert time.monotonic() < deadline, "no reply"
            time.sleep(0.02)
        return [email.message_from_bytes(r.content) for r in self.sink.received[before:]]


@pytest.fixture
def open_room(db, db_url, smarthost):
    """``open_room(resource settings, server=server settings)``: the room in Europe/Berlin,
    with the staff, and a running server relaying to the smarthost."""
    with contextlib.ExitStack() as stack:
        def start(server: dict | None = None, **fields) -> Room:
            _staff(db)
            add_resource(db, "room", ROOM, timezone="Europe/Berlin", **fields)
            settings = make_settings(db_url, smarthost=f"127.0.0.1:{smarthost.port}",
                                     **(server or {}))
            running = stack.enter_context(RunningServer(settings, clock=lambda: NOW))
            return Room(running, smarthost)
        yield start


def subject(reply: email.message.Message) -> str:
    return str(reply["Subject"])


def text_of(reply: email.message.Message) -> str:
    part = next(p for p in reply.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def comment(reply: email.message.Message) -> str:
    return " ".join(str(v.get("COMMENT", "")) for v in reply_vevents(reply.as_bytes()))


NOT_ALLOWED = "you are not allowed to book this resource"


def test_book_in_by_nested_group_and_by_domain(open_room) -> None:
    room = open_room(mr_book_in="group:all-staff,domain:partner.example")
    [by_alice] = room.ask("g1", ALICE)  # a member of staff, which is in all-staff
    [by_carol] = room.ask("g2", PARTNER, start=T9 + 2 * HOUR)
    [by_bob] = room.ask("g3", BOB, start=T9 + 4 * HOUR)
    assert [subject(r) for r in (by_alice, by_carol, by_bob)] == \
        ["Accepted: Planning", "Accepted: Planning", "Declined: Planning"]
    assert comment(by_bob) == NOT_ALLOWED
    assert f"Reason: {NOT_ALLOWED}" in text_of(by_bob)


def test_external_organizers_are_declined_with_their_own_reason(open_room) -> None:
    room = open_room(mr_allow_external=False)
    [outside] = room.ask("e1", REMOTE)
    [inside] = room.ask("e2", ALICE, start=T9 + 2 * HOUR)
    assert (subject(outside), subject(inside)) == ("Declined: Planning", "Accepted: Planning")
    assert comment(outside) == ("organizers outside the local domains may not book this "
                                f"resource ({REMOTE})")


def test_an_organizer_who_is_not_the_sender_is_only_matched_by_all(open_room, db) -> None:
    room = open_room(mr_book_in="alice")
    forged = _forged(invite("f1", T9, T9 + HOUR, ROOM, organizer=ALICE), "mallory@evil.example")
    [declined] = room.ask("f1", ALICE, envelope_sender="mallory@evil.example", message=forged)
    assert comment(declined) == NOT_ALLOWED + (
        " (the organizer's address is not the message's From, Sender or envelope sender)")
    # Sent by alice herself (the envelope sender), the same request is hers.
    [accepted] = room.ask("f2", ALICE, message=_forged(
        invite("f2", T9, T9 + HOUR, ROOM, organizer=ALICE), "mallory@evil.example"))
    assert subject(accepted) == "Accepted: Planning"
    # With book-in all (the default) the forged one is accepted, as it always was.
    with db.write() as session:
        directory.update_user(session, directory.get_user(session, "room"), mr_book_in="all")
    [as_before] = room.ask("f3", ALICE, start=T9 + 2 * HOUR,
                           envelope_sender="mallory@evil.example", message=_forged(
                               invite("f3", T9 + 2 * HOUR, T9 + 3 * HOUR, ROOM,
                                      organizer=ALICE), "mallory@evil.example"))
    assert subject(as_before) == "Accepted: Planning"


TRUSTED_MX = "mx.example.com"
PASS = "Authentication-Results: {}; dmarc=pass (p=reject) header.from=example.com"


def test_authentication_results_count_from_a_trusted_authserv_id_only(open_room) -> None:
    room = open_room(server={"trusted_authserv_ids": (TRUSTED_MX,)}, mr_book_in="alice",
                     mr_verify_organizer="authenticated")
    def request(uid: str, hour: int, header: str | None) -> bytes:
        message = invite(uid, T9 + hour * HOUR, T9 + (hour + 1) * HOUR, ROOM, organizer=ALICE)
        return _with_header(message, header) if header else message

    [trusted] = room.ask("a1", ALICE, message=request("a1", 0, PASS.format(TRUSTED_MX)))
    [untrusted] = room.ask("a2", ALICE, message=request("a2", 2, PASS.format("mx.evil.example")))
    [missing] = room.ask("a3", ALICE, message=request("a3", 4, None))
    submitted = "Authentication-Results: mx.example.com; auth=pass smtp.auth=alice"
    [by_login] = room.ask("a4", ALICE, message=request("a4", 6, submitted))
    assert [subject(r) for r in (trusted, untrusted, missing, by_login)] == [
        "Accepted: Planning", "Declined: Planning", "Declined: Planning", "Accepted: Planning"]
    assert comment(untrusted) == NOT_ALLOWED + (
        " (the organizer's address is not vouched for by a trusted authentication)")


# 16:30-17:00 UTC weekly: 17:30 in Berlin's winter time, 18:30 once the clocks went forward
# on 29 March 2026.
SPRING = datetime(2026, 3, 24, 16, 30, tzinfo=UTC)


def test_working_hours_across_a_dst_change_decline_just_that_occurrence(open_room) -> None:
    room = open_room(mr_working_hours="Mon-Fri 08:00-18:00", mr_max_conflict_instances=1)
    accepted, declined = room.ask("w1", ALICE, start=SPRING,
                                  end=SPRING + timedelta(minutes=30),
                                  rrule="FREQ=WEEKLY;COUNT=2", replies=2)
    assert (subject(accepted), subject(declined)) == ("Accepted: Planning",
                                                      "Declined: Planning")
    [occurrence] = reply_vevents(declined.as_bytes())
    assert occurrence["RECURRENCE-ID"].dt == SPRING + timedelta(weeks=1)
    assert str(occurrence["COMMENT"]) == (
        "outside working hours: 2026-03-31 18:30-19:00 (Europe/Berlin) is not within "
        "Mon-Fri 08:00-18:00")
    # A single meeting at 07:30 in Berlin is declined outright.
    [early] = room.ask("w2", ALICE, start=datetime(2026, 3, 10, 6, 30, tzinfo=UTC))
    assert comment(early).startswith("outside working hours: 2026-03-10 07:30-08:30")


def test_min_duration_and_the_response_text_in_every_reply(open_room) -> None:
    room = open_room(mr_min_duration=30,
                     mr_response_text="Keys are at the front desk.\n\nThanks!")
    [short] = room.ask("d1", ALICE, end=T9 + timedelta(minutes=15))
    [fine] = room.ask("d2", ALICE, start=T9 + HOUR, end=T9 + HOUR + timedelta(minutes=30))
    assert comment(short) == ("shorter than the minimum duration of 30 minutes "
                              "(2026-03-10 09:00-09:15 (UTC))")
    assert subject(fine) == "Accepted: Planning"
    for reply in (short, fine):
        assert text_of(reply).endswith("\r\n\r\nKeys are at the front desk.\r\n\r\nThanks!\r\n")


def test_a_request_in_match_with_no_delegates_is_declined_and_logged(open_room, caplog) -> None:
    room = open_room(mr_book_in="internal", mr_request_in="all")
    caplog.set_level(logging.WARNING, logger="mr_engine.services.booking")
    [declined] = room.ask("r1", REMOTE)
    [booked] = room.ask("r2", ALICE, start=T9 + 2 * HOUR)
    assert comment(declined) == "nobody can approve requests for this resource"
    assert subject(booked) == "Accepted: Planning"
    assert any("no delegates" in r.getMessage() for r in caplog.records)
