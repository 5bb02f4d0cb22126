"""Generated mail on the wire: worst-case replies relayed through a strict real SMTP server.

The smarthost here refuses what strict relays refuse: a DATA line over 998 octets
(``500 Line too long``, RFC 5321 §4.5.3.1.6) and any 8-bit byte without 8BITMIME or
SMTPUTF8. Replies go through the real relay (``delivery/relay.py``); what arrives must have
short lines, iCalendar lines of at most 75 octets (RFC 5545 §3.1) and parse back to the
right content. Then internationalized organizers (RFC 6531, IDNA) with and without SMTPUTF8.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from icalendar import Calendar

from mr_engine.store import outbox
from mr_engine.core.oof_rules import build_auto_reply
from mr_engine.delivery.relay import Relay
from mr_engine.store.db import open_database
from mr_engine.core.itip import EventData, Invitation
from mr_engine.core.outgoing import one_line
from mr_engine.core.reply import Answer, build_reply

from mr_engine.testing.accounts import ROOM as ROOM_E2E, add_resource
from mr_engine.testing.ical import parse_fixture
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.paths import checkout_of
from mr_engine.testing.servers import RunningServer, make_settings
from mr_engine.testing.smarthost import Sink, Smarthost, relay_settings
from mr_engine.testing.store_views import messages_of, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

FIXTURES = checkout_of(__file__) / "fixtures"

ROOM = "room1@example.org"
CONFLICT = "conflict on 2026-03-{:02d} 09:00-09:30 (Europe/Berlin)"
NEEDS_SMTPUTF8 = "553 5.6.7 the recipient's address needs SMTPUTF8, which the smarthost does not offer"


class StrictSink(Sink):
    """A smarthost handler with the strictness of real relays."""

    async def handle_DATA(self, server, session, envelope):
        return refusal(envelope) or await super().handle_DATA(server, session, envelope)


def refusal(envelope) -> str | None:
    content = envelope.original_content
    if any(len(line) > 998 for line in content.split(b"\r\n")):
        return "500 Line too long"
    if envelope.smtp_utf8:
        return None
    if not all(a.isascii() for a in [envelope.mail_from, *envelope.rcpt_tos]):
        return "553 5.6.7 non-ASCII address without SMTPUTF8"
    if not content.isascii() and "BODY=8BITMIME" not in envelope.mail_options:
        return "554 5.6.0 8-bit data without BODY=8BITMIME or SMTPUTF8"
    return None


def strict_smarthost(smtputf8: bool) -> Smarthost:
    host = Smarthost(enable_SMTPUTF8=smtputf8)
    host.sink = StrictSink()
    return host.start()


@pytest.fixture(params=[True, False], ids=["smtputf8", "ascii-only"])
def strict(request):
    host = strict_smarthost(request.param)
    yield host
    host.stop()


@pytest.fixture
def store(tmp_path):
    database = open_database(f"sqlite:///{tmp_path}/store.db")
    yield database
    database.dispose()


def relay(store, host: Smarthost, content: bytes, recipient: str, sender: str = ROOM):
    """Queue as delivery/meeting.py does, run one relay pass; the resulting queue row."""
    with store.write() as session:
        outbox.enqueue(session, sender=sender, recipients=[recipient], content=content,
                       subject="reply", now=NOW)
    Relay(store, relay_settings(host.port)).run_once(NOW)
    [row] = outbox_rows(store)
    return row


def received(host: Smarthost) -> bytes:
    [got] = host.sink.received
    return got.content


# --- the worst cases ---------------------------------------------------------------------------

def decline(event: EventData, reasons: list[str], recurring: bool) -> list[Answer]:
    """One declined answer per reason: an occurrence each, or the whole meeting once."""
    if not recurring:
        return [Answer(event, "DECLINED", "; ".join(reasons), None)]
    return [Answer(event, "DECLINED", reason, event.start + timedelta(days=i))
            for i, reason in enumerate(reasons)]


def worst_reply(case: str) -> tuple[Invitation, list[Answer], str]:
    inv = parse_fixture(FIXTURES / "mozilla/repeat-event.eml")
    event = inv.events[0]
    reasons = [CONFLICT.format(i % 28 + 1) for i in range(1000)]
    if case == "1000 declined occurrences":
        return inv, decline(event, reasons, True), "Room 1"
    if case == "1000 reasons in one":
        return inv, decline(event, reasons, False), "Room 1"
    if case == "10 KB non-ASCII summary":
        event = replace(event, summary="Bücherei-Planung für Jürgen – 会议室 😀 " * 250)
        return inv_with(inv, event), decline(event, reasons[:3], True), "Raum Zürich"
    if case == "one 10 KB word":
        event = replace(event, summary="ü" * 10_000, organizer_cn="x" * 500)
        return inv_with(inv, event), [Answer(event, "ACCEPTED", "", None)], "y" * 500
    assert case == "long names"
    event = replace(event, organizer_cn="Dr. Jürgen Müller-Lüdenscheidt, Abteilung " * 20)
    return inv_with(inv, event), decline(event, reasons[:40], False), 'Room "A" (Zürich), ' * 20


def inv_with(inv: Invitation, event: EventData) -> Invitation:
    return Invitation(inv.method, inv.uid, (event,), inv.prodid)


def part_lines(part: email.message.Message) -> list[bytes]:
    """The part's lines after undoing its transfer encoding."""
    return re.split(rb"\r?\n", part.get_payload(decode=True))


