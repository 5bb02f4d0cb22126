"""``mail_store = db``: users' mail is filed in the engine's own store (``store.messages``),
read back with ``mr-engine message``. Its writes are part of the delivery's transaction, so
a refused or failed delivery leaves nothing behind.
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
        msg_id = messages.file_message(d.batch.conn, d.store_id, folder_id, d.content,
                                        d.envelope.message, d.envelope.message_id,
                                        d.envelope.sender, d.now)
        d.notes.append(f"filed {d.folder} #{msg_id}")
        return DELIVERED

    def size(self, d: Delivery) -> int:
        # Read afresh: other recipients in this batch may have grown the store.
        return d.session.scalar(_SIZE, {"store": d.store_id}) or 0

    def batch_done(self) -> None:
        """Nothing outlives the transaction."""

    def close(self) -> None:
        """Nothing to release."""


def open_store(settings: Settings) -> DbStore:
    return DbStore()
