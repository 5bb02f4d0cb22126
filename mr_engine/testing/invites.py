"""iMIP meeting requests (RFC 6047) for tests, and the VEVENTs of a queued reply (the
dialect-specific real ones are in the checkout's fixtures/)."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

from icalendar import Calendar

from .ical import ical_time


def invite(uid: str, start: dt.datetime, end: dt.datetime, attendee: str,
           organizer: str = "organizer@remote.example", method: str = "REQUEST",
           sequence: int = 0, dtstamp: dt.datetime | None = None, rrule: str | None = None,
           summary: str = "Planning", recurrence_id: dt.datetime | None = None,
           extra: str = "", message_id: str | None = None, rsvp: str = "TRUE") -> bytes:
    """A minimal, valid iMIP message as a plain client sends it."""
    lines = [
        "BEGIN:VCALENDAR", "PRODID:-//tests//EN", "VERSION:2.0", f"METHOD:{method}",
        "BEGIN:VEVENT", f"UID:{uid}", f"SEQUENCE:{sequence}",
        f"DTSTAMP:{ical_time(dtstamp or dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))}",
        f"DTSTART:{ical_time(start)}", f"DTEND:{ical_time(end)}", f"SUMMARY:{summary}",
        f"ORGANIZER;CN=Organizer:mailto:{organizer}",
        f"ATTENDEE;CN=Resource;CUTYPE=RESOURCE;PARTSTAT=NEEDS-ACTION;RSVP={rsvp}:mailto:{attendee}",
    ]
    if rrule:
        lines.append(f"RRULE:{rrule}")
    if recurrence_id:
        lines.append(f"RECURRENCE-ID:{ical_time(recurrence_id)}")
    if extra:
        lines.extend(extra.splitlines())
    lines += ["END:VEVENT", "END:VCALENDAR"]
    msg = EmailMessage()
    msg["From"] = f"Organizer <{organizer}>"
    msg["To"] = attendee
    msg["Subject"] = f"Invitation: {summary}"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("You are invited.")
    msg.add_alternative("\r\n".join(lines) + "\r\n", subtype="calendar",
                        params={"method": method})
    return msg.as_bytes()


def reply_vevents(content: bytes) -> list:
    """The VEVENTs of the text/calendar part of a queued reply."""
    import email
    message = email.message_from_bytes(content)
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            cal = Calendar.from_ical(part.get_payload(decode=True))
            return list(cal.walk("VEVENT"))
    raise AssertionError("no text/calendar part in the reply")
