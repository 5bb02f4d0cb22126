"""Group commit: deliveries from all LMTP sessions are committed together, durably, off the loop.

A single writer thread takes whatever deliveries are waiting (up to ``delivery_batch_size``),
runs each recipient's pipeline inside its own SAVEPOINT of one transaction and commits once,
so one fsync serves many recipients (as Postfix and databases do with group commit). Only
after that commit does a recipient's future resolve, and only then does LMTP answer 250. A
recipient whose pipeline fails is rolled back to its savepoint and answered 4xx/5xx alone;
a failed commit answers every recipient of the batch 451 4.3.0, so the MTA retries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.db import Database
from mr_engine.models import Mailbox

from . import pipeline
from .context import Delivery, Envelope, Outcome

log = logging.getLogger(__name__)

TEMPFAIL = Outcome(451, "4.3.0", "Temporary store failure, try again later")


@dataclass
class Job:
    envelope: Envelope
    recipient: str
    mailbox_id: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]


class _Rollback(Exception):
    """Raised inside a recipient's savepoint so that a refused delivery leaves no trace."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class Committer:
    def __init__(self, db: Database, settings: Settings,
                 clock: Callable[[], dt.datetime],
                 on_queued: Callable[[], None] = lambda: None,
                 steps: list[pipeline.Step] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.on_queued = on_queued
        self.steps = steps if steps is not None else pipeline.STEPS
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="committer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish every delivery already submitted, then end the writer thread."""
        self._jobs.put(None)
        self._thread.join()

    async def deliver(self, envelope: Envelope, targets: list[tuple[str, int]]) -> list[Outcome]:
        """Deliver to each (recipient address, mailbox id); answers once committed."""
        loop = asyncio.get_running_loop()
        jobs = [Job(envelope, rcpt, mid, loop, loop.create_future()) for rcpt, mid in targets]
        for job in jobs:
            self._jobs.put(job)
        return list(await asyncio.gather(*(job.future for job in jobs)))

    def _work(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self.settings.delivery_batch_size:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._commit(batch)
            if stopping:
                return

    def _commit(self, batch: list[Job]) -> None:
        now = self.clock()
        queued = 0
        try:
            with self.db.write() as session:
                # One query loads the batch's mailboxes; session.get then finds them in
                # the identity map instead of asking the database once per recipient.
                session.scalars(select(Mailbox).where(
                    Mailbox.id.in_({job.mailbox_id for job in batch}))).all()
                # Mailbox order, so that row locks (resources, first stores) are taken in
                # one order by every process and two batches cannot deadlock.
                order = sorted(range(len(batch)), key=lambda i: batch[i].mailbox_id)
                by_index = {i: self._deliver_one(session, batch[i], now) for i in order}
                results = [by_index[i] for i in range(len(batch))]
            outcomes = [outcome for outcome, _ in results]
            queued = sum(count for _, count in results)
        except Exception:
            log.exception("commit of %d deliveries failed; answering 451", len(batch))
            outcomes = [TEMPFAIL] * len(batch)
            queued = 0
        for job, outcome in zip(batch, outcomes):
            job.loop.call_soon_threadsafe(_resolve, job.future, outcome)
        if queued:
            self.on_queued()

    def _deliver_one(self, session: Session, job: Job, now: dt.datetime) -> tuple[Outcome, int]:
        try:
            with session.begin_nested():
                mailbox = session.get(Mailbox, job.mailbox_id)
                if mailbox is None:
                    return Outcome(550, "5.1.1", "Mailbox no longer exists"), 0
                d = Delivery(session=session, settings=self.settings, now=now,
                             envelope=job.envelope, recipient=job.recipient, mailbox=mailbox)
                outcome = pipeline.run(d, self.steps)
                if outcome.code >= 400:
                    raise _Rollback(outcome)
            log.info("delivered message-id=%s to %s (%s): %s %s", job.envelope.message_id,
                     mailbox.name, ", ".join(d.notes), outcome.code, outcome.status)
            return outcome, d.queued
        except _Rollback as refused:
            log.info("refused message-id=%s for %s: %s", job.envelope.message_id,
                     job.recipient, refused.outcome.reply())
            return refused.outcome, 0
        except SQLAlchemyError:
            log.exception("store error delivering to %s", job.recipient)
            return TEMPFAIL, 0
        except Exception:
            # A bug must not lose the message: answer 4xx so the MTA keeps it and retries.
            log.exception("unexpected error delivering to %s", job.recipient)
            return TEMPFAIL, 0


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
