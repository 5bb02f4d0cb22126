"""Build the iTIP REPLY e-mail a resource sends back to the organizer.

RFC 5546 §3.2.3 (REPLY) carried by iMIP, RFC 6047: one VCALENDAR with
METHOD:REPLY and one VEVENT per answer, each naming exactly one ATTENDEE (the
resource) with its PARTSTAT; a RECURRENCE-ID when one occurrence is answered.
The message is multipart/alternative, a human-readable text/plain part first,
then ``text/calendar; method=REPLY`` (RFC 6047 §2.4).

Everything that came from the request (summary, common names, message id) is
stripped of CR, LF and other control characters before it goes anywhere near
a header, and the stdlib ``email`` package builds the message.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import Address
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr

from icalendar import Calendar, Event, vCalAddress

from mr_engine.itip import EventData, Invitation
from mr_engine.timezones import format_span

__all__ = ["Answer", "PRODID", "build_reply"]

PRODID = "-//mr-engine//mr-engine 0.1//EN"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but TAB and LF
_MAX_HEADER_TEXT = 200


@dataclass(frozen=True)
class Answer:
    """The resource's answer for one VEVENT, or for one occurrence of the master.

    ``start``/``end`` are the answered occurrence's times; when left out they
    come from the event (an override) or from ``recurrence_id`` plus the
    master's duration (an occurrence of the master).
    """

    event: EventData
    partstat: str  # "ACCEPTED" | "DECLINED"
    reason: str
    recurrence_id: datetime | None
    start: datetime | None = None
    end: datetime | None = None


def _clean(text: str, limit: int = _MAX_HEADER_TEXT) -> str:
    """One line of text: no CR/LF or other control characters (header injection)."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def _ical_text(text: str) -> str:
    # RFC 5545 §3.3.11: TEXT has no control characters but TAB; line breaks
    # become "\n" escapes, so a CR or LF cannot start a new property.
    return _TEXT_CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _param(text: str) -> str:
    # RFC 5545 §3.1: a parameter value cannot contain DQUOTE or control characters.
    return _clean(text).replace('"', "'")


def _times(answer: Answer) -> tuple[datetime, datetime]:
    event = answer.event
    if answer.start is not None:
        return answer.start, answer.end or answer.start
    if answer.recurrence_id is not None and event.recurrence_id is None:
        start = answer.recurrence_id.astimezone(event.start.tzinfo)
        return start, start + (event.end - event.start)
    return event.start, event.end


def _ical_time(moment: datetime, event: EventData) -> date | datetime:
    """All-day events answer with DATE values (RFC 5545 §3.8.4.4: RECURRENCE-ID
    has DTSTART's value type); the rest in UTC, so no VTIMEZONE is needed."""
    if event.all_day:
        return moment.astimezone(event.start.tzinfo).date()
    return moment.astimezone(timezone.utc)


def _address(email: str, cn: str) -> vCalAddress:
    value = vCalAddress(f"mailto:{_clean(email)}")
    if _param(cn):
        value.params["CN"] = _param(cn)
    return value


def _vevent(answer: Answer, resource_address: str, resource_name: str, now: datetime) -> Event:
    event = answer.event
    start, end = _times(answer)
    vevent = Event()
    vevent.add("UID", event.uid)
    vevent.add("SEQUENCE", event.sequence)  # RFC 5546 §3.2.3: as received
    vevent.add("DTSTAMP", now.astimezone(timezone.utc))
    vevent.add("ORGANIZER", _address(event.organizer, event.organizer_cn))
    attendee = _address(resource_address, resource_name)
    attendee.params["PARTSTAT"] = answer.partstat
    vevent.add("ATTENDEE", attendee)
    if answer.recurrence_id is not None:
        vevent.add("RECURRENCE-ID", _ical_time(answer.recurrence_id, event))
    vevent.add("DTSTART", _ical_time(start, event))
    vevent.add("DTEND", _ical_time(end, event))
    vevent.add("SUMMARY", _ical_text(event.summary))
    if answer.partstat == "DECLINED" and answer.reason:
        vevent.add("COMMENT", _ical_text(answer.reason))
    return vevent


