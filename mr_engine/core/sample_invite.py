"""A meeting request as Outlook sends one, for trying the engine out (``mr-engine
sample-invite``): an RFC 5322 message, multipart/alternative with text, HTML and a
base64 text/calendar part of METHOD:REQUEST (RFC 6047 §2.4, RFC 5546 §3.2.2).

Outlook's dialect, as in fixtures/mozilla/outlook-test-invite.eml: a Windows zone name as
TZID with its VTIMEZONE, an Exchange-style UID, the X-MICROSOFT-CDO-* properties, the
Thread-Topic and Content-Language headers, a 15-minute reminder. The room is invited as
Outlook invites a resource: CUTYPE=RESOURCE, ROLE=NON-PARTICIPANT. Pure: the moment, the
zone and the random token come in.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from icalendar import Timezone
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from .ical_text import address_line, escape_text, param_value, stream, utc_text

PRODID = "Microsoft Exchange Server 2010"
# An Outlook Global Object ID ([MS-OXOCAL] 2.2.1.27) in hex: its fixed class id, then an
# instance date (none: the whole meeting), its creation time (FILETIME, little-endian),
# eight reserved bytes, and the size of the random part that follows (16).
_OUTLOOK_UID_HEAD = "040000008200E00074C5B7101A82E008" + "00000000"
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)
_OLSON_TO_WINDOWS = {olson: windows for windows, olson in WINDOWS_TO_OLSON.items()}
WORK_DAYS = range(0, 5)  # Monday to Friday
DEFAULT_HOUR = 10


@dataclass(frozen=True)
class SampleRequest:
    room: str  # the resource's address
    room_name: str
    organizer: str
    start: dt.datetime  # aware, in the zone the invitation names
    duration: dt.timedelta
    now: dt.datetime
    token: bytes  # 16 random bytes: the UID's and the Message-ID's own part
    organizer_name: str = ""
    hostname: str = "localhost"
    rrule: str | None = None
    summary: str = "Sample meeting"


def coming_start(now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """10:00 on the next working day after ``now``'s day in ``zone``: always in the coming
    week and always ahead, whatever time of day it is run."""
    day = now.astimezone(zone).date() + dt.timedelta(days=1)
    while day.weekday() not in WORK_DAYS:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(DEFAULT_HOUR), tzinfo=zone)


def tzid_of(zone: ZoneInfo) -> str:
    """Outlook names zones by their Windows names; one without such a name keeps its own."""
    return _OLSON_TO_WINDOWS.get(zone.key, zone.key)


def _vtimezone(zone: ZoneInfo, start: dt.datetime) -> list[str]:
    """The zone's rules around ``start`` (RFC 5545 §3.6.5), named as Outlook names it."""
    first = start.date() - dt.timedelta(days=366)
    last = start.date() + dt.timedelta(days=2 * 366)
    component = Timezone.from_tzinfo(zone, tzid=tzid_of(zone), first_date=first, last_date=last)
    # Without icalendar's COMMENT on the span it covers: Outlook writes none.
    return [line for line in component.to_ical().decode().splitlines()
            if line and not line.startswith("COMMENT:")]


def _local(moment: dt.datetime, tzid: str) -> str:
    return f";TZID={param_value(tzid)}:{moment.strftime('%Y%m%dT%H%M%S')}"


def outlook_uid(req: SampleRequest) -> str:
    ticks = (req.now - _FILETIME_EPOCH) // dt.timedelta(microseconds=1) * 10  # 100 ns
    created = ticks.to_bytes(8, "little").hex().upper()
    return f"{_OUTLOOK_UID_HEAD}{created}{'0' * 16}10000000{req.token.hex().upper()}"


