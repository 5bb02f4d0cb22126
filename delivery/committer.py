"""Group commit: deliveries from all LMTP sessions are committed together, durably, off the loop.

A single writer thread takes the write lock, then whatever deliveries are waiting (up to
``delivery_batch_size``), runs each recipient's pipeline in one transaction and commits once,
so one fsync serves many recipients (as Postfix and databases do with group commit). Only
after that commit does a recipient's future resolve, and only then does LMTP answer 250.

Most batches deliver everything, so the first run has no savepoints. If a recipient is
refused or fails, that run is rolled back and the batch runs again with a SAVEPOINT per
recipient: the refused one is rolled back and answered 4xx/5xx alone. A failed commit
answers every recipient of the batch 451 4.3.0, so the MTA retries.

Statements are few, since the server's time per statement is what a delivery costs: the
first run claims the batch's Message-IDs in one statement, inserts its messages in one and
its queued replies in one (``outbox.defer``); each store's size is updated once, at the end
of the batch (the quota check adds what the batch has filed). The careful run claims and
inserts inside each recipient's savepoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from mr_engine import cpu_time
from mr_engine.config import Settings
from mr_engine.metrics import Count
from mr_engine.store.db import Database
from mr_engine.store import calendar_store as cal, outbox
from mr_engine.store.directories import mailboxes_later, open_directory
from mr_engine.store.mailbox_rows import MailboxRow, mailbox_rows_later
from mr_engine.store.prepared import commit_later, pipelined

from . import pipeline
from .context import Batch, Delivery, Envelope, Outcome
from .mail_store import open_mail_store
from .log_lines import DeliveryLine

log = logging.getLogger(__name__)

TEMPFAIL = Outcome(451, "4.3.0", "Temporary store failure, try again later")


@dataclass
class DeliveryJob:
    envelope: Envelope
    recipient: str
    mailbox_id: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]


class _Rollback(Exception):
    """Raised inside a recipient's savepoint so that a refused delivery leaves no trace."""

    def __init__(self, result: "_Result") -> None:
        self.result = result


