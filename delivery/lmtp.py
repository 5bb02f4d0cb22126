"""LMTP (RFC 2033): the protocol class and the handler that answers each command.

``LMTPProtocol`` adjusts aiosmtpd's LMTP class where RFC 2033 asks more of it: after DATA
there is one reply per accepted recipient, even when the data was refused as too large, a
full server turns new connections away with 421, the replies to pipelined commands go
out together, and the data is read in bulk (``lmtp_data``). ``DeliveryHandler`` resolves
recipients at RCPT time and hands the message to the group committer after DATA.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import zoneinfo
from dataclasses import dataclass, field

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope as SMTPEnvelope
from aiosmtpd.smtp import MISSING, syntax
from aiosmtpd.smtp import Session as SMTPSession

from mr_engine import cpu_time, metrics
from mr_engine.config import Settings
from mr_engine.core.itip import Invitation
from mr_engine.store.db import Database
from mr_engine.store.directories import DirectoryUnavailable, open_directory

from .committer import TEMPFAIL, Committer
from .context import Envelope, Outcome, message_id_of, parse_message
from .listeners import SessionSlots
from .lmtp_data import read_data
from .lmtp_parsing import parse_single_part, simple_address
from .log_lines import Client, DeliveryLine, delivery_outcome, parse_reply

log = logging.getLogger(__name__)

TOO_BIG = Outcome(552, "5.3.4", "Message size exceeds fixed maximum message size")
# aiosmtpd's own answers, translated to enhanced status codes (RFC 3463).
_TRANSLATIONS = {
    "552 Error: Too much mail data": TOO_BIG.reply(),
    "552 Error: message size exceeds fixed maximum message size": TOO_BIG.reply(),
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long",
    "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
    "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
    "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
    "500 Error: command \"HELO\" not recognized": "500 5.5.1 LMTP speaks LHLO, not HELO",
    "500 Error: command \"EHLO\" not recognized": "500 5.5.1 LMTP speaks LHLO, not EHLO",
}
PARSE_IN_THREAD = 1024 * 1024  # bytes from which a message is parsed off the event loop
# ... and its calendar read: icalendar is much slower than the MIME parser (1.25 s for a
# 0.9 MB calendar); real invitations are 5-30 KB.
CALENDAR_IN_THREAD = 64 * 1024
RESOLVE_TTL = 5.0  # seconds a resolved recipient is remembered
RESOLVE_CACHE_SIZE = 10_000
_DATA_PROBLEMS = {"too long": "500 5.5.2 Line too long", "too much": TOO_BIG.reply()}
_DATA_FAILURES = set(_DATA_PROBLEMS.values())


@dataclass
class Recipients:
    """What RCPT accepted so far in this transaction, in order."""

    addresses: list[str] = field(default_factory=list)
    mailbox_ids: list[list[int]] = field(default_factory=list)


class LMTPProtocol(LMTP):
    # RFC 5321 §4.5.3.1.6 allows 1000 octets a line, but real mail (generated calendars,
    # HTML) often has longer ones and Postfix passes them on; refusing would bounce mail
    # that Dovecot accepts. The message size limit still bounds memory.
    line_length_limit = 1024 * 1024

    def __init__(self, handler: "DeliveryHandler", **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self._handler = handler
        # Replies held while the client's next command is already here (``push``).
        self._held: list[bytes] = []

    counted = False  # holds one of the handler's session slots

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's parse of a plain <local@domain> costs more than the rest of a command.
        simple = simple_address(arg)
        if simple is None:
            return super()._getaddr(arg)
        localpart = simple[0].rpartition("@")[0]
        if self.local_part_limit and len(localpart) > self.local_part_limit:
            return None, None
        return simple

    def connection_made(self, transport) -> None:
        if not self._handler.slots.acquire():
            transport.write(b"421 4.3.2 Too many connections, try again later\r\n")
            transport.close()
            return
        self.counted = True
        metrics.LMTP_SESSIONS.inc()
        metrics.LMTP_SESSIONS_OPEN.inc()
        self._handler.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc) -> None:
        if self.counted:
            self.counted = False
            self._handler.slots.release()
            metrics.LMTP_SESSIONS_OPEN.dec()
        self._handler.connections.discard(self)
        super().connection_lost(exc)

    receiving = False  # inside DATA: the client is still sending the message

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self.receiving = True
        try:
            if self._decode_data:  # text content: aiosmtpd's own line-by-line read
                await super().smtp_DATA(arg)
            elif await self._may_start_data(arg):
                await self._receive_data()
        finally:
            self.receiving = False

    async def _may_start_data(self, arg: str) -> bool:
        # aiosmtpd's checks before 354, in its order and words.
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return False
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return False
        if arg:
            await self.push("501 Syntax: DATA")
            return False
        # Never held (``push``): a client that sent data ahead waits for nothing, but
        # one that did not must see the 354 before the server waits for the data.
        await super().push(self._release() + b"354 End data with <CR><LF>.<CR><LF>")
        return True

    async def _receive_data(self) -> None:
        """The data read in bulk (``lmtp_data``), then handed to the handler's DATA hook."""
        try:
            data = await read_data(self._reader, self.line_length_limit, self.data_size_limit)
        except asyncio.IncompleteReadError:  # the client hung up before the end
            self._lost_during_data()
            return
        except asyncio.CancelledError:  # aiosmtpd's way of saying the same
            self._lost_during_data()
            raise
        if data.problem:  # read to the end, as RFC 5321 §4.2.5 implies, then refused
            await self.push(_DATA_PROBLEMS[data.problem])  # one per recipient: see push
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = data.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _lost_during_data(self) -> None:
        log.info("Connection lost during DATA")
        self._writer.close()

    def _timeout_cb(self) -> None:
        # RFC 5321 §4.5.3.2: say why before hanging up on an idle client (aiosmtpd just
        # closes the connection; this is its idle-timer callback).
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._release()
                                 + b"421 4.4.2 Idle timeout, closing connection\r\n")
        super()._timeout_cb()

    def close(self, reason: str) -> None:
        """Say goodbye and hang up (used at shutdown, between transactions)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._release() + reason.encode() + b"\r\n")
            self.transport.close()

    async def push(self, status: str) -> None:
        status = _TRANSLATIONS.get(status, status)
        # RFC 2033 §4.2: after the data, one reply per accepted recipient. (A too-large
        # SIZE= on MAIL comes before any recipient, so it stays a single reply.)
        if status in _DATA_FAILURES and self.envelope is not None and self.envelope.rcpt_tos:
            metrics.DELIVERIES.labels("refused").inc(len(self.envelope.rcpt_tos))
            for rcpt in self.envelope.rcpt_tos:
                DeliveryLine(self.envelope.client, rcpt, parse_reply(status) or TOO_BIG).log()
            status = "\r\n".join([status] * len(self.envelope.rcpt_tos))
        reply = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        # RFC 2920 §3.2: the replies to a group of pipelined commands may be sent as a unit,
        # so long as they are all sent before the server waits for input. A complete command
        # line already received means no wait: hold the reply and send it with the next one
        # (a pipelined MAIL, RCPT..., DATA costs one send instead of one a command).
        if self._next_command_is_here():
            self._held.append(reply + b"\r\n")
            return
        await super().push(self._release() + reply)

    def _next_command_is_here(self) -> bool:
        # StreamReader has no public view of what it has buffered; without one, send at once.
        return b"\n" in getattr(self._reader, "_buffer", b"")

    def _release(self) -> bytes:
        """The held replies, to be written before anything else."""
        held, self._held = b"".join(self._held), []
        return held


class DeliveryHandler:
    """aiosmtpd handler hooks: resolution at RCPT, delivery through the committer at DATA."""

    def __init__(self, db: Database, settings: Settings, committer: Committer,
                 slots: SessionSlots) -> None:
        self.db = db
        self.settings = settings
        self.committer = committer
        self.slots = slots
        self._zone = zoneinfo.ZoneInfo(settings.default_timezone)
        self.connections: set[LMTPProtocol] = set()
        self._resolved: dict[str, tuple[float, list[int]]] = {}
        self.in_flight = 0

    async def handle_EHLO(self, server, session: SMTPSession, envelope: SMTPEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        extensions = [r[4:] for r in responses[1:] if r[4:] != "HELP"]
        extensions += ["PIPELINING", "ENHANCEDSTATUSCODES"]
        lines = [responses[0][:3] + "-" + responses[0][4:]]
        lines += [f"250-{ext}" for ext in extensions[:-1]] + [f"250 {extensions[-1]}"]
        return lines

    async def handle_MAIL(self, server, session, envelope: SMTPEnvelope, address: str,
                          mail_options: list[str]) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.recipients = Recipients()  # type: ignore[attr-defined]
        envelope.client = _client(server, session, address)  # type: ignore[attr-defined]
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope: SMTPEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        reply = await self._add_recipient(envelope, address, rcpt_options)
        if not reply.startswith("2"):  # refused before there is a message: no size, no delay
            DeliveryLine(envelope.client, address,  # type: ignore[attr-defined]
                         parse_reply(reply) or TEMPFAIL).log()
        return reply

    async def _add_recipient(self, envelope: SMTPEnvelope, address: str,
                             rcpt_options: list[str]) -> str:
        recipients: Recipients = envelope.recipients  # type: ignore[attr-defined]
        if len(recipients.addresses) >= self.settings.max_recipients:
            metrics.DELIVERIES.labels("temporary_failure").inc()
            return "452 4.5.3 Too many recipients"
        try:
            # A bare local part (Postfix's local transport sends them) is in default_domain.
            mailbox_ids = await self._lookup(
                address if "@" in address else f"{address}@{self.settings.default_domain}")
        except DirectoryUnavailable as exc:  # the address may exist: RFC 3463 X.4.3,
            # "directory server failure", temporary, so the MTA keeps the message
            log.warning("directory lookup of %s failed: %s", address, exc)
            metrics.DELIVERIES.labels("temporary_failure").inc()
            return "451 4.4.3 directory unavailable"
        except Exception:  # SQLAlchemyError above all; never a 5xx for our own fault
            log.exception("directory lookup failed for %s", address)
            metrics.DELIVERIES.labels("temporary_failure").inc()
            return "451 4.3.0 Directory temporarily unavailable, try again later"
        if not mailbox_ids:
            metrics.DELIVERIES.labels("refused").inc()
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        recipients.addresses.append(address)
        recipients.mailbox_ids.append(mailbox_ids)
        return "250 2.1.5 Ok"

    async def _lookup(self, address: str) -> list[int]:
        """Mailbox ids for ``address``; known addresses are remembered for RESOLVE_TTL.

        Only hits are cached: a user created a moment ago must never get 550. A mailbox
        deleted within the TTL is caught by the committer (it no longer loads).
        """
        key, now = address.lower(), time.monotonic()
        hit = self._resolved.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        mailbox_ids = await asyncio.get_running_loop().run_in_executor(
            None, self._resolve, address)
        if mailbox_ids:
            if len(self._resolved) >= RESOLVE_CACHE_SIZE:
                self._resolved.clear()
            self._resolved[key] = (now + RESOLVE_TTL, mailbox_ids)
        return mailbox_ids

    def _resolve(self, address: str) -> list[int]:
        with self.db.read() as session:
            return [m.id for m in open_directory(self.settings, session).resolve(address)]

    async def handle_DATA(self, server, session: SMTPSession, envelope: SMTPEnvelope) -> str:
        recipients: Recipients = envelope.recipients  # type: ignore[attr-defined]
        self.in_flight += 1
        started = time.monotonic()
        try:
            outcomes = await self._deliver(session, envelope, recipients)
        except Exception:
            # Never a single 5xx after DATA: the MTA keeps the message and retries.
            log.exception("delivery failed before reaching the store")
            outcomes = [TEMPFAIL] * len(recipients.addresses)
            for address in recipients.addresses:
                DeliveryLine(envelope.client, address, TEMPFAIL,  # type: ignore[attr-defined]
                             size=len(envelope.original_content or b"")).log()
        finally:
            self.in_flight -= 1
        _count(outcomes, time.monotonic() - started)
        return "\r\n".join(o.reply() for o in outcomes)

    def _read_calendar(self, env: Envelope) -> None:
        try:
            with cpu_time.PARSE:
                # The zone of resources that do not set their own.
                read = env.invitation(self._zone)
            env.listing  # Subject and From decoded here too, not under the write lock,
            if isinstance(read, Invitation):
                env.authors  # and a meeting request's addresses that the booking rules read
        except Exception:  # the meeting step meets it again and delivers the message as mail
            log.warning("calendar of message-id=%s not read", env.message_id, exc_info=True)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd would answer "500 Error: (<exception>) ..." and show our internals.
        log.error("LMTP session error", exc_info=error)
        return "451 4.3.0 Internal error, try again later"

    async def _deliver(self, session: SMTPSession, envelope: SMTPEnvelope,
                       recipients: Recipients) -> list[Outcome]:
        received = time.monotonic()  # the end of DATA, where the line's delay starts
        content: bytes = envelope.original_content or b""
        # Parsing is CPU work: a large message (0.35 s for 47 MB) is parsed off the event loop
        # so other sessions go on; a small one in place, cheaper than the thread hop.
        parsed = parse_single_part(content, parse_message) if len(content) < PARSE_IN_THREAD \
            else await asyncio.get_running_loop().run_in_executor(None, parse_message, content)
        message_id = message_id_of(parsed)
        client: Client = envelope.client  # type: ignore[attr-defined]
        env = Envelope(sender=client.sender, content=content, message=parsed,
                       message_id=message_id, peer=str(session.peer[0]) if session.peer else "",
                       helo=session.host_name or "", client=client.address, received=received)
        # A calendar too is read here, by the protocol side: the committer then finds it
        # ready instead of reading it inside the write transaction, once per resource.
        if len(content) < CALENDAR_IN_THREAD:
            self._read_calendar(env)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._read_calendar, env)
        # A mailbox reached by several RCPTs (directly and through a group) gets one copy.
        targets: dict[int, str] = {}
        for address, mailbox_ids in zip(recipients.addresses, recipients.mailbox_ids):
            for mid in mailbox_ids:
                targets.setdefault(mid, address)
        delivered = await self.committer.deliver(env, [(a, m) for m, a in targets.items()])
        by_mailbox = dict(zip(targets, delivered))
        return [_worst(by_mailbox[mid] for mid in mailbox_ids)
                for mailbox_ids in recipients.mailbox_ids]


# The ``outcome`` label of an answer (metrics.DELIVERY_OUTCOMES): the log line's word, but
# "temporary_failure" for its "deferred", as the metric's documentation names it.
_METRIC_OUTCOME = {"deferred": "temporary_failure"}


def _count(outcomes: list[Outcome], seconds: float) -> None:
    metrics.DELIVERY_SECONDS.observe(seconds)
    # One increment a word, not a recipient: with worker processes each is a locked write
    # to the worker's metrics file.
    for word, count in collections.Counter(map(delivery_outcome, outcomes)).items():
        metrics.DELIVERIES.labels(_METRIC_OUTCOME.get(word, word)).inc(count)


def _client(server: LMTP, session: SMTPSession, mail_from: str) -> Client:
    """Who hands this transaction over: ``host:port`` (IPv6 in brackets), or ``unix:`` and
    the listening socket's path (a unix peer has no address of its own)."""
    # aiosmtpd keeps the null reverse-path (bounces, RFC 5321 §4.5.5) as "<>".
    sender = "" if mail_from in (None, "<>") else mail_from
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        address = f"{host}:{peer[1]}"
    else:
        sockname = server.transport.get_extra_info("sockname") if server.transport else ""
        address = f"unix:{sockname}" if sockname else ""
    return Client(address, session.host_name or "", sender)


def _worst(outcomes) -> Outcome:
    """One answer for a recipient that expanded to several mailboxes (a group)."""
    outcomes = list(outcomes)
    temporary = [o for o in outcomes if 400 <= o.code < 500]
    if temporary:
        return temporary[0]
    return max(outcomes, key=lambda o: o.code) if outcomes else TEMPFAIL
