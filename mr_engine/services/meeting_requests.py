"""A meeting request processed and answered in one transaction: the booking with its queued
replies, and the extension of a resource's due series with the declines it sends.

What the front ends call: the LMTP pipeline's meeting and pool steps, ``kopano-mr-accept``, the
maintenance pass of ``serve`` and ``kopano-cli --mr-booking-window``.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.orm import Session

from mr_engine import cpu_time
from mr_engine.config import Settings
from mr_engine.services import booking, horizon, pools
from mr_engine.services.replies import OutgoingReply
from mr_engine.store.db import lock_mailbox
from mr_engine.store.models import Group, Mailbox
from mr_engine.store.outbox import enqueue

log = logging.getLogger(__name__)


def queue_replies(session: Session, replies: list[OutgoingReply], now: dt.datetime) -> None:
    """Queue the resource's replies in the caller's transaction."""
    for reply in replies:
        enqueue(session, sender=reply.sender, recipients=[reply.recipient],
                content=reply.content, subject=reply.subject, now=now)


def book_and_queue(session: Session, req: booking.Request, now: dt.datetime) -> booking.BookingResult:
    """Process the request and queue its replies in the same transaction."""
    with cpu_time.DECIDE:
        result = booking.process(session, req)
    queue_replies(session, result.replies, now)
    return result


def pool_book_and_queue(session: Session, pool: Group, incoming: booking.Incoming,
                        settings: Settings, now: dt.datetime) -> booking.BookingResult | None:
    """A pool's request processed (``services.pools``), its replies queued with it; None
    when the message is no request of the pool's."""
    with cpu_time.DECIDE:
        result = pools.process(session, pool, incoming, settings, now)
    if result is not None:
        queue_replies(session, result.replies, now)
    return result


def extend_and_queue(session: Session, resource: Mailbox, settings: Settings,
                     now: dt.datetime, limit: int = 1_000_000) -> horizon.Extended:
    """Extend the resource's due series (``mr_engine.horizon``) and queue their declines;
    the resource is locked here, in the caller's transaction."""
    lock_mailbox(session, resource.id)
    done = horizon.catch_up(session, resource, horizon.Extender.of(resource, settings, now),
                            limit)
    queue_replies(session, done.replies, now)
    if done.series:
        log.info("%s: %s", resource.name, done.describe())
    return done
