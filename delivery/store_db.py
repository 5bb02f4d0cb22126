"""``mail_store = db``: users' mail is filed in the engine's own store (``store.messages``),
read back with ``mr-engine message``. Its writes are part of the delivery's transaction, so
a refused or failed delivery leaves nothing behind.

A filed message is added to the batch's ``Filings``: the group committer writes the rows and
the stores' sizes once for the batch (``committer.py``), so the quota check adds what the
batch has filed but not yet written.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select

from mr_engine.config import Settings
from mr_engine.store import messages
from mr_engine.store.models import Store

from .context import Delivery, Outcome
from .mail_store import DELIVERED

_SIZE = select(Store.size).where(Store.id == bindparam("store"))


class DbStore:
    def file(self, d: Delivery) -> Outcome:
        assert d.store_id is not None
        folder_id = d.batch.stores.folder_id(d.store_id, d.folder)
        subject, from_ = d.envelope.listing
        row = messages.message_row(d.store_id, folder_id, d.content, subject, from_,
                                   d.envelope.message_id, d.envelope.sender, d.now)
        notes, at, folder = d.notes, len(d.notes), d.folder
        notes.append(f"filed {folder}")  # its id once the row is written

        def on_id(msg_id: int) -> None:
            notes[at] = f"filed {folder} #{msg_id}"
        d.batch.file(row, on_id)
        return DELIVERED

    def size(self, d: Delivery) -> int:
        # Read afresh (another server may have grown it), plus what this batch has filed.
        assert d.store_id is not None
        stored = d.session.scalar(_SIZE, {"store": d.store_id}) or 0
        return stored + d.batch.filings.grown(d.store_id)

    def batch_done(self) -> None:
        """Nothing outlives the transaction."""

    def close(self) -> None:
        """Nothing to release."""


def open_store(settings: Settings) -> DbStore:
    return DbStore()
