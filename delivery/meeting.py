"""Pipeline step: meeting requests to auto-accepting resources are booked and answered.

Anything that is not a usable REQUEST or CANCEL for this resource, or whose processing
fails, is delivered to the Inbox as ordinary mail: nothing is lost, and the log says why.
A pool's requests are ``pool.py``'s, which runs before this step and uses ``book`` too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from mr_engine import cpu_time, metrics
from mr_engine.services import booking
from mr_engine.services.booking import BookingResult
from mr_engine.services.meeting_requests import book_and_queue
from mr_engine.store.stores import PROCESSED

from .context import Delivery, Outcome

log = logging.getLogger(__name__)


def process_meeting_request(d: Delivery) -> Outcome | None:
    # Kopano's autoaccept books and replies; its autoprocess (mr_process) books and files
    # without a reply (services.replies.wanted).
    if d.meeting_request or not (d.row.mr_accept or d.row.mr_process):
        return None

    def run() -> tuple[str, BookingResult] | None:
        with cpu_time.PARSE:
            req = booking.read_request(d.mailbox, d.envelope, d.settings, d.now)
        if req is None:
            return None
        return f"meeting request {req.invitation.uid}", book_and_queue(d.session, req, d.now)

    book(d, run)
    return None


def book(d: Delivery, run: Callable[[], tuple[str, BookingResult] | None]) -> None:
    """Run a booking (``run`` returns what it was and its result, its replies queued; None
    when the message is no request), and file the message as processed."""
    if d.batch.rerun_on_failure:
        # No savepoint (two statements saved): a failure fails the committer's first run,
        # which runs again with savepoints, and there the one below undoes the booking.
        done = run()
    else:
        done = _undone_on_failure(d, run)
    if done is None:
        return
    what, result = done
    d.queued += len(result.replies)
    d.meeting_request = True
    d.meeting = result
    d.counts.append(metrics.Count(metrics.MEETING_REQUESTS, (result.outcome,)))
    d.folder = PROCESSED
    d.notes.append(f"{what}: {result.describe()}")
    d.notes.extend(result.problems)


def _undone_on_failure(d: Delivery, run: Callable[[], tuple[str, BookingResult] | None]
                       ) -> tuple[str, BookingResult] | None:
    """``run`` in a savepoint of its own: a failure undoes the booking, not the delivery,
    which goes on as ordinary mail (None)."""
    try:
        with d.session.begin_nested():
            return run()
    except SQLAlchemyError:
        raise  # a store fault (lock timeout, deadlock): 451, the MTA retries, nothing lost
    except Exception:
        log.exception("%s: meeting request processing failed; delivering as mail",
                      d.row.name)
        d.counts.append(metrics.Count(metrics.MEETING_REQUESTS, ("failed",)))
        return None
