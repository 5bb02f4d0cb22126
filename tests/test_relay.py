"""The outbound queue and the relay, against a real SMTP server (aiosmtpd) as the smarthost."""

from __future__ import annotations

import asyncio
import datetime as dt
import socketserver
import threading
import time

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from mr_engine.store import outbox
from mr_engine.store.outbox import retry_at
from mr_engine.delivery.relay import Relay, parse_hostport, utcnow
from mr_engine.delivery.smtp_client import Mail, SmtpClient, Taken
from mr_engine.store.db import open_database
from mr_engine.testing import postfix as postfix_harness
from mr_engine.testing.smarthost import Smarthost, relay_settings
from mr_engine.testing.store_views import outbox_rows

from .peers import need

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelining"])
def smarthost(request):
    """A real SMTP smarthost on loopback; with and without RFC 2920 PIPELINING, which the
    relay then uses (every sending test runs both ways)."""
    host = Smarthost(pipelining=request.param).start()
    yield host
    host.stop()


def queue(db, now, n: int = 1, sender: str = "", recipients=("bob@example.org",)) -> list[int]:
    with db.write() as session:
        return [outbox.enqueue(session, sender=sender, recipients=list(recipients),
                               content=f"Subject: m{i}\nMessage-ID: <m{i}@t>\n\nbody {i}\n"
                               .encode(), subject=f"m{i}", now=now) for i in range(n)]


# --- the schedule (pure) ----------------------------------------------------------------------

@pytest.mark.parametrize("attempts, delay", [
    (1, 20), (2, 40), (3, 80), (4, 160), (7, 1280), (8, 2560), (9, 3600), (50, 3600)])
def test_backoff_doubles_from_20s_up_to_one_hour(now, attempts, delay):
    lifetime = dt.timedelta(days=5)
    assert retry_at(attempts, now, now, lifetime) == now + dt.timedelta(seconds=delay)


def test_last_retry_is_at_the_end_of_the_lifetime_then_give_up(now):
    created, lifetime = now - dt.timedelta(seconds=50), dt.timedelta(seconds=60)
    assert retry_at(3, created, now, lifetime) == created + lifetime
    assert retry_at(4, created, created + lifetime, lifetime) is None


@pytest.mark.parametrize("value, expected", [
    ("mail.example.org:587", ("mail.example.org", 587)),
    ("mail.example.org", ("mail.example.org", 25)),
    ("[::1]:2525", ("::1", 2525)),
    ("::1", ("::1", 25))])
def test_smarthost_address_forms(value, expected):
    assert parse_hostport(value) == expected


# --- sending ----------------------------------------------------------------------------------

def test_null_sender_is_sent_as_mail_from_empty_with_crlf_lines(db, now, smarthost):
    [msg_id] = queue(db, now)
    assert Relay(db, relay_settings(smarthost.port)).run_once(now) == 1
    [got] = smarthost.sink.received
    assert got.mail_from == "<>"  # aiosmtpd's record of MAIL FROM:<>
    assert got.rcpt_tos == ["bob@example.org"]
    assert got.content.startswith(b"Subject: m0\r\nMessage-ID: <m0@t>\r\n\r\nbody 0")
    [row] = outbox_rows(db)
    assert (row.id, row.status, row.attempts, row.lease_owner, row.lease_until) == (
        msg_id, "sent", 1, None, None)


def test_message_keeps_its_own_envelope(db, now, smarthost):
    queue(db, now, sender="alice@example.com", recipients=("b@example.org", "c@example.org"))
    Relay(db, relay_settings(smarthost.port)).run_once(now)
    [got] = smarthost.sink.received
    assert got.mail_from == "alice@example.com"
    assert got.rcpt_tos == ["b@example.org", "c@example.org"]


def test_wake_sends_within_two_seconds_without_polling(db, smarthost):
    relay = Relay(db, relay_settings(smarthost.port), poll_interval=60)

    def commit_and_wake() -> None:  # as the delivery code does, from another thread
        queue(db, utcnow())
        relay.wake()

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(0.3)  # the first (empty) pass is done; now it waits 60 s
        started = time.monotonic()
        await asyncio.to_thread(commit_and_wake)
        while not smarthost.sink.received and time.monotonic() - started < 2:
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        stop.set()
        await asyncio.wait_for(task, 10)
        return elapsed

    assert asyncio.run(scenario()) < 2
    assert len(smarthost.sink.received) == 1


