"""iCalendar text for tests (RFC 5545): UTC times, VEVENT and VCALENDAR builders, and the
invitation in a fixture file."""

from __future__ import annotations

import datetime as dt
import email
from pathlib import Path
from zoneinfo import ZoneInfo

from mr_engine.core.imip import find_calendar
from mr_engine.core.itip import Invitation, parse_invitation

from .times import BERLIN

# The room every VEVENT built here invites.
INVITED_ROOM = "room1@example.org"


def ical_time(value: dt.datetime) -> str:
    """``value`` as an iCalendar UTC DATE-TIME (``20260310T090000Z``)."""
    return value.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def vevent(*lines: str, uid: str = "meeting-1@example.org", start: str = "DTSTART:20260317T100000Z",
           end: str = "DTEND:20260317T110000Z") -> str:
    """A VEVENT organised by alice with the room invited; *lines* add or override."""
    head = [f"UID:{uid}", "DTSTAMP:20260301T120000Z", start, end, "SUMMARY:Planning",
            "ORGANIZER;CN=Alice:mailto:alice@example.org",
            f"ATTENDEE;CN=Room 1;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{INVITED_ROOM}"]
    overridden = {_name(line) for line in lines}
    head = [h for h in head if h and _name(h) not in overridden]
    return "\r\n".join(["BEGIN:VEVENT", *head, *lines, "END:VEVENT"])


def _name(line: str) -> str:
    return line.split(":")[0].split(";")[0].upper()


def vcalendar(*components: str, method: str = "REQUEST") -> bytes:
    """A VCALENDAR around *components* (VEVENT/VTIMEZONE text), CRLF lines."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mr-engine tests//EN"]
    lines += [f"METHOD:{method}"] if method else []
    return ("\r\n".join([*lines, *components, "END:VCALENDAR"]) + "\r\n").encode("utf-8")


def parse_fixture(path: Path, zone: ZoneInfo = BERLIN) -> Invitation:
    """The invitation in a fixture file: the calendar part of an ``.eml``, else the file."""
    if path.suffix == ".eml":
        data = find_calendar(email.message_from_bytes(path.read_bytes()))
        assert data is not None
        return parse_invitation(data, zone)
    return parse_invitation(path.read_bytes(), zone)
