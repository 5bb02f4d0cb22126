"""Pipeline step: meeting requests to auto-accepting resources are booked and answered.

Anything that is not a usable REQUEST or CANCEL for this resource, or whose processing
fails, is delivered to the Inbox as ordinary mail: nothing is lost, and the log says why.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from mr_engine import metrics
from mr_engine.services import booking
from mr_engine.services.meeting_requests import book_and_queue
from mr_engine.store.stores import PROCESSED

from .context import Delivery, Outcome

log = logging.getLogger(__name__)


def process_meeting_request(d: Delivery) -> Outcome | None:
    # Kopano's autoaccept books and replies; its autoprocess (mr_process) books and files
    # without a reply (services.replies.wanted).
    if not (d.mailbox.mr_accept or d.mailbox.mr_process):
        return None
    try:
        # A savepoint of its own: a failure here undoes the booking, not the delivery.
        with d.session.begin_nested():
            req = booking.read_request(d.mailbox, d.envelope, d.settings, d.now)
            if req is None:
                return None
            result = book_and_queue(d.session, req, d.now)
    except SQLAlchemyError:
        raise  # a store fault (lock timeout, deadlock): 451, the MTA retries, nothing lost
    except Exception:
        log.exception("%s: meeting request processing failed; delivering as mail",
                      d.mailbox.name)
        d.counts.append(metrics.Count(metrics.MEETING_REQUESTS, ("failed",)))
        return None
    d.queued += len(result.replies)
    d.meeting_request = True
    d.meeting = result
    d.counts.append(metrics.Count(metrics.MEETING_REQUESTS, (result.outcome,)))
    d.folder = PROCESSED
    d.notes.append(f"meeting request {req.invitation.uid}: {result.describe()}")
    d.notes.extend(result.problems)
    return None
