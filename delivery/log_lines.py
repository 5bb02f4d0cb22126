"""The lines an admin greps: one per delivery and recipient, one per relay attempt and recipient.

As Postfix and Dovecot log them: who handed the message over, the envelope, the size, the
Message-ID, the delay and the answer with its status code (RFC 3463 enhanced code apart),
and what the steps did. Keys are stable; README "Logs" lists them. Both formats come from
the same ``Event`` (``mr_engine.logs``).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from mr_engine.logs import Event, log_event

from .context import Envelope, Outcome
from .pipeline import DUPLICATE

delivery_log = logging.getLogger("mr_engine.delivery")
relay_log = logging.getLogger("mr_engine.relay")

_REPLY = re.compile(r"(\d{3})(?:[ -](\d\.\d{1,3}\.\d{1,3}))?(?:[ -](.*))?", re.DOTALL)


def parse_reply(reply: str) -> Outcome | None:
    """``"550 5.1.1 User unknown"`` as an Outcome; None when it starts with no reply code
    (a connection error, say)."""
    match = _REPLY.fullmatch(reply.strip())
    if not match:
        return None
    return Outcome(int(match.group(1)), match.group(2) or "", match.group(3) or "")


def delivery_outcome(outcome: Outcome) -> str:
    """The line's first word: delivered, duplicate, deferred (4xx) or refused (5xx)."""
    if outcome == DUPLICATE:
        return "duplicate"
    if outcome.code < 400:
        return "delivered"
    return "deferred" if outcome.code < 500 else "refused"


@dataclass(frozen=True)
class Client:
    """Who is talking LMTP, and the transaction's envelope sender."""

    address: str  # "127.0.0.1:40312", "[::1]:40312" or "unix:/path/of/the/socket"
    lhlo: str
    sender: str  # "" for the null sender <>


@dataclass(frozen=True)
class DeliveryLine:
    """One recipient's answer. ``size``, ``message_id`` and ``delay`` are None (``-``) for a
    recipient refused at RCPT, before there was a message."""

    client: Client
    recipient: str
    outcome: Outcome
    mailbox: str = ""  # the mailbox it went to, "" when none was reached
    size: int | None = None
    message_id: str | None = None
    delay: float | None = None  # seconds from the end of DATA to the answer
    steps: str = ""

    @classmethod
    def after_data(cls, env: Envelope, recipient: str, outcome: Outcome, mailbox: str = "",
                   steps: str = "") -> "DeliveryLine":
        return cls(Client(env.client, env.helo, env.sender), recipient, outcome, mailbox,
                   len(env.content), env.message_id, time.monotonic() - env.received, steps)

    def log(self) -> None:
        o = self.outcome
        log_event(delivery_log, Event("delivery", delivery_outcome(o), {
            "client": self.client.address or None, "lhlo": self.client.lhlo or None,
            "from": self.client.sender, "to": self.recipient, "mailbox": self.mailbox or None,
            "size": self.size, "message_id": self.message_id, "delay": _seconds(self.delay),
            "status": o.code, "enhanced": o.status or None, "reply": o.text,
            "steps": self.steps or None}))


@dataclass(frozen=True)
class RelayLine:
    """One recipient of one relay attempt: sent, deferred, bounced (refused for good by the
    server) or failed (given up: the lifetime expired, or it cannot be sent at all)."""

    queue_id: int
    attempt: int
    sender: str
    recipient: str
    relay: str  # the smarthost, host:port
    outcome: str
    reply: str  # the server's answer, or why there was none
    delay: float  # seconds the attempt took (connection included)
    age: float  # seconds since the message was queued

    def log(self) -> None:
        answer = parse_reply(self.reply) or Outcome(0, "", self.reply)
        level = logging.INFO if self.outcome == "sent" else logging.WARNING
        log_event(relay_log, Event("relay", self.outcome, {
            "id": self.queue_id, "attempt": self.attempt, "from": self.sender,
            "to": self.recipient, "relay": self.relay, "delay": _seconds(self.delay),
            "age": _seconds(self.age), "status": answer.code or None,
            "enhanced": answer.status or None, "reply": answer.text or None}), level)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(max(value, 0.0), 3)
