"""Upkeep that ``mr-engine serve`` runs in the background: series horizons, dedupe claims,
sent mail and approvals nobody decided.

At start and then every ``INTERVAL`` (an hour) a pass extends every resource's due series
(``mr_engine.horizon``; their declines are queued for the relay), drops the Message-ID
claims older than ``dedupe_window`` and the sent outbound messages older than
``queue_keep_sent``, and declines the requests whose approval waited longer than their
resource's ``mr_approval_timeout`` (one transaction each). Series are extended ``CHUNK`` at
a time, one short write transaction each, so deliveries never wait behind a long one. Every worker process runs the
pass; the resource's lock and the moved horizon leave nothing for a second one to do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Callable

from sqlalchemy import select

from mr_engine.services import approvals
from mr_engine.services.meeting_requests import queue_replies
from mr_engine.store import approvals as approval_store
from mr_engine.store import messages, outbox
from mr_engine.config import Settings
from mr_engine.store.db import Database
from mr_engine.store.models import Booking, Mailbox

from mr_engine.services.meeting_requests import extend_and_queue

log = logging.getLogger(__name__)

INTERVAL = 3600.0  # seconds between passes
CHUNK = 50  # series extended per write transaction

_WITH_SERIES = select(Booking.resource_id).where(Booking.horizon.is_not(None)).distinct()


class Maintenance:
    def __init__(self, db: Database, settings: Settings, clock: Callable[[], dt.datetime],
                 on_queued: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.on_queued = on_queued

    async def run(self, stop: asyncio.Event) -> None:
        """A pass at once, then one every INTERVAL, until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("maintenance pass failed; the next one is in %.0f s", INTERVAL)
            try:
                await asyncio.wait_for(stop.wait(), INTERVAL)
            except asyncio.TimeoutError:
                pass

    def run_once(self) -> None:
        now = self.clock()
        with self.db.read() as session:
            resources = list(session.scalars(_WITH_SERIES))
        for resource_id in resources:
            self._catch_up(resource_id, now)
        self._forget_message_ids(now)
        self._prune_sent(now)
        self._expire_approvals(now)

    def _catch_up(self, resource_id: int, now: dt.datetime) -> None:
        while True:
            with self.db.write() as session:
                resource = session.get(Mailbox, resource_id)
                if resource is None:
                    return
                done = extend_and_queue(session, resource, self.settings, now, CHUNK)
            if done.replies:
                self.on_queued()
            if done.series < CHUNK:
                return

    def _forget_message_ids(self, now: dt.datetime) -> None:
        before = now - dt.timedelta(seconds=max(self.settings.dedupe_window, 0))
        with self.db.write() as session:
            forgotten = messages.forget_message_ids(session.connection(), before)
        if forgotten:
            log.info("forgot %d Message-ID(s) older than the dedupe window", forgotten)

    def _prune_sent(self, now: dt.datetime) -> None:
        before = now - dt.timedelta(seconds=self.settings.queue_keep_sent)
        with self.db.write() as session:
            pruned = outbox.prune_sent(session, before)
        if pruned:
            log.info("pruned %d sent message(s) queued before %s (queue_keep_sent)", pruned,
                     before.isoformat(timespec="seconds"))

    def _expire_approvals(self, now: dt.datetime) -> None:
        with self.db.read() as session:
            due = approval_store.due(session, now)
        for approval_id in due:
            with self.db.write() as session:
                done = approvals.expire(session, approval_id, self.settings, now)
                if done is not None:
                    queue_replies(session, done.replies, now)
            if done is not None and done.replies:
                self.on_queued()
