"""Pipeline step: an out-of-office auto-reply for a mailbox that is away (``services.oof``)."""

from __future__ import annotations

import logging

from mr_engine import metrics
from mr_engine.services.oof import Received, decide, queue_reply, suppression_kind
from mr_engine.store.oof_state import OofState

from .context import Delivery

log = logging.getLogger("delivery.oof")


def out_of_office(d: Delivery) -> None:
    """Queue an auto-reply if the mailbox is out of office and no rule forbids it."""
    state = d.batch.oof.get(d.row.id, OofState())
    if not state.active(d.now):
        return
    if d.meeting_request:
        d.notes.append("no oof reply: meeting request")
        _suppressed(d, "meeting_request")
        return
    received = Received(d.envelope.message, d.envelope.sender, d.recipient)
    try:
        reason, content = decide(received, d.mailbox, state, d.settings, d.now)
    except Exception:  # untrusted headers must never fail the delivery itself
        log.warning("%s: no out-of-office reply to %r: unusable headers", d.row.name,
                    d.envelope.sender, exc_info=True)
        d.notes.append("no oof reply: unusable headers")
        _suppressed(d, "unusable_headers")
        return
    if reason:
        d.notes.append(f"no oof reply: {reason}")
        _suppressed(d, suppression_kind(reason))
    elif queue_reply(d.session, d.mailbox, state, received, content, d.settings, d.now):
        d.queued += 1
        d.notes.append(f"oof reply queued to {received.sender.strip()}")
        d.counts.append(metrics.Count(metrics.OOF_SENT))
    else:
        d.notes.append("no oof reply: already replied within oof_interval")
        _suppressed(d, "interval")


def _suppressed(d: Delivery, reason: str) -> None:
    d.counts.append(metrics.Count(metrics.OOF_SUPPRESSED, (reason,)))
