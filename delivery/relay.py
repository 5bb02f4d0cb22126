"""The relay worker: drains the outbound queue to the smarthost over SMTP.

It runs as an asyncio task inside ``mr-engine serve``; smtplib does the talking in a worker
thread so the event loop never blocks. A pass claims up to CLAIM_BATCH due messages at a
time (see ``delivery/outbox.py`` for the lease that keeps several processes from sending one
twice), sends each with its own envelope over one SMTP session (pipelined where the
smarthost offers it, ``smtp_client.py``), records the outcomes and goes on until a claim
comes back short (nothing more was due). A claim's messages are started within SEND_BUDGET
seconds; any left then go back to the queue with the record, for the next claim at once, so
that a lease covers a bounded time whatever a claim's size. Delivery code calls
``wake()`` after committing a transaction that queued something; between wakes the worker
polls every second, for retries that have come due and for messages queued by other
processes (kopano-mr-accept, queue retry). A pass begins at least PASS_SPACING after the
one before it began, so that under load a pass carries the replies of many batches: each
claim and each record takes the store's write lock, which the delivery committers wait for.

A message with a UTF-8 address or header is sent with SMTPUTF8 (RFC 6531) when the smarthost
offers it, and fails for good with a ``last_error`` saying so when it does not; everything
else is sent as it is (generated mail is 7-bit, ``mr_engine/outgoing.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import smtplib
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterator

from mr_engine import metrics
from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.store.db import Database

from mr_engine.store import outbox
from mr_engine.store.outbox import RelayJob, SendOutcome, AttemptResult

from .log_lines import RelayLine
from .smtp_client import Mail, SmtpClient, Taken, reply_text

log = logging.getLogger("delivery.relay")

# The ``result`` label of mr_engine_relay_attempts_total, by the row's status after it.
ATTEMPT_RESULTS = {outbox.SENT: "sent", outbox.QUEUED: "deferred", outbox.FAILED: "failed"}
PASS_BUDGET = 30.0  # seconds a pass goes on claiming messages
# Seconds a claim's messages may take to be started: those left then are given back (see
# the module's docstring). A pipelined reply takes a millisecond or two to a working
# smarthost, so only a slow one gets there.
SEND_BUDGET = 60.0
CLAIM_BATCH = 200  # messages claimed (and recorded) per write transaction, at most
# Seconds from one pass's start to the next's, at least. An idle relay sends a reply at
# once; under load a pass carries what was queued since the last, claimed in one write
# transaction and recorded in another. Load 2 queues about 240 replies a second a worker:
# every 0.25 s with claims of 40, that was four holds of SQLite's write lock a pass (8% of
# the lock's time, the committers waiting); every 0.5 s in one claim it is two.
PASS_SPACING = 0.5



def parse_hostport(value: str, default_port: int = 25) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        host, port = value.strip(), str(default_port)
    return host.strip("[]"), int(port)


def _crlf(content: bytes) -> bytes:
    # RFC 5321 §2.3.8: lines end in CRLF on the wire; smtplib sends bytes as they are.
    # Generated mail is CRLF already (outgoing.message): two counts, no rewrite and copy.
    if content.count(b"\n") == content.count(b"\r\n"):
        return content
    return re.sub(rb"\r?\n", b"\r\n", content)


def _refused(recipients: tuple[str, ...] | list[str],
             errors: dict[str, tuple[int, bytes]], reply: str = "") -> SendOutcome:
    """Split refused recipients by RFC 5321 §4.2.1: 4yz is transient, 5yz permanent."""
    temporary = {r: reply_text(c, m) for r, (c, m) in errors.items() if c < 500}
    permanent = {r: reply_text(c, m) for r, (c, m) in errors.items() if c >= 500}
    accepted = tuple(r for r in recipients if r not in errors)
    return SendOutcome(accepted, temporary, permanent, reply)


def _all(job: RelayJob, code: int, error: str) -> SendOutcome:
    errors = {r: error for r in job.recipients}
    return SendOutcome(permanent=errors) if code >= 500 else SendOutcome(temporary=errors)


class SmtpLink:
    """The smarthost as seen by one pass: one connection for its messages, given up on once dead.

    The connection is reused from message to message (as Postfix's connection cache does:
    connect, EHLO and QUIT cost more than a short message). The server's relay keeps it from
    pass to pass while there is mail (passes are at least PASS_SPACING apart) and checks it
    with RSET before a pass's first message, reconnecting if the
    smarthost has dropped it meanwhile. Once connecting has failed in a pass, the pass's
    other messages get the same temporary failure without another connect (Postfix's "dead
    destination" cache), so a pass never waits a timeout per message and every waiting
    message still ages towards its lifetime.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dead: str | None = None
        self._smtp: SmtpClient | None = None
        self._check = False

    def begin_pass(self) -> None:
        """A new pass: the smarthost may be back, and a kept connection is checked once."""
        self.dead = None
        self._check = self._smtp is not None

    def close(self) -> None:
        if self._smtp is not None:
            _quit(self._smtp)
            self._smtp = None

    def _connect(self) -> SmtpClient:
        host, port = parse_hostport(self.settings.smarthost)
        smtp = SmtpClient(host, port, local_hostname=self.settings.hostname,
                          timeout=self.settings.smarthost_timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if self.settings.smarthost_starttls:
                smtp.starttls(context=ssl.create_default_context())  # RFC 3207
                smtp.ehlo()
            if self.settings.smarthost_user:
                smtp.login(self.settings.smarthost_user, self.settings.smarthost_password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send_all(self, jobs: list[RelayJob]) -> Iterator[tuple[RelayJob, SendOutcome]]:
        """Each job with its outcome, in order, over one connection (pipelined where the
        smarthost offers it). A conversation that fails costs the message it failed on a
        temporary failure; the ones after it go on over a new connection."""
        left = jobs
        while left:
            smtp = self._session()
            if smtp is None:
                for job in left:
                    yield job, _all(job, 451, self.dead or "")
                return
            left = yield from self._over(smtp, left)

    def _session(self) -> SmtpClient | None:
        """The kept connection or a new one; None once the smarthost is ``dead``."""
        if self.dead:
            return None
        try:
            self._smtp = self._kept() or self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            # Greeting, EHLO, STARTTLS and AUTH trouble is the smarthost's (or our
            # configuration's), not the message's: always temporary, as Postfix's
            # smtp_sasl_auth_soft_bounce does for AUTH.
            self.dead = f"smarthost {self.settings.smarthost}: {_describe(exc)}"
            return None
        return self._smtp

    def _over(self, smtp: SmtpClient, jobs: list[RelayJob]
              ) -> Generator[tuple[RelayJob, SendOutcome], None, list[RelayJob]]:
        """The jobs over ``smtp`` until it fails; returns those not attempted then."""
        prepared = [(job, _prepared(smtp, job)) for job in jobs]
        outcomes = smtp.send_each([mail for _, mail in prepared if isinstance(mail, Mail)])
        with contextlib.closing(outcomes):  # a run left half-way closes its connection
            for index, (job, mail) in enumerate(prepared):
                if not isinstance(mail, Mail):
                    yield job, mail
                    continue
                try:
                    # A refused MAIL, RCPT or DATA leaves the session usable (RSET was sent).
                    yield job, _outcome(job, next(outcomes))
                except UnicodeError:
                    # Not for rows enqueue() checked (_needs_smtputf8 sees any non-ASCII
                    # address); kept so that an odd row fails on its own, not the pass.
                    self.close()
                    yield job, _all(job, 553, "553 5.6.7 the address cannot be encoded for SMTP")
                    return [j for j, _ in prepared[index + 1:]]
                except (OSError, smtplib.SMTPException) as exc:
                    self.close()
                    yield job, _all(job, 451, f"SMTP conversation failed: {_describe(exc)}")
                    return [j for j, _ in prepared[index + 1:]]
        return []

    def _kept(self) -> SmtpClient | None:
        """The connection kept from the last pass if it still answers, else None."""
        if self._check:
            self._check = False
            if self._smtp is not None and not _alive(self._smtp):
                self.close()
        return self._smtp


def _prepared(smtp: SmtpClient, job: RelayJob) -> Mail | SendOutcome:
    """The job as the smarthost is sent it; its outcome when it cannot be sent there."""
    content = _crlf(job.content)
    utf8 = _needs_smtputf8(job, content)
    if utf8 and not smtp.has_extn("smtputf8"):
        # RFC 6531 §3.2: not without the extension; permanent, as retrying cannot help.
        return _all(job, 553, f"553 5.6.7 {utf8} needs SMTPUTF8, "
                              "which the smarthost does not offer")
    options = ["SMTPUTF8"] if utf8 else []
    if smtp.has_extn("8bitmime") and not content.isascii():
        options.append("BODY=8BITMIME")
    # An empty sender is sent as MAIL FROM:<> (the null sender, RFC 5321 §4.5.5).
    return Mail(job.sender, list(job.recipients), content, options)


def _outcome(job: RelayJob, sent: Taken | Exception) -> SendOutcome:
    if isinstance(sent, Taken):
        return _refused(job.recipients, sent.refused, sent.reply)
    if isinstance(sent, smtplib.SMTPRecipientsRefused):
        return _refused(job.recipients, sent.recipients)
    if isinstance(sent, smtplib.SMTPResponseException):  # MAIL FROM or DATA refused
        return _all(job, sent.smtp_code, reply_text(sent.smtp_code, sent.smtp_error))
    raise sent


def _needs_smtputf8(job: RelayJob, content: bytes) -> str | None:
    """What makes this message need SMTPUTF8 (RFC 6531), or None.

    Addresses are stored in A-label form unless their local part is not ASCII
    (outbox._check_address); RFC 6532 UTF-8 headers need it as well.
    """
    if not all(r.isascii() for r in job.recipients):
        return "the recipient's address"
    if not job.sender.isascii():
        return "the sender's address"
    if not content.partition(b"\r\n\r\n")[0].isascii():
        return "the message's UTF-8 header (RFC 6532)"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return reply_text(exc.smtp_code, exc.smtp_error)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _alive(smtp: smtplib.SMTP) -> bool:
    try:
        return smtp.rset()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def _worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Pass:
    """What one pass did: per attempted message, the rows it resulted in."""

    attempts: list[list[AttemptResult]] = field(default_factory=list)
    complete: bool = False  # False: stopped at PASS_BUDGET with messages possibly left


class Relay:
    """Sends queued messages; one instance per server process (or per ``queue flush``)."""

    def __init__(self, db: Database, settings: Settings,
                 clock: Callable[[], dt.datetime] = utcnow, poll_interval: float = 1.0,
                 spacing: float = PASS_SPACING) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.poll_interval = poll_interval
        self.spacing = spacing
        self.owner = _worker_id()
        # A pass stamps leases from the ``now`` it started with, so a lease must outlast the
        # pass's claiming time, a claim's send budget and the message started last (its
        # conversation: a few steps, each bounded by the timeout), with a margin.
        self.send_budget = SEND_BUDGET
        self.lease = dt.timedelta(
            seconds=PASS_BUDGET + SEND_BUDGET + 3 * settings.smarthost_timeout + 60)
        self.lifetime = dt.timedelta(seconds=settings.queue_lifetime)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None
        # The passes' write transactions on one kept connection: passes never overlap
        # (each may run in another executor thread, one after the other), and a pooled
        # connection per transaction cost a checkout (on PostgreSQL a ping) and a Session.
        self._writer = db.held_writer()

    def wake(self) -> None:
        """Start a pass soon; safe to call from any thread, before or while ``run`` runs."""
        loop, woken = self._loop, self._woken
        if loop is None or woken is None:
            return  # run() makes a pass as soon as it starts anyway
        try:
            loop.call_soon_threadsafe(woken.set)
        except RuntimeError:
            pass  # the loop has been closed: the server is shutting down

    async def run(self, stop: asyncio.Event) -> None:
        """Make passes until ``stop`` is set: on start, on ``wake()``, every poll_interval."""
        woken = self._woken = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        link = SmtpLink(self.settings)
        try:
            while not stop.is_set():
                # Cleared before the pass: a wake() during the pass (or the spacing after
                # it) makes another pass.
                woken.clear()
                started = time.monotonic()
                try:
                    done = await asyncio.to_thread(self.run_pass, self.clock(), link)
                    if not done.complete:
                        continue  # stopped at its budget: go on at once
                except Exception:
                    log.exception("relay pass failed; trying again in %ss", self.poll_interval)
                await _first_of(stop, woken, self.poll_interval)
                await _pause(stop, started + self.spacing - time.monotonic())
        finally:
            self._loop = self._woken = None
            link.close()
            self._writer.close()

    def run_once(self, now: dt.datetime) -> int:
        """One pass over the messages due at ``now``; returns how many were attempted."""
        return len(self.run_pass(now).attempts)

    def run_pass(self, now: dt.datetime, keep: SmtpLink | None = None) -> Pass:
        """Like ``run_once``, with each attempt's resulting rows (for ``queue flush``).

        The pass stops claiming after PASS_BUDGET seconds so that its leases, stamped from
        ``now``, stay valid; it then says it is not complete, and the rest is for the next.
        With ``keep`` the pass uses that link and leaves its connection open for the next
        pass, unless the pass found nothing to send (idle: the connection is closed).
        """
        link, done = keep or SmtpLink(self.settings), Pass()
        link.begin_pass()
        try:
            self._claim_and_send(link, done, now)
        except BaseException:
            link.close()
            self._writer.close()  # a failed connection is not kept
            raise
        if keep is None or not done.attempts:
            link.close()
        if keep is None:
            self._writer.close()  # a pass on its own (queue flush) keeps nothing
        return done

    def _claim_and_send(self, link: SmtpLink, done: Pass, now: dt.datetime) -> None:
        started = time.monotonic()
        while time.monotonic() - started < PASS_BUDGET:
            with self._writer.write() as session:
                jobs = outbox.claim(session, self.owner, now, self.lease, CLAIM_BATCH)
            if not jobs:
                done.complete = True
                break
            sent = _Attempt.all(link, jobs, time.monotonic() + self.send_budget)
            left = [job.id for job in jobs[len(sent):]]
            if left:
                link.close()  # it may have a next message's envelope sent, without content
            with self._writer.write() as session:
                recorded = outbox.record_all(session, [(a.job, a.outcome) for a in sent],
                                             self.owner, now, self.lifetime)
                outbox.release(session, left, self.owner)
            for attempt, results in zip(sent, recorded):
                attempt.log(results, self.settings.smarthost, now)
                _count_attempt(results)
                done.attempts.append(results)
            if not left and len(jobs) < CLAIM_BATCH:
                # The claim took all that was due at ``now``: no third write transaction
                # to find nothing (under load a pass's messages are often all in its first
                # claim). What comes due later is the next pass's, on its wake() or poll.
                done.complete = True
                break


@dataclass(frozen=True)
class _Attempt:
    """One message sent (or not) in a pass: what the smarthost said, and how long it took."""

    job: RelayJob
    outcome: SendOutcome
    seconds: float

    @classmethod
    def all(cls, link: SmtpLink, jobs: list[RelayJob], deadline: float) -> list["_Attempt"]:
        """The first of the jobs, and the others in order while ``time.monotonic()`` has not
        reached ``deadline``, sent over ``link``; an attempt's seconds run from the outcome
        before it (its group may have gone out with the content before it)."""
        attempts = []
        started = time.monotonic()
        with contextlib.closing(link.send_all(jobs)) as outcomes:
            for job, outcome in outcomes:
                ended = time.monotonic()
                attempts.append(cls(job, outcome, ended - started))
                started = ended
                if ended >= deadline:
                    break
        return attempts

    def log(self, results: list[AttemptResult], relay: str, now: dt.datetime) -> None:
        """One line per recipient once recorded (``log_lines.RelayLine``)."""
        job = self.job
        if not results:
            log.warning("message %d from %s: lease lost or message deleted during attempt %d",
                        job.id, job.sender or "<>", job.attempts)
        age = (now - job.created_at).total_seconds()
        for row in results:
            for rcpt in row.recipients:
                outcome, reply = self._fate(row, rcpt)
                RelayLine(row.id, job.attempts, job.sender, rcpt, relay, outcome, reply,
                          self.seconds, age).log()

    def _fate(self, row: AttemptResult, rcpt: str) -> tuple[str, str]:
        """The line's outcome word and the server's answer (or why there was none)."""
        sent = self.outcome
        if row.status == outbox.SENT:
            return "sent", sent.reply
        if row.status == outbox.QUEUED:
            return "deferred", sent.temporary.get(rcpt, row.error)
        if rcpt in sent.permanent:  # RFC 5321 §4.2.1: a 5yz answer, refused for good
            return "bounced", sent.permanent[rcpt]
        return "failed", sent.temporary.get(rcpt, row.error)  # given up: lifetime over


def _count_attempt(results: list[AttemptResult]) -> None:
    """Once committed; no rows: the lease was lost (another worker records that attempt)."""
    for label in [ATTEMPT_RESULTS[r.status] for r in results] or ["lost"]:
        metrics.RELAY_ATTEMPTS.labels(label).inc()


async def _first_of(stop: asyncio.Event, woken: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(woken.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` (not at all if not positive), less if ``stop`` is set meanwhile."""
    if seconds > 0 and not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass
