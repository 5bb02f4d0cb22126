"""Deliveries through the group committer in one batch, in process, for tests: the jobs are
queued before the writer thread starts, so they are one batch."""

from __future__ import annotations

import asyncio

from mr_engine.config import Settings
from mr_engine.delivery.committer import Committer
from mr_engine.delivery.context import Envelope, Outcome
from mr_engine.store.db import Database

from .times import NOW


def one_batch(db: Database, deliveries: list[tuple[Envelope, list[tuple[str, int]]]]
              ) -> list[list[Outcome]]:
    """Each (envelope, [(recipient address, mailbox id)]) delivered, all in one batch; the
    answers, in the same order."""
    committer = Committer(db, Settings(), clock=lambda: NOW)

    async def run() -> list[list[Outcome]]:
        tasks = [asyncio.ensure_future(committer.deliver(envelope, targets))
                 for envelope, targets in deliveries]
        await asyncio.sleep(0)  # every job queued before the writer takes the first
        committer.start()
        return list(await asyncio.gather(*tasks))

    try:
        return asyncio.run(run())
    finally:
        committer.stop()