def _calendar(answers: Sequence[Answer], resource_address: str, resource_name: str,
              now: datetime) -> str:
    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("METHOD", "REPLY")
    for answer in answers:
        calendar.add_component(_vevent(answer, resource_address, resource_name, now))
    return calendar.to_ical().decode("utf-8")


def _when(answer: Answer) -> str:
    start, end = _times(answer)
    event = answer.event
    if event.all_day:
        zone = event.start.tzinfo
        first, last = start.astimezone(zone).date(), (end.astimezone(zone) - timedelta(seconds=1)).date()
        return f"{first} (all day)" if last <= first else f"{first} to {last} (all day)"
    return format_span(start, end, event.start.tzinfo, _clean(event.tzid))  # type: ignore[arg-type]


def _text(answers: Sequence[Answer], resource_name: str, summary: str) -> str:
    verdict = "accepted" if all(a.partstat == "ACCEPTED" for a in answers) else "declined"
    lines = [f'{_clean(resource_name)} has {verdict} your meeting request "{_clean(summary)}".', ""]
    for answer in answers:
        what = "Accepted" if answer.partstat == "ACCEPTED" else "Declined"
        scope = "occurrence" if answer.recurrence_id is not None else "meeting"
        line = f"{what} {scope}: {_when(answer)}"
        if answer.partstat != "ACCEPTED" and answer.reason:
            line += f"\n  Reason: {_clean(answer.reason, 2000)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _mailbox(name: str, address: str) -> Address:
    try:
        return Address(display_name=_clean(name), addr_spec=_clean(address))
    except Exception as exc:  # noqa: BLE001 - IndexError, HeaderParseError, defects...
        raise ValueError(f"unusable e-mail address {address!r}") from exc


def _part(text: str, subtype: str) -> MIMEText:
    charset = Charset("utf-8")
    # 8bit needs 8BITMIME on every relay; quoted-printable survives any of them.
    charset.body_encoding = None if text.isascii() else QP
    return MIMEText(text, subtype, charset)  # type: ignore[arg-type]


def _address_header(name: str, address: str) -> str:
    checked = _mailbox(name, address)  # raises ValueError for an unusable address
    return formataddr((checked.display_name, checked.addr_spec), "utf-8")


def build_reply(inv: Invitation, answers: Sequence[Answer], resource_address: str, resource_name: str,
                request_message_id: str | None, now: datetime, hostname: str) -> bytes:
    """The complete REPLY message (CRLF line ends) to send to the organizer.

    Raises ValueError when there is nothing to answer or no usable organizer.
    """
    if not answers:
        raise ValueError("no answers to send")
    first = answers[0].event
    summary = _clean(first.summary or inv.events[0].summary)
    verb = "Accepted" if all(a.partstat == "ACCEPTED" for a in answers) else "Declined"
    # The compat32 MIME classes, not EmailMessage(policy=SMTP): the header registry and
    # refolding made this a quarter of a meeting request's cost under load. Every value
    # below is _clean()ed, so no CR/LF can reach a header either way.
    msg = MIMEMultipart("alternative")
    msg["From"] = _address_header(resource_name, resource_address)
    msg["To"] = _address_header(first.organizer_cn, first.organizer)
    subject = f"{verb}: {summary}"
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8").encode()
    msg["Date"] = format_datetime(now)
    domain = re.sub(r"[^A-Za-z0-9.\-\[\]:]", "", hostname) or "localhost"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{domain}>"
    if request_message_id and _clean(request_message_id, 998):
        msg["In-Reply-To"] = _clean(request_message_id, 998)
        msg["References"] = _clean(request_message_id, 998)
    msg["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5: no auto-replies to this
    msg["X-Auto-Response-Suppress"] = "All"  # ...and Exchange's dialect of the same
    msg.attach(_part(_text(answers, resource_name, summary), "plain"))
    calendar = _part(_calendar(answers, resource_address, resource_name, now), "calendar")
    calendar.set_param("method", "REPLY")
    msg.attach(calendar)
    return msg.as_bytes(policy=compat32.clone(linesep="\r\n"))