def _event(req: SampleRequest, tzid: str) -> list[str]:
    end = req.start + req.duration
    recurring = req.rrule is not None
    return [
        "BEGIN:VEVENT",
        address_line("ORGANIZER", req.organizer, req.organizer_name),
        f"ATTENDEE;CN={param_value(req.room_name)};CUTYPE=RESOURCE;ROLE=NON-PARTICIPANT;"
        f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{req.room}",
        "DESCRIPTION;LANGUAGE=en-US:\\n", *([f"RRULE:{req.rrule}"] if recurring else []),
        f"UID:{outlook_uid(req)}", f"SUMMARY;LANGUAGE=en-US:{escape_text(req.summary)}",
        f"DTSTART{_local(req.start, tzid)}", f"DTEND{_local(end, tzid)}",
        "CLASS:PUBLIC", "PRIORITY:5", f"DTSTAMP:{utc_text(req.now)}", "TRANSP:OPAQUE",
        "STATUS:CONFIRMED", "SEQUENCE:0", f"LOCATION;LANGUAGE=en-US:{escape_text(req.room_name)}",
        "X-MICROSOFT-CDO-APPT-SEQUENCE:0", "X-MICROSOFT-CDO-OWNERAPPTID:2118654545",
        "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", "X-MICROSOFT-CDO-INTENDEDSTATUS:BUSY",
        "X-MICROSOFT-CDO-ALLDAYEVENT:FALSE", "X-MICROSOFT-CDO-IMPORTANCE:1",
        f"X-MICROSOFT-CDO-INSTTYPE:{1 if recurring else 0}",  # 1: the master of a series
        "X-MICROSOFT-DONOTFORWARDMEETING:FALSE", "X-MICROSOFT-DISALLOW-COUNTER:FALSE",
        "X-MICROSOFT-LOCATIONS:[]",
        "BEGIN:VALARM", "DESCRIPTION:REMINDER", "TRIGGER;RELATED=START:-PT15M",
        "ACTION:DISPLAY", "END:VALARM", "END:VEVENT"]


def calendar(req: SampleRequest) -> str:
    zone = req.start.tzinfo
    if not isinstance(zone, ZoneInfo):
        raise ValueError("the start needs an IANA zone (zoneinfo.ZoneInfo)")
    tzid = tzid_of(zone)
    return stream(["BEGIN:VCALENDAR", "METHOD:REQUEST", f"PRODID:{PRODID}", "VERSION:2.0",
                   *_vtimezone(zone, req.start), *_event(req, tzid), "END:VCALENDAR"])


def _when(req: SampleRequest) -> str:
    start = req.start
    text = (f"{start:%A, %d %B %Y %H:%M}-{start + req.duration:%H:%M} "
            f"({tzid_of(start.tzinfo)})")  # type: ignore[arg-type]
    return text + (f", repeating: {req.rrule}" if req.rrule else "")


def outlook_request(req: SampleRequest) -> bytes:
    """The whole message, CRLF line ends, as an MTA hands it on."""
    msg = EmailMessage()
    msg["From"] = (f"{req.organizer_name} <{req.organizer}>" if req.organizer_name
                   else req.organizer)
    msg["To"] = f"{req.room_name} <{req.room}>"
    msg["Subject"] = req.summary
    msg["Thread-Topic"] = req.summary
    msg["Date"] = format_datetime(req.now.astimezone(dt.timezone.utc))
    msg["Message-ID"] = f"<{req.token.hex().upper()}@{req.hostname}>"
    msg["Accept-Language"] = "en-US"
    msg["X-MS-Has-Attach"] = ""
    msg["X-MS-TNEF-Correlator"] = ""
    when = _when(req)
    msg.set_content(f"When: {when}\nWhere: {req.room_name}\n", cte="quoted-printable")
    msg.add_alternative(f"<html><body><p>When: {html.escape(when)}<br>Where: "
                        f"{html.escape(req.room_name)}</p></body></html>\n", subtype="html",
                        cte="quoted-printable")
    # As bytes: a str would have its CRLFs made LFs, and RFC 5545 §3.1 wants CRLF.
    msg.add_alternative(calendar(req).encode(), maintype="text", subtype="calendar",
                        params={"charset": "utf-8", "method": "REQUEST"}, cte="base64")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # the email package adds it to parts; Outlook does not
    # Only now: making the message multipart moves the Content-* headers into its first part.
    msg["Content-Language"] = "en-US"
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
