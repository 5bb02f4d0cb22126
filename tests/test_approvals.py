"""Approval by delegates: a request that only the request-in list allows is booked tentatively
and decided by a delegate (by mail, by command, on the approval page) or by the clock.

End to end: invitations over LMTP to a real server, the replies and the delegates' mail
caught by a real SMTP smarthost; SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import http.client
import json
import re
import subprocess
import time
from email.message import EmailMessage
from urllib.parse import urlencode

import pytest

from mr_engine.core import approval_mail, approval_tokens as tokens
from mr_engine.delivery.maintenance import Maintenance
from mr_engine.store.directory import add_delegate, get_user
from mr_engine.testing import commands
from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.http import get
from mr_engine.testing.invites import invite, reply_vevents
from mr_engine.testing.lmtp_client import deliver
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import make_settings, server_at
from mr_engine.testing.store_views import agenda, messages_of, outbox_rows
from mr_engine.testing.times import HOUR, NOW, T9

DELEGATES = ("alice@example.com", "bob@example.com")
ORGANIZER = "organizer@remote.example"


# --- pure parts -------------------------------------------------------------------------------

def test_a_token_is_bound_to_its_approval_and_nonce() -> None:
    token = tokens.make(b"k" * 32, 17, "n1")
    assert tokens.parse(token) == 17 and tokens.genuine(b"k" * 32, token, 17, "n1")
    assert tokens.genuine(b"k" * 32, token.upper(), 17, "n1")  # an MTA folded the case
    assert not tokens.genuine(b"k" * 32, token, 17, "n2")  # a replaced approval's nonce
    assert not tokens.genuine(b"x" * 32, token, 17, "n1")  # another store's secret
    assert not tokens.genuine(b"k" * 32, token, 18, "n1")
    assert tokens.parse("17-short") is None and tokens.parse("x-" + "a" * 20) is None
    assert tokens.parse("9" * 10 + "-" + "a" * 20) is None  # beyond any id the store has


@pytest.mark.parametrize("recipient, ask", [
    ("room+approve-1-abc@example.com", tokens.Ask("approve", "1-abc")),
    ("<Room+DECLINE-1-abc@example.com>", tokens.Ask("decline", "1-abc")),
    ("room@example.com", None), ("room+other@example.com", None),
    ("room+approve-@example.com", None), ("room+approve-1-abc", None)])
def test_approve_and_decline_addresses(recipient, ask) -> None:
    assert tokens.ask_of(recipient) == ask


def test_the_comment_is_the_first_line_of_text_not_a_citation() -> None:
    assert approval_mail.comment_of("\n  Fine by me  \nthanks\n") == "Fine by me"
    assert approval_mail.comment_of("> On Monday the room wrote:\n") == ""
    assert approval_mail.comment_of("") == ""
    assert approval_mail.waited(168) == "7 days" and approval_mail.waited(36) == "36 hours"
    assert approval_mail.waited(24) == "1 day"


# --- end to end -------------------------------------------------------------------------------

def approving_room(db, delegates=("alice", "bob"), **fields) -> None:
    """A room that books nobody at once and everybody with approval, by ``delegates``."""
    add_users(db, "alice", "bob", "carol")
    add_resource(db, "room", ROOM, **{"mr_book_in": "none", "mr_request_in": "all", **fields})
    with db.write() as session:
        room = get_user(session, "room")
        for name in delegates:
            add_delegate(session, room, get_user(session, name))


def wait_mails(smarthost, count: int, timeout: float = 10.0) -> list[email.message.Message]:
    """The first ``count`` messages the smarthost got, parsed; and no more for a moment."""
    deadline = time.monotonic() + timeout
    while len(smarthost.sink.received) < count:
        assert time.monotonic() < deadline, \
            f"{len(smarthost.sink.received)} of {count} messages arrived"
        time.sleep(0.02)
    time.sleep(0.3)
    received = smarthost.sink.received
    assert len(received) == count, [email.message_from_bytes(r.content)["Subject"]
                                    for r in received]
    return [email.message_from_bytes(r.content) for r in received]


def text_of(message: email.message.Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode()


def to(message: email.message.Message) -> str:
    return email.utils.parseaddr(message["To"])[1]


def token_in(message: email.message.Message) -> str:
    return re.search(r"room\+approve-(\S+)@example\.com", text_of(message)).group(1)


def decision_mail(token: str, action: str = "approve", sender: str = "alice@example.com",
                  body: str = "Enjoy the room\n\n> quoted request\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"room+{action}-{token}@example.com"
    msg["Subject"] = "Re: Approval needed: Planning"
    msg.set_content(body)
    return msg.as_bytes()


def deliver_from(port: int, sender: str, to_address: str, message: bytes) -> None:
    import smtplib
    with smtplib.LMTP("127.0.0.1", port) as client:
        assert client.sendmail(sender, [to_address], message) == {}


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return commands.run([str(BIN / "mr-engine"), *args], capture_output=True, text=True,
                        env={"MR_ENGINE_DATABASE_URL": db_url})


def pending(db_url: str) -> list[dict]:
    return json.loads(cli(db_url, "approvals", "--json").stdout)


def statuses(db_url: str) -> list[str]:
    return [e["status"] for e in agenda(db_url, "room")]


def held(db, db_url, smarthost, **server):
    """A server with the request for T9 held for approval: (server, token, mails so far)."""
    approving_room(db)
    server = server_at(db_url, NOW, smarthost=f"127.0.0.1:{smarthost.port}", **server)
    server.__enter__()
    deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM, message_id="<req1@remote>"))
    mails = wait_mails(smarthost, 3)
    asks = [m for m in mails if m["Subject"] == "Approval needed: Planning"]
    return server, token_in(asks[0]), mails


@pytest.fixture
def holding(db, db_url, smarthost):
    server, token, mails = held(db, db_url, smarthost)
    yield server, token, mails
    server.stop()


def test_a_request_needing_approval_is_held_tentatively_and_the_delegates_asked(
        db, db_url, holding):
    _server, token, mails = holding
    [tentative] = [m for m in mails if to(m) == ORGANIZER]
    assert tentative["Subject"] == "Tentative: Planning"
    assert "awaiting approval by alice@example.com or bob@example.com" in text_of(tentative)
    [vevent] = reply_vevents(tentative.as_bytes())
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "TENTATIVE"
    asks = [m for m in mails if to(m) != ORGANIZER]
    assert sorted(to(m) for m in asks) == list(DELEGATES)
    for ask in asks:
        assert ask["Subject"] == "Approval needed: Planning"
        assert ask["Auto-Submitted"] == "auto-generated"
        assert not any(p.get_content_type() == "text/calendar" for p in ask.walk())
        text = text_of(ask)
        assert f"{ORGANIZER}" in text and "2026-03-10 09:00-10:00 (UTC)" in text
        assert f"room+decline-{token}@example.com" in text
        assert "mr-engine approvals accept" in text and "/approvals/" not in text  # no HTTP
    assert statuses(db_url) == ["tentative"]
    [row] = pending(db_url)
    assert row["resource"] == "room" and row["uid"] == "u1" and row["organizer"] == ORGANIZER
    assert (row["start"], row["end"]) == ("2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z")
    assert (row["requested_at"], row["expires_at"]) == ("2026-03-02T08:00:00Z",
                                                        "2026-03-09T08:00:00Z")
    assert json.loads(cli(db_url, "status", "--json").stdout)["pending_approvals"] == 1


def test_approval_by_command_books_firmly_and_tells_the_organizer(db, db_url, holding):
    [row] = pending(db_url)
    done = cli(db_url, "approvals", "accept", str(row["id"]), "--comment", "ok, use it")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"approval {row['id']} accepted; 1 reply queued\n"
    # Queued at the command's own (real) time, which the server's fixed clock never reaches:
    # the reply is read from the queue.
    queued = outbox_rows(db)[-1]
    accepted = email.message_from_bytes(queued.content)
    assert to(accepted) == ORGANIZER and accepted["Subject"] == "Accepted: Planning"
    [vevent] = reply_vevents(queued.content)
    assert vevent["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    assert str(vevent["COMMENT"]) == "approved by an administrator: ok, use it"
    assert accepted["In-Reply-To"] == "<req1@remote>"
    assert statuses(db_url) == ["booked"] and pending(db_url) == []
    again = cli(db_url, "approvals", "decline", str(row["id"]))
    assert again.returncode == 1 and "is not pending: accepted" in again.stderr


@pytest.mark.parametrize("action, verb, left", [("approve", "Accepted", ["booked"]),
                                                ("decline", "Declined", [])])
def test_a_delegates_mail_decides_with_its_first_line_as_comment(db, db_url, smarthost,
                                                                  holding, action, verb, left):
    server, token, _ = holding
    deliver_from(server.port, "alice@example.com", f"room+{action}-{token}@example.com",
                 decision_mail(token, action))
    answer = wait_mails(smarthost, 4)[3]
    assert to(answer) == ORGANIZER and answer["Subject"] == f"{verb}: Planning"
    [vevent] = reply_vevents(answer.as_bytes())
    assert str(vevent["COMMENT"]) == \
        f"{'approved' if action == 'approve' else 'declined'} by alice@example.com: Enjoy the room"
    assert statuses(db_url) == left and pending(db_url) == []
    assert [m.subject for m in messages_of(db, "room", "Inbox")] == []  # filed as processed


def test_forged_reused_and_foreign_tokens_and_strangers_change_nothing(db, db_url, smarthost,
                                                                      holding):
    server, token, _ = holding
    approval_id = token.split("-")[0]
    forged = f"{approval_id}-{'a' * 20}"
    deliver_from(server.port, "alice@example.com", f"room+approve-{forged}@example.com",
                 decision_mail(forged))
    deliver_from(server.port, "carol@example.com", f"room+approve-{token}@example.com",
                 decision_mail(token, sender="carol@example.com"))
    deliver_from(server.port, "carol@example.com", f"room+approve-{token}@example.com",
                 decision_mail(token, sender="mallory@remote.example"))
    wait_mails(smarthost, 3)  # no reply to any of them
    assert statuses(db_url) == ["tentative"] and len(pending(db_url)) == 1
    assert len(messages_of(db, "room", "Inbox")) == 3
    # Decided once; the same token again is refused, and answered by nobody.
    deliver_from(server.port, "bob@example.com", f"room+decline-{token}@example.com",
                 decision_mail(token, "decline", sender="bob@example.com"))
    deliver_from(server.port, "alice@example.com", f"room+approve-{token}@example.com",
                 decision_mail(token))
    assert wait_mails(smarthost, 4)[3]["Subject"] == "Declined: Planning"
    assert statuses(db_url) == [] and len(messages_of(db, "room", "Inbox")) == 4


def test_a_token_of_another_resource_changes_nothing_there(db, db_url, smarthost):
    approving_room(db)
    add_resource(db, "hall", "hall@example.com", mr_book_in="none", mr_request_in="all")
    with db.write() as session:
        add_delegate(session, get_user(session, "hall"), get_user(session, "alice"))
    with server_at(db_url, NOW, smarthost=f"127.0.0.1:{smarthost.port}") as server:
        deliver(server.port, invite("h1", T9, T9 + HOUR, "hall@example.com"),
                "hall@example.com")
        ask = next(m for m in wait_mails(smarthost, 2) if to(m) == "alice@example.com")
        hall = re.search(r"hall\+approve-(\S+)@example\.com", text_of(ask)).group(1)
        deliver_from(server.port, "alice@example.com", f"room+approve-{hall}@example.com",
                     decision_mail(hall))
        wait_mails(smarthost, 2)
    assert len(pending(db_url)) == 1 and len(messages_of(db, "room", "Inbox")) == 1
    assert [e["status"] for e in agenda(db_url, "hall")] == ["tentative"]


def test_with_authenticated_verification_a_delegate_needs_a_trusted_result(db, db_url,
                                                                           smarthost):
    approving_room(db, mr_verify_organizer="authenticated")
    with server_at(db_url, NOW, smarthost=f"127.0.0.1:{smarthost.port}",
                   trusted_authserv_ids=("mx.example.com",)) as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
        token = token_in(wait_mails(smarthost, 3)[1])
        plain = decision_mail(token)
        deliver_from(server.port, "alice@example.com", f"room+approve-{token}@example.com",
                     plain)
        time.sleep(0.3)
        assert statuses(db_url) == ["tentative"]
        vouched = b"Authentication-Results: mx.example.com; auth=pass " \
                  b"smtp.auth=alice@example.com\n" + plain
        deliver_from(server.port, "alice@example.com", f"room+approve-{token}@example.com",
                     vouched)
        assert wait_mails(smarthost, 4)[3]["Subject"] == "Accepted: Planning"


def test_expiry_declines_what_nobody_decided_within_the_timeout(db, db_url):
    approving_room(db, mr_approval_timeout=48)
    with server_at(db_url, NOW) as server:  # the relay's smarthost is down: rows stay queued
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
    settings = make_settings(db_url)
    Maintenance(db, settings, lambda: NOW + dt.timedelta(hours=47)).run_once()
    assert statuses(db_url) == ["tentative"]
    Maintenance(db, settings, lambda: NOW + dt.timedelta(hours=48)).run_once()
    assert statuses(db_url) == [] and pending(db_url) == []
    last = outbox_rows(db)[-1]
    assert last.recipients == ORGANIZER and last.subject == "Declined: Planning"
    [vevent] = reply_vevents(last.content)
    assert str(vevent["COMMENT"]) == "no decision within 2 days"


def test_an_update_replaces_the_approval_and_a_cancel_withdraws_it(db, db_url, smarthost,
                                                                   holding):
    server, old, _ = holding
    later = T9 + 2 * HOUR
    deliver(server.port, invite("u1", later, later + HOUR, ROOM, sequence=1))
    mails = wait_mails(smarthost, 6)[3:]
    assert sorted(m["Subject"] for m in mails) == ["Approval needed: Planning"] * 2 + \
        ["Tentative: Planning"]
    new = token_in(next(m for m in mails if m["Subject"].startswith("Approval")))
    assert new != old and [e["start"] for e in agenda(db_url, "room")] == \
        ["2026-03-10T11:00:00Z"]
    [row] = pending(db_url)
    assert row["start"] == "2026-03-10T11:00:00Z"
    deliver_from(server.port, "alice@example.com", f"room+approve-{old}@example.com",
                 decision_mail(old))
    time.sleep(0.3)
    assert statuses(db_url) == ["tentative"]  # the old token stopped working
    deliver(server.port, invite("u1", later, later + HOUR, ROOM, sequence=2, method="CANCEL"))
    withdrawn = wait_mails(smarthost, 8)[6:]
    assert sorted(to(m) for m in withdrawn) == list(DELEGATES)
    assert {m["Subject"] for m in withdrawn} == {"Approval withdrawn: Planning"}
    assert "the organizer cancelled the meeting" in text_of(withdrawn[0])
    assert statuses(db_url) == [] and pending(db_url) == []


def test_a_held_series_names_its_recurrence_and_becomes_firm_as_a_whole(db, db_url):
    approving_room(db, timezone="Europe/Berlin")
    with server_at(db_url, NOW) as server:  # the smarthost is down: the mail stays queued
        deliver(server.port, invite("s1", T9, T9 + HOUR, ROOM, rrule="FREQ=WEEKLY;COUNT=3"))
    asks = [r for r in outbox_rows(db) if r.subject == "Approval needed: Planning"]
    text = text_of(email.message_from_bytes(asks[0].content))
    assert "FREQ=WEEKLY;COUNT=3 (3 occurrence(s) held)" in text
    assert "2026-03-10 10:00-11:00 (Europe/Berlin)" in text  # the resource's zone
    assert statuses(db_url) == ["tentative"] * 3
    [row] = pending(db_url)
    assert cli(db_url, "approvals", "accept", str(row["id"])).returncode == 0
    assert statuses(db_url) == ["booked"] * 3


def test_a_tentative_booking_holds_its_slot_and_is_busy_tentative(db, db_url, smarthost,
                                                                   holding):
    server, _, _ = holding
    deliver(server.port, invite("u2", T9 + HOUR / 2, T9 + 2 * HOUR, ROOM, summary="Other"))
    answers = wait_mails(smarthost, 5)[3:]  # the decline and its COUNTER
    # at once: no approval asked
    assert sorted(m["Subject"] for m in answers) == ["Declined: Other", "New time proposed: Other"]
    assert len(pending(db_url)) == 1
    busy = json.loads(cli(db_url, "freebusy", "room", "--start", "2026-03-10T00:00:00Z",
                          "--end", "2026-03-11T00:00:00Z", "--json").stdout)
    assert busy == [{"start": "2026-03-10T09:00:00Z", "end": "2026-03-10T10:00:00Z",
                     "type": "BUSY-TENTATIVE"}]


def test_nobody_to_approve_declines(db, db_url, smarthost):
    approving_room(db, delegates=())
    with server_at(db_url, NOW, smarthost=f"127.0.0.1:{smarthost.port}") as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
        [declined] = wait_mails(smarthost, 1)
    assert "nobody can approve requests for this resource" in text_of(declined)


def test_delegates_hear_of_automatic_bookings_when_asked_to(db, db_url, smarthost):
    approving_room(db, mr_book_in="all", mr_notify_delegates=True)
    with server_at(db_url, NOW, smarthost=f"127.0.0.1:{smarthost.port}") as server:
        deliver(server.port, invite("u1", T9, T9 + HOUR, ROOM))
        mails = wait_mails(smarthost, 3)
    assert sorted(m["Subject"] for m in mails) == ["Accepted: Planning"] + \
        ["Booked: Planning"] * 2
    assert statuses(db_url) == ["booked"]


# --- the approval page ------------------------------------------------------------------------

def post(port: int, path: str, fields: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, urlencode(fields),
                     {"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_the_approval_page_decides_only_on_post(db, db_url, smarthost):
    server, token, mails = held(db, db_url, smarthost, http_listen=("127.0.0.1:0",),
                                public_url="https://rooms.example.com")
    try:
        ask = next(m for m in mails if m["Subject"].startswith("Approval"))
        assert f"https://rooms.example.com/approvals/{token}" in text_of(ask)
        page = get(server.http_port, f"/approvals/{token}")
        assert page.status == 200 and "Approval needed: Planning" in page.body
        assert 'value="approve"' in page.body and 'method="post"' in page.body
        assert statuses(db_url) == ["tentative"]  # GET changed nothing
        assert get(server.http_port, f"/approvals/{token.split('-')[0]}-{'b' * 20}").status \
            == 404
        status, _ = post(server.http_port, f"/approvals/{token}", {"decision": "maybe"})
        assert status == 400
        status, body = post(server.http_port, f"/approvals/{token}",
                            {"decision": "approve", "comment": "See you"})
        assert status == 200 and "Approval accepted" in body
        accepted = wait_mails(smarthost, 4)[3]
        assert str(reply_vevents(accepted.as_bytes())[0]["COMMENT"]) == \
            "approved by a delegate on the approval page: See you"
        assert statuses(db_url) == ["booked"]
        used = get(server.http_port, f"/approvals/{token}")
        assert used.status == 410 and used.body.count("\n") == 1
        assert post(server.http_port, f"/approvals/{token}", {"decision": "decline"})[0] == 410
    finally:
        server.stop()
