"""The iTIP REPLY messages a resource sends: whether the organizer gets one, and the message.

Shared by request processing (``booking``) and by series extension (``horizon``), which
declines occurrences that became due on a slot another booking holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from mr_engine.core.decline_texts import worded
from mr_engine.core.itip import EventData, Invitation, is_attendee
from mr_engine.core.recurrence import Instance
from mr_engine.store.models import Mailbox
from mr_engine.core.alternatives import Slot
from mr_engine.core.reply import (COUNTER_SUBJECT, Answer, Delegation, build_counter,
                                  build_reply, verb)

__all__ = ["OutgoingReply", "compose", "counter", "event_for", "summarize", "wanted"]

# Reasons shown one by one before "and N more": a decline listing a thousand conflicting
# dates would make a reply (and a log line) nobody reads to the end.
SHOWN_REASONS = 5


@dataclass(frozen=True)
class OutgoingReply:
    sender: str
    recipient: str
    subject: str
    content: bytes


def summarize(reasons: Sequence[str], shown: int = SHOWN_REASONS) -> str:
    """The reasons in Kopano's words first (``core.decline_texts``); a few spelled out,
    ``a; …; e and 995 more`` for many."""
    return worded(reasons, shown)


def wanted(inv: Invitation, resource: Mailbox) -> bool:
    """Whether the organizer gets an answer: there is one, it is not the resource itself,
    the resource's ATTENDEE did not say RSVP=FALSE, and the resource replies (it
    auto-accepts; with ``mr_process`` alone it books and files without replying)."""
    if resource.mr_process and not resource.mr_accept:
        return False
    organizer = inv.events[0].organizer
    me = is_attendee(inv, [resource.email])
    return bool(organizer) and organizer != resource.email_lower \
        and (me is None or me.rsvp)


def compose(inv: Invitation, event: EventData, resource: Mailbox, answers: list[Answer],
            message_id: str | None, now: dt.datetime, hostname: str,
            delegation: Delegation | None = None, offer: Sequence[str] = ()) -> OutgoingReply:
    """One REPLY carrying *answers* (``delegation``: a pool member's, RFC 5546 §3.2.2.3;
    ``offer``: the lines listing the alternatives, before the resource's own text);
    raises ValueError for an unusable organizer address."""
    note = "\n\n".join(part for part in ("\n".join(offer), resource.mr_response_text)
                       if part.strip())
    content = build_reply(inv, answers, resource.email, resource.fullname or resource.name,
                          message_id, now, hostname, note, delegation)
    return OutgoingReply(resource.email, event.organizer, f"{verb(answers)}: {event.summary}",
                         content)


def counter(event: EventData, resource: Mailbox, proposal: Slot, message_id: str | None,
            now: dt.datetime, hostname: str) -> OutgoingReply:
    """The COUNTER proposing ``proposal`` for a declined single meeting (RFC 5546 §3.2.7)."""
    content = build_counter(event, (proposal.start, proposal.end), resource.email,
                            resource.fullname or resource.name, message_id, now, hostname)
    return OutgoingReply(resource.email, event.organizer,
                         f"{COUNTER_SUBJECT}: {event.summary}", content)


def event_for(inv: Invitation, inst: Instance) -> EventData:
    """The VEVENT an instance came from: its override if it has one, else the master."""
    for event in inv.events:
        if event.recurrence_id is not None and event.recurrence_id == inst.recurrence_id:
            return event
    assert inv.master is not None
    return inv.master