def test_wakes_during_the_spacing_are_one_pass_that_starts_after_it(db, smarthost):
    """Under load (wakes faster than the spacing) a pass carries what many wakes queued."""
    spacing = 2.0
    relay = Relay(db, relay_settings(smarthost.port), poll_interval=60, spacing=spacing)
    passes: list[tuple[float, int]] = []  # (started, messages sent)
    run_pass = relay.run_pass

    def counted(now, keep=None):
        started = time.monotonic()
        done = run_pass(now, keep)
        passes.append((started, len(done.attempts)))
        return done

    relay.run_pass = counted

    def commit_and_wake(n: int) -> None:
        for _ in range(n):
            queue(db, utcnow())
            relay.wake()

    async def until_received(count: int) -> None:
        while len(smarthost.sink.received) < count:
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(spacing + 0.2)  # the first (empty) pass is long past: idle
        await asyncio.to_thread(commit_and_wake, 1)
        await asyncio.wait_for(until_received(1), 10)
        await asyncio.to_thread(commit_and_wake, 4)  # during the spacing that follows
        await asyncio.wait_for(until_received(5), 10)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    sending = [(started, sent) for started, sent in passes if sent]
    assert [sent for _, sent in sending] == [1, 4]
    # The relay spaces the passes' starts on its loop; each is timed here in its thread,
    # a hand-over later: less the jitter of that, not by a whole spacing.
    assert sending[1][0] - sending[0][0] >= spacing - 0.1
    assert len(passes) == 3  # the empty one at start, then one a spacing


def test_the_relay_also_polls_for_due_messages(db, smarthost):
    relay = Relay(db, relay_settings(smarthost.port), poll_interval=0.1)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(queue, db, utcnow())  # committed, but nobody calls wake()
        for _ in range(100):
            if smarthost.sink.received:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    assert len(smarthost.sink.received) == 1


def test_smarthost_down_then_up_loses_nothing_and_sends_once(db, now):
    host = Smarthost()  # not started: connection refused
    queue(db, now, n=3)
    relay = Relay(db, relay_settings(host.port))
    assert relay.run_once(now) == 3
    assert {(r.status, r.attempts) for r in outbox_rows(db)} == {("queued", 1)}
    assert all("smarthost" in r.last_error for r in outbox_rows(db))
    assert relay.run_once(now + dt.timedelta(seconds=10)) == 0  # not due yet
    host.start()
    try:
        assert relay.run_once(now + MINUTE) == 3
        assert relay.run_once(now + 10 * MINUTE) == 0
    finally:
        host.stop()
    assert sorted(r.content.split(b"\r\n")[0] for r in host.sink.received) == [
        b"Subject: m0", b"Subject: m1", b"Subject: m2"]
    assert {(r.status, r.attempts) for r in outbox_rows(db)} == {("sent", 2)}


def test_utf8_header_without_smtputf8_fails_at_once_and_with_it_is_sent(db, now, smarthost):
    content = "Subject: Grüße\r\nTo: jürgen@bücher.example\r\n\r\nhi\r\n".encode()
    with db.write() as session:  # an ASCII envelope, but an RFC 6532 header
        outbox.enqueue(session, sender="", recipients=["juergen@bücher.example"],
                       content=content, subject="s", now=now)
    ascii_only = Smarthost(enable_SMTPUTF8=False).start()  # aiosmtpd's default offers it
    try:
        Relay(db, relay_settings(ascii_only.port)).run_once(now)
    finally:
        ascii_only.stop()
    [row] = outbox_rows(db)
    assert (row.status, row.recipients, row.last_error) == (
        "failed", "juergen@xn--bcher-kva.example",
        "553 5.6.7 the message's UTF-8 header (RFC 6532) needs SMTPUTF8, "
        "which the smarthost does not offer")
    with db.write() as session:
        outbox.retry(session, row.id, now)
    Relay(db, relay_settings(smarthost.port)).run_once(now)
    [got] = smarthost.sink.received
    assert got.content.replace(b"\r\n", b"\n") == content.replace(b"\r\n", b"\n")
    assert [r.status for r in outbox_rows(db)] == ["sent"]


