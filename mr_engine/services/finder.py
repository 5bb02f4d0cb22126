"""Which resources are free for a whole period: the "find a free resource" form of ``GET /``.

Free means what booking means by it: a request for the period would meet no conflict. The
check is booking's own (``core.policy.conflict``): the other bookings' opaque occurrences
overlapping the period (``calendar_store.busy_intervals``), and whether they take the
resource's whole capacity anywhere in it (``BusyTimes.full_during`` with
``effective_capacity``): a room holds one meeting, equipment with capacity N is free while
fewer than N are booked at once. It is asked whatever ``mr_decline_conflict`` says, since a
person looking for a free resource wants one nobody else has. The other booking rules
(window, longest meeting) are the request's business and are not anticipated here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mr_engine.core.busy import BusyTimes
from mr_engine.core.policy import effective_capacity
from mr_engine.store import calendar_store as cal
from mr_engine.store.directories import Directory
from mr_engine.store.models import Mailbox

KINDS = ("room", "equipment")


@dataclass(frozen=True)
class Wanted:
    """What a person looks for: the period, and optionally a kind and a least capacity."""

    start: dt.datetime  # UTC
    end: dt.datetime  # UTC, after start
    kind: str = ""  # "" any, else one of KINDS
    min_capacity: int = 1


def resources(directory: Directory) -> list[Mailbox]:
    """Every room and piece of equipment, by name, but the hidden ones (Kopano's address
    book hiding, kopanoHidden: they still take requests sent to their address)."""
    return [m for m in directory.users() if m.resource_type in KINDS and not m.hidden]


def fits(resource: Mailbox, wanted: Wanted) -> bool:
    """Of the kind wanted, with at least the capacity wanted."""
    return (wanted.kind in ("", resource.resource_type)
            and resource.resource_capacity >= wanted.min_capacity)


def is_free(session: Session, resource: Mailbox, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether a booking of ``[start, end)`` would meet no conflict (booking's check)."""
    busy = BusyTimes(tuple(cal.busy_intervals(session, resource, start, end, None)))
    return not busy.full_during(start, end, effective_capacity(resource.resource_settings))


def free_resources(session: Session, directory: Directory, wanted: Wanted) -> list[Mailbox]:
    """The resources that fit ``wanted`` and are free for the whole of its period, by name."""
    return [r for r in resources(directory)
            if fits(r, wanted) and is_free(session, r, wanted.start, wanted.end)]
