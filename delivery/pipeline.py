"""The per-recipient delivery pipeline: an explicit list of small steps.

Each step takes the recipient's ``Delivery`` and returns ``None`` to go on or an ``Outcome``
that ends the pipeline with that LMTP answer. All steps run inside the recipient's own
transaction (a savepoint of the group commit, see ``committer.py``): a step that fails rolls
back everything this recipient did, and nothing of the others.
"""

from __future__ import annotations

import logging
import re
from typing import Callable

from sqlalchemy import select

from mr_engine.store import messages
from mr_engine.store.models import Store

from .context import Delivery, Outcome
from .meeting import process_meeting_request
from .oof import out_of_office

log = logging.getLogger(__name__)

Step = Callable[[Delivery], Outcome | None]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

DELIVERED = Outcome(250, "2.0.0", "Ok: delivered")
DUPLICATE = Outcome(250, "2.0.0", "Ok: already delivered (duplicate Message-ID)")
OVER_QUOTA = Outcome(552, "5.2.2", "Mailbox full: hard quota exceeded")


def open_store(d: Delivery) -> Outcome | None:
    d.store_id = d.batch.stores.store_id(d.mailbox, d.now)
    return None


def skip_duplicate(d: Delivery) -> Outcome | None:
    # MTAs retry a whole message after a partial failure; the recipients that already have
    # it must not get a second copy (nor a second booking or auto-reply).
    assert d.store_id is not None
    if messages.is_duplicate(d.batch.conn, d.store_id, d.envelope.message_id, d.now,
                              d.settings.dedupe_window):
        d.notes.append("duplicate")
        return DUPLICATE
    return None


def add_trace_headers(d: Delivery) -> Outcome | None:
    # RFC 5321 §4.4: Return-Path and Received; Delivered-To as Postfix and Dovecot write it.
    env = d.envelope
    stamp = d.now.strftime("%a, %d %b %Y %H:%M:%S +0000")
    # aiosmtpd splits commands on LF only: a bare CR in LHLO or an address must not
    # start a header line of its own in the stored message.
    helo, sender, rcpt = (_CONTROL.sub("", v) for v in (env.helo, env.sender, d.recipient))
    peer = f" ({_CONTROL.sub('', env.peer)})" if env.peer else ""
    trace = (f"Return-Path: <{sender}>\r\n"
             f"Delivered-To: {rcpt}\r\n"
             f"Received: from {helo or 'unknown'}{peer}\r\n"
             f"\tby {d.settings.hostname} (mr-engine) with LMTP\r\n"
             f"\tfor <{rcpt}>; {stamp}\r\n")
    d.content = trace.encode("utf-8", "surrogateescape") + env.content
    return None


def check_quota(d: Delivery) -> Outcome | None:
    assert d.store_id is not None
    quota = messages.quota_of(d.mailbox, d.settings)
    if not (quota.hard or quota.soft or quota.warning):
        return None
    # Read the size afresh: other recipients in this batch may have grown the store.
    size = d.session.scalar(select(Store.size).where(Store.id == d.store_id)) or 0
    after = size + len(d.content)
    if quota.hard and after > quota.hard:
        log.warning("%s: hard quota %d exceeded (%d bytes)", d.mailbox.name, quota.hard, after)
        return OVER_QUOTA
    for level, name in ((quota.soft, "soft"), (quota.warning, "warning")):
        if level and after > level:
            log.warning("%s: over %s quota %d (%d bytes)", d.mailbox.name, name, level, after)
            break
    return None


def file_message(d: Delivery) -> Outcome | None:
    assert d.store_id is not None
    folder_id = d.batch.stores.folder_id(d.store_id, d.folder)
    msg_id = messages.file_message(d.batch.conn, d.store_id, folder_id, d.content,
                                    d.envelope.message, d.envelope.message_id,
                                    d.envelope.sender, d.now)
    d.notes.append(f"filed {d.folder} #{msg_id}")
    return DELIVERED


STEPS: list[Step] = [
    open_store,
    skip_duplicate,
    add_trace_headers,
    check_quota,
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
