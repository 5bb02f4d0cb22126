"""The out-of-office answer to one delivered message: the RFC 3834 rules (``core.oof_rules``),
the once-per-interval claim (``store.oof_state``), and the reply queued with the null sender in
the delivery's transaction."""

from __future__ import annotations

import datetime as dt
import email.message
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core.oof_rules import build_auto_reply, reply_subject, suppression_reason
from mr_engine.store.models import Mailbox
from mr_engine.store.oof_state import OofState, claim_reply
from mr_engine.store.outbox import enqueue


# The ``reason`` label of mr_engine_oof_replies_suppressed_total: a short name for each of
# core.oof_rules' reasons (which quote header values, too many to be label values), by the
# words they start with. The delivery step adds its own (meeting_request, interval, ...).
_SUPPRESSION_KINDS = (
    ("null envelope sender", "null_sender"),
    ("invalid envelope sender", "invalid_sender"),
    ("sender is the user's own", "own_address"),
    ("system or list sender", "system_sender"),
    ("Auto-Submitted:", "auto_submitted"),
    ("Precedence:", "precedence"),
    ("mailing list", "mailing_list"),
    ("X-Auto-Response-Suppress:", "auto_response_suppress"),
    ("X-Spam-Flag:", "spam"),
    ("the user is not in To or Cc", "not_addressed"),
)


def suppression_kind(reason: str) -> str:
    """The short name of a suppression reason of ``decide`` ("other" for one unknown)."""
    return next((kind for start, kind in _SUPPRESSION_KINDS if reason.startswith(start)),
                "other")


@dataclass(frozen=True)
class Received:
    """What the answer depends on: the message, its envelope sender, the recipient used."""

    message: email.message.Message
    sender: str  # envelope sender; "" for <>
    recipient: str  # the address as given at RCPT TO


def decide(received: Received, mailbox: Mailbox, state: OofState, settings: Settings,
           now: dt.datetime) -> tuple[str | None, bytes]:
    """(why not, b"") or (None, the reply). Raises what unusable headers raise: the caller
    decides that it is no reason to fail a delivery."""
    reason = suppression_reason(received.sender, received.message,
                                [mailbox.email, received.recipient],
                                settings.oof_require_explicit_recipient)
    if reason:
        return reason, b""
    return None, build_auto_reply(
        original=received.message, to=received.sender.strip(), from_name=mailbox.fullname,
        from_address=mailbox.email, subject=state.subject, body=state.body, now=now,
        hostname=settings.hostname)


def queue_reply(session: Session, mailbox: Mailbox, state: OofState, received: Received,
                content: bytes, settings: Settings, now: dt.datetime) -> bool:
    """Queue *content* to the sender unless one was sent within ``oof_interval``."""
    sender = received.sender.strip()
    # Checks the interval and records this reply in one statement (RFC 3834 §2).
    if not claim_reply(session, mailbox, sender, now, settings.oof_interval):
        return False
    enqueue(session, sender="", recipients=[sender], content=content,
            subject=reply_subject(state.subject, received.message), now=now)
    return True
