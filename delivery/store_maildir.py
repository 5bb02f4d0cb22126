"""``mail_store = maildir``: users' mail is written into Maildirs (``maildir_path``) that a
mail server such as Dovecot serves over IMAP; folders are Maildir++ (``.Processed
Requests``).

Duplicate suppression, quotas, out-of-office and bookings stay in the database; the store
keeps no copy of the message (``mr-engine message`` lists none), and the quota counts the
Maildir itself, so mail a user deletes over IMAP no longer counts.

The file is written durably inside the recipient's step, before the batch commits; its 250
comes after the commit. A crash between the two leaves the file without the database's
record of it (the Message-ID claim): the MTA, never told 250, delivers again and the user
has the message twice, never not at all.
"""

from __future__ import annotations

import logging

from mr_engine.config import Settings
from mr_engine.store.maildir import Maildir, maildir_of

from .context import Delivery, Outcome
from .mail_store import DELIVERED, Once

log = logging.getLogger(__name__)

UNUSABLE = Outcome(451, "4.3.0", "Mailbox temporarily unavailable, try again later")


class MaildirStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.once = Once()

    def file(self, d: Delivery) -> Outcome:
        return self.once.answer(d, lambda: self._write(d))

    def _write(self, d: Delivery) -> tuple[Outcome, str]:
        try:
            path = Maildir(maildir_of(self.settings, d.row)).deliver(d.folder, d.content)
        except (OSError, ValueError) as exc:
            # A full disk, a permission, a name that cannot be a path: the MTA keeps the
            # message and retries; the administrator reads why here.
            log.error("%s: Maildir delivery failed: %s", d.row.name, exc)
            return UNUSABLE, f"maildir failed: {exc}"
        return DELIVERED, f"filed {d.folder} {path.name}"

    def size(self, d: Delivery) -> int:
        try:
            return Maildir(maildir_of(self.settings, d.row)).size()
        except ValueError:
            return 0  # the delivery itself answers for an unusable path

    def batch_done(self) -> None:
        self.once.forget()

    def close(self) -> None:
        """Nothing to release."""


def open_store(settings: Settings) -> MaildirStore:
    return MaildirStore(settings)
