"""``mail_store = lmtp``: users' mail is handed on to another LMTP server (``store_lmtp``:
Dovecot, Cyrus) once the engine's own steps (booking, out-of-office) have run.

Each recipient gets the downstream server's answer: 250 only after its 250, its 4xx or 5xx
passed on, 451 4.4.1 when it cannot be reached. A refused answer rolls the recipient's
transaction back (``committer.py``'s savepoints): its booking, out-of-office state and
queued replies go with it, and the MTA's retry finds everything as before. Processed
meeting requests of resources stay in the engine's own store (``store_db``), where their
booking is; a user who auto-accepts (``mr_accept`` without a resource type) gets the
processed request handed on like any other mail, so that user's booking stands or falls
with the downstream's answer.

The hand-over comes before the batch commits and the 250 after; a crash in between means
the downstream server has the message and the MTA delivers it again (a duplicate, never a
loss). Quotas are the downstream server's (it answers 552); the engine's quota settings
count only what the engine itself stores.
"""

from __future__ import annotations

from mr_engine.config import Settings, check_mail_store

from . import trace
from .context import Delivery, Outcome
from .downstream import Downstream
from .mail_store import Once
from .store_db import DbStore


class LmtpStore:
    def __init__(self, settings: Settings) -> None:
        self.downstream = Downstream(settings.store_lmtp, settings.hostname)
        self.own = DbStore()
        self.once = Once()

    def file(self, d: Delivery) -> Outcome:
        if d.meeting_request and d.mailbox.resource_settings.kind != "none":
            return self.own.file(d)  # a resource's processed request, beside its booking
        return self.once.answer(d, lambda: self._hand_on(d))

    def _hand_on(self, d: Delivery) -> tuple[Outcome, str]:
        # Not the final delivery: the downstream server writes Return-Path and Delivered-To.
        content = trace.received(d) + d.envelope.content
        outcome = self.downstream.deliver(d.envelope.sender, d.row.email, content)
        return outcome, f"handed to {self.downstream.address}: {outcome.reply()}"

    def size(self, d: Delivery) -> int:
        return self.own.size(d)

    def batch_done(self) -> None:
        self.once.forget()

    def close(self) -> None:
        self.downstream.close()


def open_store(settings: Settings) -> LmtpStore:
    check_mail_store(settings)  # Settings made in code skip load_settings
    return LmtpStore(settings)
