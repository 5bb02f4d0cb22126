"""The benchmark's events as iCalendar text: one VEVENT, kept by the engine and by Radicale.

A pre-loaded booking keeps a VCALENDAR as the booking path does (``core.booked_calendar``:
METHOD:REQUEST, the master VEVENT); Radicale holds the same VEVENT as a calendar object
resource, which carries no METHOD (RFC 4791 §4.1). Times are UTC, so no VTIMEZONE.
"""

from __future__ import annotations

import datetime as dt

from .messages import ORGANIZER

SUMMARY = "Pre-loaded meeting"
_FORMAT = "%Y%m%dT%H%M%SZ"


def stamp(moment: dt.datetime) -> str:
    """A UTC date-time in iCalendar form (RFC 5545 §3.3.5, form #2)."""
    return moment.astimezone(dt.timezone.utc).strftime(_FORMAT)


def vevent(uid: str, start: dt.datetime, end: dt.datetime, rule: str,
           now: dt.datetime) -> str:
    """The master VEVENT; ``rule`` is an RRULE value, or "" for a single meeting."""
    lines = ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{stamp(now)}", f"DTSTART:{stamp(start)}",
             f"DTEND:{stamp(end)}"]
    lines += [f"RRULE:{rule}"] if rule else []
    lines += [f"ORGANIZER:mailto:{ORGANIZER}", f"SUMMARY:{SUMMARY}", "END:VEVENT"]
    return "".join(line + "\r\n" for line in lines)


def _calendar(head: list[str], event: str) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mr-engine//benchmark//EN", *head]
    return "".join(line + "\r\n" for line in lines) + event + "END:VCALENDAR\r\n"


def booked_calendar(event: str) -> str:
    """What ``bookings.calendar`` holds for a meeting booked from a REQUEST of ``event``."""
    return _calendar(["METHOD:REQUEST"], event)


def calendar_object(event: str) -> str:
    """A CalDAV calendar object resource: one VEVENT, no METHOD (RFC 4791 §4.1)."""
    return _calendar([], event)
