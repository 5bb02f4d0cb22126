"""Where users' mail goes: the interface of the last pipeline step, and the choice of mode.

``mail_store`` picks the module (``config.MAIL_STORES``: ``store_db``, ``store_maildir``,
``store_lmtp``); its ``open_store(settings)`` returns a ``MailStore``. Each group committer
opens one and uses it from its one thread, so a mode may keep state there (the downstream
LMTP connection).

A mode that writes outside the database transaction (a Maildir file, a downstream
delivery) cannot roll that back with it. Two rules keep that from losing or doubling mail:
the write comes before the commit and the 250 after it (a crash in between leaves a copy
the MTA then delivers again: a duplicate, never a loss), and a batch that the committer runs
again with savepoints (``committer.py``) does not write again: ``Once`` remembers each
delivery's answer until the batch is over.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, Protocol

from mr_engine.config import MAIL_STORES, Settings

from .context import Outcome

if TYPE_CHECKING:
    from .context import Delivery

DELIVERED = Outcome(250, "2.0.0", "Ok: delivered")


class MailStore(Protocol):
    def file(self, d: Delivery) -> Outcome:
        """Store the delivery's message (``d.content`` into ``d.folder``); its answer."""

    def size(self, d: Delivery) -> int:
        """Bytes the recipient's mail takes now, for the quota check."""

    def batch_done(self) -> None:
        """The committer has answered the batch (committed or not)."""

    def close(self) -> None:
        """The committer stops: release connections."""


def open_mail_store(settings: Settings) -> MailStore:
    """The ``MailStore`` of the configured ``mail_store``; ConfigError if it cannot work."""
    module = importlib.import_module(MAIL_STORES[settings.mail_store])
    return module.open_store(settings)


class Once:
    """Each delivery's answer from the mode and its note for the log line, remembered
    until the batch is over.

    A delivery is one message (its Envelope, shared by its recipients and by every run of
    the batch) to one mailbox.
    """

    def __init__(self) -> None:
        self._answers: dict[tuple[int, int], tuple[Outcome, str]] = {}

    def answer(self, d: Delivery, write: Callable[[], tuple[Outcome, str]]) -> Outcome:
        key = (id(d.envelope), d.row.id)
        if key not in self._answers:
            self._answers[key] = write()
        outcome, note = self._answers[key]
        d.notes.append(note)
        return outcome

    def forget(self) -> None:
        self._answers.clear()
