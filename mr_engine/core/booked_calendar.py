"""The iCalendar text a booking keeps, so that its series can be expanded again later.

A booking stores one VCALENDAR: the request's VTIMEZONEs, its master and its overrides. An
instance-only REQUEST replaces the override with the same RECURRENCE-ID; a cancelled
occurrence stays as an override with STATUS:CANCELLED (RFC 5546 §3.2.5; with its
RANGE=THISANDFUTURE, which cancels the later instances too, RFC 5545 §3.8.4.4). Expanding
the stored calendar when the series' horizon moves on (``mr_engine.horizon``) then yields
exactly what is booked, never an occurrence that was moved or cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from icalendar import Event

from mr_engine.core.itip import EventData, Invitation, parse_invitation

__all__ = ["calendar_of", "read", "with_overrides"]

_PRODID = "-//mr-engine//booked calendar//EN"


def _wrap(timezones: str, vevents: Sequence[str]) -> str:
    head = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{_PRODID}\r\nMETHOD:REQUEST\r\n"
    return head + timezones + "".join(vevents) + "END:VCALENDAR\r\n"


def calendar_of(inv: Invitation) -> str:
    """The VCALENDAR to keep for a meeting booked from *inv* (all of its VEVENTs)."""
    return _wrap(inv.timezones, [e.ical for e in inv.events])


def read(calendar: str, zone: tzinfo) -> Invitation:
    """The kept calendar as an Invitation again (floating times in *zone*)."""
    return parse_invitation(calendar.encode("utf-8"), zone)


def _cancelled(event: EventData) -> str:
    """The override that keeps an occurrence cancelled; a CANCEL may lack DTSTART."""
    component = Event.from_ical(event.ical)
    component.pop("STATUS", None)
    component.add("STATUS", "CANCELLED")
    if component.get("DTSTART") is None and component.get("RECURRENCE-ID") is not None:
        component["DTSTART"] = component["RECURRENCE-ID"]
    return component.to_ical().decode("utf-8")


def with_overrides(calendar: str, events: Sequence[EventData], zone: tzinfo,
                   cancel: bool = False) -> str:
    """*calendar* with each of *events* (overrides) in place of the override it replaces."""
    kept = read(calendar, zone)
    replaced = {e.recurrence_id for e in events}
    old = [e.ical for e in kept.events if e.recurrence_id not in replaced]
    new = [_cancelled(e) if cancel else e.ical for e in events]
    return _wrap(kept.timezones, old + new)
