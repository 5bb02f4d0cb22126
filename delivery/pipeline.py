"""The per-recipient delivery pipeline: an explicit list of small steps.

Each step takes the recipient's ``Delivery`` and returns ``None`` to go on or an ``Outcome``
that ends the pipeline with that LMTP answer. All steps run inside the recipient's own
transaction (a savepoint of the group commit, see ``committer.py``): a step that fails rolls
back everything this recipient did, and nothing of the others.
"""

from __future__ import annotations

import logging
from typing import Callable

from mr_engine.store import messages

from . import trace
from .approval_mail import decide_by_mail
from .context import Delivery, Outcome
from .mail_store import DELIVERED
from .meeting import process_meeting_request
from .oof import out_of_office
from .pool import process_pool_request

log = logging.getLogger(__name__)

Step = Callable[[Delivery], Outcome | None]

__all__ = ["DELIVERED", "DUPLICATE", "OVER_QUOTA", "STEPS", "run"]

DUPLICATE = Outcome(250, "2.0.0", "Ok: already delivered (duplicate Message-ID)")
OVER_QUOTA = Outcome(552, "5.2.2", "Mailbox full: hard quota exceeded")


def open_store(d: Delivery) -> Outcome | None:
    known = d.batch.stores.known(d.row.id)
    # A first delivery creates the store, from the mailbox's entity.
    d.store_id = known if known is not None else d.batch.stores.store_id(d.mailbox, d.now)
    return None


def skip_duplicate(d: Delivery) -> Outcome | None:
    # MTAs retry a whole message after a partial failure; the recipients that already have
    # it must not get a second copy (nor a second booking or auto-reply).
    assert d.store_id is not None
    if d.batch.is_duplicate(d.store_id, d.envelope.message_id, d.now,
                            d.settings.dedupe_window):
        d.notes.append("duplicate")
        return DUPLICATE
    return None


def add_trace_headers(d: Delivery) -> Outcome | None:
    d.content = trace.final_delivery(d) + trace.received(d) + d.envelope.content
    return None


def check_quota(d: Delivery) -> Outcome | None:
    assert d.store_id is not None
    quota = messages.quota_of(d.row, d.settings)
    if not (quota.hard or quota.soft or quota.warning):
        return None
    after = d.mail.size(d) + len(d.content)
    if quota.hard and after > quota.hard:
        log.warning("%s: hard quota %d exceeded (%d bytes)", d.row.name, quota.hard, after)
        return OVER_QUOTA
    for level, name in ((quota.soft, "soft"), (quota.warning, "warning")):
        if level and after > level:
            log.warning("%s: over %s quota %d (%d bytes)", d.row.name, name, level, after)
            break
    return None


def file_message(d: Delivery) -> Outcome | None:
    return d.mail.file(d)  # into the store ``mail_store`` names (mail_store.py)


STEPS: list[Step] = [
    open_store,
    skip_duplicate,
    add_trace_headers,
    check_quota,
    decide_by_mail,
    process_pool_request,
    process_meeting_request,
    out_of_office,
    file_message,
]


def run(d: Delivery, steps: list[Step] = STEPS) -> Outcome:
    for step in steps:
        outcome = step(d)
        if outcome is not None:
            return outcome
    raise AssertionError("the pipeline ended without filing the message")