class _Retry(Exception):
    """Rolls back a batch run without savepoints, to run it again with them."""


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
        self.mail = open_mail_store(settings)  # used by the writer thread alone
        self._jobs: queue.Queue[DeliveryJob | None] = queue.Queue()
        self._writer = db.held_writer()  # used by the writer thread alone
        self._thread = threading.Thread(target=self._work, name="committer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish every delivery already submitted, then end the writer thread."""
        self._jobs.put(None)
        self._thread.join()
        self._writer.close()
        self.mail.close()

    async def deliver(self, envelope: Envelope, targets: list[tuple[str, int]]) -> list[Outcome]:
        """Deliver to each (recipient address, mailbox id); answers once committed."""
        loop = asyncio.get_running_loop()
        jobs = [DeliveryJob(envelope, rcpt, mid, loop, loop.create_future()) for rcpt, mid in targets]
        for job in jobs:
            self._jobs.put(job)
        if len(jobs) == 1:  # most messages: gather's wrapper task and callbacks saved
            return [await jobs[0].future]
        return list(await asyncio.gather(*(job.future for job in jobs)))

    def _work(self) -> None:
        cpu_time.name_thread("committer")  # top -H; the benchmark's commit side
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            with cpu_time.COMMIT:
                self._commit(batch)
            if batch[-1] is None:  # stop() was called while the batch was gathered
                return

    def _gather(self, batch: list[DeliveryJob | None]) -> None:
        """Add the deliveries waiting now to ``batch``; a None (stop) ends it."""
        while len(batch) < self.settings.delivery_batch_size and batch[-1] is not None:
            try:
                batch.append(self._jobs.get_nowait())
            except queue.Empty:
                return

    def _commit(self, batch: list[DeliveryJob | None]) -> None:
        jobs = [job for job in batch if job is not None]
        try:
            with self._writer.write() as session:
                now = self.clock()  # not before the wait for the lock
                # Gathered once the write lock is ours: what arrived while another process
                # committed joins this commit, so batches grow with the load.
                self._gather(batch)
                jobs = [job for job in batch if job is not None]
                results = self._deliver_all(session, jobs, now, careful=False)
                if results is None:
                    raise _Retry
        except _Retry:
            results = self._careful(jobs, now)
        except Exception:
            log.exception("commit of %d deliveries failed; answering 451", len(jobs))
            results = [_Result(TEMPFAIL, "", ["commit failed"]) for job in jobs]
        self.mail.batch_done()  # the answers are final: a next run writes afresh
        # Logged once committed (and outside the write lock): "delivered" is then true.
        answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
        for job, result in zip(jobs, results):
            DeliveryLine.after_data(job.envelope, job.recipient, result.outcome, result.mailbox,
                                    "; ".join(result.notes)).log()
            for count in result.counts:
                count.record()
            answers.setdefault(job.loop, []).append((job.future, result.outcome))
        # One wake-up of each loop for the whole batch, not one a delivery.
        for loop, answered in answers.items():
            loop.call_soon_threadsafe(_resolve, answered)
        if any(result.queued for result in results):
            self.on_queued()

    def _careful(self, jobs: list[DeliveryJob], now: dt.datetime) -> list["_Result"]:
        """The batch again, each delivery in a savepoint: a refused one leaves no trace."""
        try:
            with self._writer.write() as session:
                results = self._deliver_all(session, jobs, now, careful=True)
                assert results is not None
                return results
        except Exception:
            log.exception("commit of %d deliveries failed; answering 451", len(jobs))
            return [_Result(TEMPFAIL, "", ["commit failed"]) for job in jobs]

    def _deliver_all(self, session: Session, jobs: list[DeliveryJob], now: dt.datetime,
                     careful: bool) -> list["_Result"] | None:
        """Every delivery of the batch, in one transaction.

        Not ``careful``: no savepoints (two statements a delivery saved), and None as soon
        as one delivery is refused or fails; the caller rolls back and goes careful.
        """
        # One statement reads the batch's mailboxes, one their stores and folders, one their
        # out-of-office states (and the pools' addresses, if the pool step will ask): on
        # PostgreSQL sent together (with the BEGIN), one round trip. Then the entities of
        # those that may book and the batch's claims, in one more.
        ids = sorted({job.mailbox_id for job in jobs})
        calendars = any(job.envelope.calendar is not None for job in jobs)
        with pipelined(session.connection()):
            read_mailboxes = mailbox_rows_later(session.connection(), ids)
            load = Batch.later(session, ids, pools=calendars)
        mailboxes, loaded = read_mailboxes(), load()
        loaded.defer = True  # written below, once for the batch
        loaded.rerun_on_failure = not careful
        # Mailbox order, so that row locks (resources, first stores) are taken in one order
        # by every process and two batches cannot deadlock.
        order = sorted(range(len(jobs)), key=lambda i: jobs[i].mailbox_id)
        if not careful:
            outbox.defer(session)  # written with the batch's messages, below
            cal.defer_touches(session)
            cal.defer_new_bookings(session)  # each with the statement after it
        try:
            self._entities_and_claims(session, loaded, [jobs[i] for i in order], mailboxes,
                                      now, careful)
        except Exception:
            if careful:
                raise  # the careful run fails: 451 for all
            return None
        by_index: dict[int, _Result] = {}
        for i in order:
            row = mailboxes.get(jobs[i].mailbox_id)  # None: deleted since RCPT
            if careful:
                by_index[i] = self._deliver_one(session, loaded, jobs[i], row, now)
                continue
            try:
                result = self._run(session, loaded, jobs[i], row, now)
            except Exception:
                return None
            if result.outcome.code >= 400:
                return None
            by_index[i] = result
        try:
            session.flush()  # the ORM's changes before the COMMIT that commit_later sends
            # On PostgreSQL one round trip for the last writes and the COMMIT.
            with pipelined(session.connection()):
                outbox.write_deferred(session)
                cal.write_touches(session)
                give_ids = loaded.send()
                commit_later(session.connection())
        except SQLAlchemyError:
            if careful:
                raise  # the commit fails: 451 for all
            return None  # careful, each message is inserted in its savepoint
        # Outside the try: on PostgreSQL the batch is committed by now, and a careful re-run
        # would file it twice. The ids are read from what came back; nothing is run here.
        give_ids()
        return [by_index[i] for i in range(len(jobs))]

    def _entities_and_claims(self, session: Session, loaded: Batch, jobs: list[DeliveryJob],
                             mailboxes: dict[int, MailboxRow], now: dt.datetime,
                             careful: bool) -> None:
        """The entities of the mailboxes that may book (the meeting and pool steps need
        them) and, in the first run, the batch's Message-ID claims: on PostgreSQL sent
        together, one round trip (a careful run claims in each delivery's savepoint)."""
        booking = [row.id for row in mailboxes.values() if row.may_book]
        source = open_directory(self.settings, session) if booking else None
        together = source is not None and not careful  # else one statement at most
        with pipelined(session.connection()) if together else contextlib.nullcontext():
            entities = mailboxes_later(source, booking) if source is not None else dict
            claimed = (lambda: None) if careful else self._claim_all_later(loaded, jobs,
                                                                           mailboxes, now)
        loaded.entities = entities()
        claimed()

    def _claim_all_later(self, loaded: Batch, jobs: list[DeliveryJob],
                         mailboxes: dict[int, MailboxRow], now: dt.datetime) -> Callable[[], None]:
        """The batch's Message-ID claims in one statement, when the pipeline checks them
        (``Batch.claim_all_later``).

        Only into stores that exist: creating one takes its mailbox's row lock, which its
        own delivery takes in turn (mailbox order), not all of them before the first.
        """
        if pipeline.skip_duplicate not in self.steps:
            return lambda: None
        keys = []
        for job in jobs:
            store_id = loaded.stores.known(job.mailbox_id)
            if store_id is not None and job.mailbox_id in mailboxes and job.envelope.message_id:
                keys.append((store_id, job.envelope.message_id))
        return loaded.claim_all_later(keys, now, self.settings.dedupe_window)

    def _run(self, session: Session, loaded: Batch, job: DeliveryJob, row: MailboxRow | None,
             now: dt.datetime) -> "_Result":
        if row is None:
            return _Result(Outcome(550, "5.1.1", "Mailbox no longer exists"), "",
                           ["no such mailbox"])
        d = Delivery(session=session, settings=self.settings, now=now, envelope=job.envelope,
                     recipient=job.recipient, row=row, batch=loaded, mail=self.mail)
        outcome = pipeline.run(d, self.steps)
        if outcome.code >= 400:
            return _Result(outcome, row.name, d.notes)
        return _Result(outcome, row.name, d.notes, d.queued, tuple(d.counts))

    def _deliver_one(self, session: Session, loaded: Batch, job: DeliveryJob,
                     row: MailboxRow | None, now: dt.datetime) -> "_Result":
        mark = loaded.filings.mark()
        try:
            with session.begin_nested():
                # The ORM emits SAVEPOINT only when asked for the connection; the steps'
                # Core statements use the batch's connection, so ask here.
                session.connection()
                result = self._run(session, loaded, job, row, now)
                if result.outcome.code >= 400:
                    raise _Rollback(result)
                loaded.filings.write_messages(loaded.conn)  # a failing insert fails it alone
            return result
        except _Rollback as refused:
            self._undo(loaded, job, mark)  # what this delivery created is undone
            return refused.result
        except SQLAlchemyError:
            self._undo(loaded, job, mark)
            log.exception("store error delivering to %s", job.recipient)
            return _Result(TEMPFAIL, "", ["store error"])
        except Exception:
            # A bug must not lose the message: answer 4xx so the MTA keeps it and retries.
            self._undo(loaded, job, mark)
            log.exception("unexpected error delivering to %s", job.recipient)
            return _Result(TEMPFAIL, "", ["internal error"])

    @staticmethod
    def _undo(loaded: Batch, job: DeliveryJob, mark: tuple[int, dict[int, int]]) -> None:
        loaded.stores.forget(job.mailbox_id)
        loaded.filings.undo(mark)


@dataclass(frozen=True)
class _Result:
    outcome: Outcome
    mailbox: str  # the name of the mailbox reached, "" when none was
    notes: list[str]  # joined for the log line; a filing's note gets its id once written
    queued: int = 0  # outbound messages queued (replies, auto-replies)
    counts: tuple[Count, ...] = ()  # a refused delivery's were rolled back with it


def _resolve(answered: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    for future, outcome in answered:
        if not future.done():  # cancelled: its session was closed meanwhile
            future.set_result(outcome)