def test_a_message_that_cannot_go_fails_alone_amid_a_pipelined_pass(db, now):
    """Its 553 is decided before anything is sent: the messages before and after it go in
    one pipelined run, in their order."""
    queue(db, now, sender="first@example.com")
    with db.write() as session:
        outbox.enqueue(session, sender="", recipients=["bob@example.org"], subject="s",
                       content="Subject: Grüße\r\n\r\nhi\r\n".encode(), now=now)
    queue(db, now, sender="last@example.com")
    host = Smarthost(pipelining=True, enable_SMTPUTF8=False).start()
    try:
        assert Relay(db, relay_settings(host.port)).run_once(now) == 3
    finally:
        host.stop()
    assert [r.status for r in outbox_rows(db)] == ["sent", "failed", "sent"]
    assert [r.mail_from for r in host.sink.received] == ["first@example.com", "last@example.com"]


def test_4xx_is_retried_with_backoff_then_250(db, now, smarthost):
    queue(db, now)
    relay = Relay(db, relay_settings(smarthost.port))
    smarthost.sink.data_reply = "451 4.3.0 try again later"
    relay.run_once(now)
    [row] = outbox_rows(db)
    assert (row.status, row.next_attempt_at) == ("queued", now + dt.timedelta(seconds=20))
    assert row.last_error == "451 4.3.0 try again later"
    smarthost.sink.data_reply = None
    relay.run_once(now + dt.timedelta(seconds=20))
    [row] = outbox_rows(db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert len(smarthost.sink.received) == 1


@pytest.mark.parametrize("where", ["rcpt", "data"])
def test_5xx_fails_at_once(db, now, smarthost, where):
    queue(db, now)
    if where == "rcpt":
        smarthost.sink.rcpt_replies["bob@example.org"] = "550 5.1.1 no such user"
    else:
        smarthost.sink.data_reply = "554 5.7.1 rejected"
    Relay(db, relay_settings(smarthost.port)).run_once(now)
    [row] = outbox_rows(db)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error.startswith("55")


def test_temporary_failures_end_in_failed_after_queue_lifetime(db, now, smarthost):
    queue(db, now)
    relay = Relay(db, relay_settings(smarthost.port, queue_lifetime=300))
    smarthost.sink.data_reply = "452 4.3.1 out of space"
    moment = now
    for _ in range(10):
        relay.run_once(moment)
        [row] = outbox_rows(db)
        if row.status != "queued":
            break
        assert row.next_attempt_at <= now + dt.timedelta(seconds=300)
        moment = row.next_attempt_at
    assert row.status == "failed" and moment == now + dt.timedelta(seconds=300)
    assert row.last_error.startswith("expired after") and "452 4.3.1" in row.last_error


def test_partial_refusal_splits_the_message_by_fate(db, now, smarthost):
    queue(db, now, recipients=("ok@example.org", "later@example.org", "never@example.org"))
    smarthost.sink.rcpt_replies.update({"later@example.org": "450 4.2.1 busy",
                                        "never@example.org": "550 5.1.1 unknown"})
    relay = Relay(db, relay_settings(smarthost.port))
    relay.run_once(now)
    got = [(r.status, r.recipients, r.created_at) for r in outbox_rows(db)]
    assert got == [("sent", "ok@example.org", now), ("queued", "later@example.org", now),
                   ("failed", "never@example.org", now)]
    assert "550 5.1.1" in outbox_rows(db)[0].last_error and "450 4.2.1" in outbox_rows(db)[0].last_error
    smarthost.sink.rcpt_replies.clear()
    relay.run_once(now + MINUTE)
    assert [r.status for r in outbox_rows(db)] == ["sent", "sent", "failed"]
    assert [r.rcpt_tos for r in smarthost.sink.received] == [["ok@example.org"],
                                                             ["later@example.org"]]


def test_refused_senders_and_recipients_fail_alone_and_the_session_goes_on(db, now, smarthost):
    """MAIL refused, or every RCPT: that message fails at once, and the next ones of the pass
    are sent over the same connection (the pipelined answers were all read, RSET was sent)."""
    queue(db, now, sender="ok@example.com")
    queue(db, now, sender="banned@example.com")
    queue(db, now, sender="fine@example.com", recipients=("gone@example.org",))
    queue(db, now, sender="last@example.com")
    smarthost.sink.mail_replies["banned@example.com"] = "553 5.7.1 sender rejected"
    smarthost.sink.rcpt_replies["gone@example.org"] = "550 5.1.1 no such user"
    assert Relay(db, relay_settings(smarthost.port)).run_once(now) == 4
    rows = outbox_rows(db)
    assert [(r.sender, r.status) for r in rows] == [
        ("ok@example.com", "sent"), ("banned@example.com", "failed"),
        ("fine@example.com", "failed"), ("last@example.com", "sent")]
    assert rows[1].last_error.startswith("553 5.7.1 sender rejected")
    assert rows[2].last_error.startswith("550 5.1.1 no such user")
    assert [r.mail_from for r in smarthost.sink.received] == ["ok@example.com", "last@example.com"]


class _ScriptedSmarthost(socketserver.StreamRequestHandler):
    """A smarthost that offers PIPELINING and writes down every line it was sent.

    ``rcpt_reply`` answers every RCPT; a DATA is taken even with no recipient left (RFC 2920
    §3.1 lets a client meet that with a single dot). The end of each content is answered
    from ``content_replies`` in turn (then 250); a 421 closes the session. The answers to
    the first ``hold`` contents wait until the next line has come (at most 2 s), which only
    a client that sends on without waiting for them (the next group with the content)
    sends; ``ahead`` counts those that came so."""

    seen: list[bytes] = []
    rcpt_reply = b"250 ok"
    content_replies: list[bytes] = []
    hold = 0
    ahead = 0

    def handle(self) -> None:
        self.wfile.write(b"220 scripted\r\n")
        in_data = False
        for line in self.rfile:
            self.seen.append(line)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    if not self._content_answered():
                        return
                continue
            in_data = line[:4].upper() == b"DATA"
            if not self._answer(line[:4].upper()):
                return

    def _answer(self, verb: bytes) -> bool:
        replies = {b"EHLO": b"250-scripted\r\n250 PIPELINING", b"RCPT": self.rcpt_reply,
                   b"DATA": b"354 go ahead", b"QUIT": b"221 bye"}
        self.wfile.write(replies.get(verb, b"250 ok") + b"\r\n")
        return verb != b"QUIT"

    def _content_answered(self) -> bool:
        cls = type(self)
        reply = cls.content_replies.pop(0) if cls.content_replies else b"250 ok"
        if cls.hold:
            cls.hold -= 1
            self.connection.settimeout(2)
            try:
                following = self.rfile.readline()
            except OSError:  # timed out: the client waited for the answer
                return False
            cls.ahead += 1
            self.wfile.write(reply + b"\r\n")
            self.seen.append(following)
            return self._answer(following[:4].upper())
        self.wfile.write(reply + b"\r\n")
        return not reply.startswith(b"421")


@pytest.fixture
def scripted():
    """The scripted smarthost on loopback (its port), its settings reset."""
    _ScriptedSmarthost.seen, _ScriptedSmarthost.content_replies = [], []
    _ScriptedSmarthost.rcpt_reply, _ScriptedSmarthost.hold = b"250 ok", 0
    _ScriptedSmarthost.ahead = 0
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _ScriptedSmarthost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _commands() -> list[bytes]:
    """The verbs the scripted smarthost was sent, a content's lines as one b"<content>"."""
    verbs: list[bytes] = []
    for line in _ScriptedSmarthost.seen:
        verb = line.split(b" ")[0].rstrip(b"\r\n").upper()
        if verb in (b"EHLO", b"MAIL", b"RCPT", b"DATA", b".", b"RSET", b"QUIT"):
            verbs.append(verb)
        elif verbs[-1] != b"<content>":
            verbs.append(b"<content>")
    return verbs


def test_data_taken_without_recipients_is_ended_by_a_single_dot(db, now, scripted):
    _ScriptedSmarthost.rcpt_reply = b"550 5.1.1 no such user"
    _ScriptedSmarthost.content_replies = [b"554 5.5.1 no valid recipients"] * 2
    queue(db, now, n=2)
    assert Relay(db, relay_settings(scripted)).run_once(now) == 2
    assert [(r.status, r.last_error) for r in outbox_rows(db)] == [
        ("failed", "550 5.1.1 no such user")] * 2
    # Per message: the group, then the dot instead of the content, then RSET.
    assert _commands()[1:] == [b"MAIL", b"RCPT", b"DATA", b".", b"RSET"] * 2 + [b"QUIT"]


def test_the_next_message_goes_out_with_the_content_before_it(db, now, scripted):
    """One round trip a message: the group of each next message follows the content before
    it in the same write, before the answer to that content."""
    _ScriptedSmarthost.hold = 2
    queue(db, now, n=3)
    assert Relay(db, relay_settings(scripted)).run_once(now) == 3
    assert [r.status for r in outbox_rows(db)] == ["sent"] * 3
    assert _ScriptedSmarthost.ahead == 2
    assert _commands()[1:] == [b"MAIL", b"RCPT", b"DATA", b"<content>", b"."] * 3 + [b"QUIT"]


def _two_with_the_first_content_answered(db, now, port: int, reply: bytes) -> list:
    """Two messages in one pass, the first one's content answered ``reply``: the rows."""
    _ScriptedSmarthost.content_replies = [reply]
    queue(db, now, n=2)
    assert Relay(db, relay_settings(port)).run_once(now) == 2
    return outbox_rows(db)


def test_refused_content_with_the_next_group_sent_is_not_followed_by_rset(db, now, scripted):
    """The end of a refused content ended its transaction: the next one, already sent, goes
    on (an RSET there would end it, or be taken as its content)."""
    rows = _two_with_the_first_content_answered(db, now, scripted, b"554 5.7.1 content rejected")
    assert [r.status for r in rows] == ["failed", "sent"]
    assert rows[0].last_error == "554 5.7.1 content rejected"
    assert _commands()[1:] == [b"MAIL", b"RCPT", b"DATA", b"<content>", b"."] * 2 + [b"QUIT"]


def test_a_421_after_a_content_defers_it_and_the_message_sent_after_it(db, now, scripted):
    rows = _two_with_the_first_content_answered(db, now, scripted, b"421 4.3.2 shutting down")
    assert [r.status for r in rows] == ["queued", "queued"]
    assert rows[0].last_error == "421 4.3.2 shutting down"
    assert rows[1].last_error.startswith("SMTP conversation failed: SMTPServerDisconnected")
    assert Relay(db, relay_settings(scripted)).run_once(now + MINUTE) == 2
    assert [r.status for r in outbox_rows(db)] == ["sent", "sent"]


def test_a_run_left_with_a_group_sent_ahead_closes_the_connection(scripted):
    """The server waits for that group's content: nothing else may follow on the session."""
    client = SmtpClient("127.0.0.1", scripted, local_hostname="mr.test", timeout=5)
    client.ehlo()
    mails = [Mail("a@example.com", ["b@example.org"], b"Subject: m\r\n\r\nbody\r\n")] * 2
    run = client.send_each(mails)
    first = next(run)
    assert isinstance(first, Taken) and client.sock is not None
    run.close()
    assert client.sock is None


@pytest.fixture
def postfix():
    """A real Postfix as the smarthost, relaying to an aiosmtpd sink that records arrivals."""
    need(postfix_harness.missing(), "MR_ENGINE_TEST_REQUIRE_POSTFIX")
    behind = Smarthost().start()
    try:
        with postfix_harness.Postfix(behind.port, refuse={
                "banned@example.com": "not from you", "gone@example.org": "no such user"}) as pf:
            yield pf, behind.sink
    finally:
        behind.stop()


def test_through_a_real_postfix_pipelined(db, now, postfix):
    """Postfix offers PIPELINING: the pass's messages go through it as one conversation, its
    refusals are each message's own, and it logs no improper pipelining."""
    pf, behind = postfix
    queue(db, now, n=2, sender="ok@example.com", recipients=("a@example.org", "b@example.org"))
    queue(db, now, sender="banned@example.com")
    queue(db, now, sender="ok@example.com", recipients=("gone@example.org", "c@example.org"))
    started = len(pf.log.read_bytes())  # the harness's start-up probes are logged before
    assert Relay(db, relay_settings(pf.port)).run_once(now) == 4
    rows = [(r.sender, r.recipients, r.status) for r in outbox_rows(db)]
    assert rows == [("ok@example.com", "a@example.org,b@example.org", "sent")] * 2 + [
        ("banned@example.com", "bob@example.org", "failed"),
        ("ok@example.com", "c@example.org", "sent"),
        ("ok@example.com", "gone@example.org", "failed")]
    errors = [r.last_error for r in outbox_rows(db) if r.status == "failed"]
    assert "Sender address rejected: not from you" in errors[0]
    assert "Recipient address rejected: no such user" in errors[1]
    deadline = time.monotonic() + 30
    while len(behind.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    got = sorted((r.mail_from, tuple(r.rcpt_tos), r.content.split(b"\r\nSubject: ")[1][:2])
                 for r in behind.received)
    assert got == [("ok@example.com", ("a@example.org", "b@example.org"), b"m0"),
                   ("ok@example.com", ("a@example.org", "b@example.org"), b"m1"),
                   ("ok@example.com", ("c@example.org",), b"m0")]
    log = pf.log.read_bytes()[started:].decode(errors="replace")
    assert "improper command pipelining" not in log
    assert log.count(": connect from localhost") == 1  # one session for the pass


def test_dot_stuffing_and_a_missing_final_newline(db, now, smarthost):
    content = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nlast line without CRLF"
    with db.write() as session:
        outbox.enqueue(session, sender="", recipients=["bob@example.org"], content=content,
                       subject="dots", now=now)
    Relay(db, relay_settings(smarthost.port)).run_once(now)
    [got] = smarthost.sink.received
    assert got.content == content + b"\r\n"  # unstuffed; a last line is ended by CRLF


def test_a_claim_past_its_send_budget_gives_the_rest_back_to_the_next_claim(db, now,
                                                                           smarthost):
    """The relay starts a claim's messages only within its send budget (the first always),
    so that a lease covers a bounded time: the rest go back to the queue, uncounted, and the
    pass claims them again at once. Over a new connection: the old one may have the next
    message's envelope sent."""
    ids = queue(db, now, n=3)
    hellos = []
    greet = smarthost.sink.handle_EHLO

    async def counted(server, session, envelope, hostname, responses):
        hellos.append(hostname)
        return await greet(server, session, envelope, hostname, responses)

    smarthost.sink.handle_EHLO = counted
    relay = Relay(db, relay_settings(smarthost.port))
    relay.send_budget = 0.0  # one message a claim
    done = relay.run_pass(now)
    assert done.complete and len(done.attempts) == 3
    assert [got.content.split(b"\r\n")[0] for got in smarthost.sink.received] == \
        [b"Subject: m0", b"Subject: m1", b"Subject: m2"]
    assert len(hellos) == 3
    assert [(r.id, r.status, r.attempts, r.lease_owner) for r in outbox_rows(db)] == \
        [(i, "sent", 1, None) for i in ids]


def test_a_crashed_send_is_retried_after_its_lease_expires(db, now, smarthost):
    queue(db, now)
    with db.write() as session:  # a worker claims the message, then dies before sending
        [job] = outbox.claim(session, "crashed-worker", now, dt.timedelta(minutes=5))
    assert job is not None
    relay = Relay(db, relay_settings(smarthost.port))
    assert relay.run_once(now + MINUTE) == 0
    assert relay.run_once(now + 5 * MINUTE) == 1
    [row] = outbox_rows(db)
    assert (row.status, row.attempts) == ("sent", 2)
    assert len(smarthost.sink.received) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smarthost_auth(db, now):
    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"secret"
        return AuthResult(success=ok, handled=False)

    host = Smarthost(authenticator=check, auth_required=True, auth_require_tls=False).start()
    try:
        queue(db, now)
        wrong = relay_settings(host.port, smarthost_user="relay", smarthost_password="wrong")
        Relay(db, wrong).run_once(now)
        # An AUTH failure is the configuration's fault, not the message's: retried.
        [row] = outbox_rows(db)
        assert row.status == "queued"
        assert row.last_error.startswith(f"smarthost 127.0.0.1:{host.port}: 535")
        right = relay_settings(host.port, smarthost_user="relay", smarthost_password="secret")
        Relay(db, right).run_once(now + MINUTE)
        assert [r.status for r in outbox_rows(db)] == ["sent"]
        assert len(host.sink.received) == 1
    finally:
        host.stop()


def test_two_relay_processes_send_each_message_exactly_once(db_url, now, smarthost):
    setup = open_database(db_url)
    total = 40
    queue(setup, now, n=total)
    setup.dispose()
    workers = [open_database(db_url, pool_size=2) for _ in range(2)]
    relays = [Relay(w, relay_settings(smarthost.port)) for w in workers]
    counts: list[int] = []
    barrier = threading.Barrier(len(relays))

    def work(relay: Relay) -> None:
        barrier.wait()
        counts.append(relay.run_once(now))

    threads = [threading.Thread(target=work, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        subjects = [r.content.split(b"\r\n")[0] for r in smarthost.sink.received]
        assert sorted(subjects) == sorted(f"Subject: m{i}".encode() for i in range(total))
        assert sum(counts) == total
        assert {r.status for r in outbox_rows(workers[0])} == {"sent"}
    finally:
        for w in workers:
            w.dispose()
