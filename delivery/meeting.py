"""Pipeline step: meeting requests to auto-accepting resources are booked and answered.

Anything that is not a usable REQUEST or CANCEL for this resource, or whose processing
fails, is delivered to the Inbox as ordinary mail: nothing is lost, and the log says why.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mr_engine import booking, horizon
from mr_engine.config import Settings
from mr_engine.db import lock_mailbox
from mr_engine.models import Mailbox
from mr_engine.replies import OutgoingReply
from mr_engine.stores import PROCESSED

from .context import Delivery, Outcome
from .outbox import enqueue

log = logging.getLogger(__name__)


def queue_replies(session: Session, replies: list[OutgoingReply], now: dt.datetime) -> None:
    """Queue the resource's replies in the caller's transaction."""
    for reply in replies:
        enqueue(session, sender=reply.sender, recipients=[reply.recipient],
                content=reply.content, subject=reply.subject, now=now)


def book_and_queue(session: Session, req: booking.Request, now: dt.datetime) -> booking.Result:
    """Process the request and queue its replies in the same transaction."""
    result = booking.process(session, req)
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


def process_meeting_request(d: Delivery) -> Outcome | None:
    if not d.mailbox.mr_accept:
        return None
    try:
        # A savepoint of its own: a failure here undoes the booking, not the delivery.
        with d.session.begin_nested():
            req = booking.read_request(d.mailbox, d.envelope.invitation, d.envelope.message_id,
                                       d.settings, d.now)
            if req is None:
                return None
            result = book_and_queue(d.session, req, d.now)
    except SQLAlchemyError:
        raise  # a store fault (lock timeout, deadlock): 451, the MTA retries, nothing lost
    except Exception:
        log.exception("%s: meeting request processing failed; delivering as mail",
                      d.mailbox.name)
        return None
    d.queued += len(result.replies)
    d.meeting_request = True
    d.meeting = result
    d.folder = PROCESSED
    d.notes.append(f"meeting request {req.invitation.uid}: {result.describe()}")
    d.notes.extend(result.problems)
    return None