def assert_valid_on_the_wire(raw: bytes, wrapped: bool = True) -> email.message.EmailMessage:
    """Short lines on the wire; decoded, iCalendar within 75 octets and, where the text is
    ours (``wrapped``), text lines within 78 characters but for single long words."""
    lines = raw.split(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(map(len, lines)) <= 78  # headers folded, text 7bit or quoted-printable
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            assert max(map(len, part_lines(part))) <= 75  # octets, RFC 5545 §3.1
        elif part.get_content_type() == "text/plain" and wrapped:
            long_lines = [line for line in part_lines(part) if len(line.decode()) > 78]
            assert all(len(line.split()) == 1 for line in long_lines)  # only one long word
    return msg


CASES = ["1000 declined occurrences", "1000 reasons in one", "10 KB non-ASCII summary",
         "one 10 KB word", "long names"]


@pytest.mark.parametrize("case", CASES)
def test_worst_case_replies_pass_a_strict_smarthost(store, strict, case):
    inv, answers, resource_name = worst_reply(case)
    event = answers[0].event
    content = build_reply(inv, answers, ROOM, resource_name, "<req-1@example.org>", NOW, "mr.test")
    row = relay(store, strict, content, event.organizer)
    assert (row.status, row.last_error) == ("sent", "")
    msg = assert_valid_on_the_wire(received(strict))
    assert str(msg["Subject"]).split() == f"{answers[0].partstat.title()}: {one_line(event.summary)}".split()
    assert msg["To"].addresses[0].display_name.split() == one_line(event.organizer_cn).split() \
        or " " not in event.organizer_cn  # Python's parser spaces encoded-words in a phrase
    calendar_part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    vevents = Calendar.from_ical(calendar_part.get_payload(decode=True)).walk("VEVENT")
    assert len(vevents) == len(answers)
    assert {str(v["SUMMARY"]) for v in vevents} == {event.summary}  # the whole summary
    assert [str(v.get("COMMENT", "")) for v in vevents] == [a.reason for a in answers]
    assert vevents[0]["ORGANIZER"].params["CN"] == one_line(event.organizer_cn)


def test_worst_case_out_of_office_reply_passes_a_strict_smarthost(store, strict):
    original = email.message_from_bytes(
        b"From: bob@example.org\r\nTo: alice@example.com\r\nMessage-ID: <orig@example.org>\r\n"
        + b"Subject: " + ("Frage zu Büchern " * 40).encode() + b"\r\n\r\nhi\r\n")
    body = ("Ich bin bis Montag nicht im Büro – " * 100 + "\n") * 3 + "x" * 5000 + "\n"
    content = build_auto_reply(original=original, to="bob@example.org",
                               from_name="Alice Müller-Lüdenscheidt " * 10,
                               from_address="alice@example.com", subject="Abwesend " * 20,
                               body=body, now=NOW, hostname="mr.test")
    row = relay(store, strict, content, "bob@example.org", sender="")
    assert (row.status, row.last_error) == ("sent", "")
    # The user's own text keeps its lines: quoted-printable carries them unchanged.
    msg = assert_valid_on_the_wire(received(strict), wrapped=False)
    assert msg.get_content().replace("\r\n", "\n") == body
    assert str(msg["Subject"]).startswith("Abwesend Abwesend")


# --- internationalized organizers (RFC 6531, IDNA) ----------------------------------------------

def reply_to(organizer: str) -> bytes:
    inv = parse_fixture(FIXTURES / "mozilla/single-event.eml")
    event = replace(inv.events[0], organizer=organizer, organizer_cn="Jürgen")
    return build_reply(inv_with(inv, event), [Answer(event, "ACCEPTED", "", None)], ROOM,
                       "Room 1", None, NOW, "mr.test")


def to_header(content: bytes) -> str:
    # An RFC 6532 message: the header is UTF-8, so it is parsed as text.
    msg = email.message_from_string(content.decode("utf-8"), policy=email.policy.default)
    return msg["To"].addresses[0].addr_spec


@pytest.mark.parametrize("organizer", ["jürgen@bücher.example", "jürgen@example.org",
                                       "用户@例子.广告"])
def test_utf8_local_part_is_relayed_with_smtputf8(store, organizer):
    host = strict_smarthost(smtputf8=True)
    try:
        row = relay(store, host, reply_to(organizer), organizer)
        [got] = host.sink.received
    finally:
        host.stop()
    assert (row.status, row.recipients) == ("sent", organizer)
    assert got.rcpt_tos == [organizer]
    assert to_header(got.content) == organizer


def test_ascii_local_part_gets_the_a_label_domain_with_or_without_smtputf8(store, strict):
    row = relay(store, strict, reply_to("juergen@bücher.example"), "juergen@bücher.example")
    [got] = strict.sink.received
    assert (row.status, row.recipients) == ("sent", "juergen@xn--bcher-kva.example")
    assert got.rcpt_tos == ["juergen@xn--bcher-kva.example"]
    assert got.content.isascii()  # no RFC 6532 header: any relay takes it
    assert to_header(got.content) == "juergen@xn--bcher-kva.example"


@pytest.mark.parametrize("organizer", ["jürgen@bücher.example", "jürgen@example.org"])
def test_utf8_local_part_without_smtputf8_fails_with_a_clear_error(store, organizer):
    host = strict_smarthost(smtputf8=False)
    try:
        row = relay(store, host, reply_to(organizer), organizer)
    finally:
        host.stop()
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, NEEDS_SMTPUTF8)
    assert host.sink.received == []


@pytest.mark.parametrize("organizer, queued_to", [
    ("jürgen@bücher.example", "jürgen@bücher.example"),
    ("juergen@bücher.example", "juergen@xn--bcher-kva.example")])
def test_a_request_from_an_internationalized_organizer_is_answered(tmp_path, organizer, queued_to):
    url = f"sqlite:///{tmp_path}/store.db"
    store = open_database(url)
    try:
        add_resource(store, "room", ROOM_E2E)
        with RunningServer(make_settings(url), clock=lambda: NOW) as server:
            deliver(server.port, invite("idn-1", T9, T9 + HOUR, ROOM_E2E, organizer=organizer))
        [reply] = outbox_rows(store)
        assert (reply.recipients, reply.subject, reply.status) == (
            queued_to, "Accepted: Planning", "queued")
        assert to_header(reply.content) == queued_to
        assert [m.folder for m in messages_of(store, "room")] == ["Processed Requests"]
    finally:
        store.dispose()
