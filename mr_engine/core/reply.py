"""Build the iTIP REPLY e-mail a resource sends back to the organizer.

RFC 5546 §3.2.3 (REPLY) carried by iMIP, RFC 6047: one VCALENDAR with
METHOD:REPLY and one VEVENT per answer, each naming exactly one ATTENDEE (the
resource) with its PARTSTAT; a RECURRENCE-ID when one occurrence is answered.
The message is multipart/alternative, a human-readable text/plain part first,
then ``text/calendar; method=REPLY`` (RFC 6047 §2.4).

Everything that came from the request (summary, common names, message id) is
stripped of CR, LF and other control characters before it goes anywhere near
a header; ``mr_engine.outgoing`` writes the message, valid on any relay (lines
folded, non-ASCII encoded, see there), and the text part is wrapped at 78.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mr_engine.core.itip import EventData, Invitation
from mr_engine.core.outgoing import (AUTO_REPLY_HEADERS, LINE, AddressError, ParsedAddress, address_header,
                                calendar_part, date_header, field, message, message_ids,
                                new_message_id, one_line, parse_mailbox, text_header, text_part,
                                thread_headers)
from mr_engine.core.timezones import format_span

__all__ = ["Answer", "COUNTER_SUBJECT", "Delegation", "PRODID", "build_counter", "build_reply",
           "verb"]

PRODID = "-//mr-engine//mr-engine 0.1//EN"
# All but TAB and LF; and lone surrogates, which cannot be encoded as UTF-8.
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_MAX_HEADER_TEXT = 200
_MAX_REASON = 2000  # of the text part; the COMMENT keeps the whole reason


@dataclass(frozen=True)
class Answer:
    """The resource's answer for one VEVENT, or for one occurrence of the master.

    ``start``/``end`` are the answered occurrence's times; when left out they
    come from the event (an override) or from ``recurrence_id`` plus the
    master's duration (an occurrence of the master).
    """

    event: EventData
    partstat: str  # "ACCEPTED" | "TENTATIVE" (held for approval) | "DECLINED"
    reason: str  # why declined; what a tentative acceptance waits for; a delegate's comment
    recurrence_id: datetime | None
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class Delegation:
    """RFC 5546 §3.2.2.3: the pool's ATTENDEE answers DELEGATED with ``DELEGATED-TO`` the
    member; the member's answers with ``DELEGATED-FROM`` the pool (``param``, ``address``)."""

    param: str  # "DELEGATED-TO" | "DELEGATED-FROM"
    address: str


def _clean(text: str, limit: int = _MAX_HEADER_TEXT) -> str:
    return one_line(text, limit)


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


def _text_value(text: str) -> str:
    """A TEXT value escaped as icalendar's ``vText`` writes it (RFC 5545 §3.3.11; a literal
    ``\\N`` is read as the line break it means), so replies are unchanged byte for byte."""
    return (text.replace("\\N", "\n").replace("\\", "\\\\").replace(";", "\\;")
            .replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")
            .replace("\r", "\\n"))


_QUOTED_CN = re.compile("[,;:\u2019 ']")  # what makes a CN quoted: RFC 5545 §3.2, as icalendar


def _cn_param(cn: str) -> str:
    """``;CN=…`` for a common name (none when it is empty), RFC 6868 ``^`` escaped."""
    value = _param(cn).replace("^", "^^")
    if not value:
        return ""
    return f';CN="{value}"' if _QUOTED_CN.search(value) else f";CN={value}"


def _address(name: str, email: str, cn: str, params: str = "") -> str:
    """A CAL-ADDRESS content line; ``params`` are the ones after CN (in name order)."""
    return f"{name}{_cn_param(cn)}{params}:mailto:{_clean(email)}"


def _attendee(answer: Answer, resource_address: str, resource_name: str,
              delegation: Delegation | None) -> str:
    # Parameters in name order, as icalendar sorts them: CN, DELEGATED-*, PARTSTAT.
    delegated = "" if delegation is None else \
        f';{delegation.param}="mailto:{_param(delegation.address).replace("^", "^^")}"'
    return _address("ATTENDEE", resource_address, resource_name,
                    f"{delegated};PARTSTAT={answer.partstat}")


def _time_line(name: str, moment: datetime, event: EventData) -> str:
    """A DATE (all-day events, RFC 5545 §3.8.4.4) or a UTC DATE-TIME, so no VTIMEZONE."""
    if event.all_day:
        day = moment.astimezone(event.start.tzinfo).date()
        return f"{name};VALUE=DATE:{day.year:04d}{day.month:02d}{day.day:02d}"
    return f"{name}:{_utc(moment)}"


def _utc(moment: datetime) -> str:
    t = moment.astimezone(timezone.utc)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}Z"


def _vevent(answer: Answer, resource_address: str, resource_name: str, now: datetime,
            delegation: Delegation | None = None) -> list[str]:
    """One VEVENT's content lines, in the order icalendar wrote them (its canonical order,
    then the rest by name), which the tests compare against."""
    event = answer.event
    start, end = _times(answer)
    lines = ["BEGIN:VEVENT", f"SUMMARY:{_text_value(_ical_text(event.summary))}",
             _time_line("DTSTART", start, event), _time_line("DTEND", end, event),
             f"DTSTAMP:{_utc(now)}", f"UID:{_text_value(event.uid)}"]
    if answer.recurrence_id is not None:
        lines.append(_time_line("RECURRENCE-ID", answer.recurrence_id, event))
    lines += [f"SEQUENCE:{int(event.sequence)}",  # RFC 5546 §3.2.3: as received
              _attendee(answer, resource_address, resource_name, delegation)]
    if answer.reason:  # RFC 5546 §3.2.3: COMMENT may say why, whatever the PARTSTAT
        lines.append(f"COMMENT:{_text_value(_ical_text(answer.reason))}")
    return lines + [_address("ORGANIZER", event.organizer, event.organizer_cn), "END:VEVENT"]


def _calendar(answers: Sequence[Answer], resource_address: str, resource_name: str,
              now: datetime, delegation: Delegation | None = None,
              method: str = "REPLY") -> list[str]:
    """The REPLY's (or COUNTER's) content lines, unfolded: outgoing.calendar_part folds
    them by octets. Written directly: a REPLY is a few fixed properties, and icalendar's
    generic components cost most of a reply's time."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{_text_value(PRODID)}",
             f"METHOD:{method}"]
    for answer in answers:
        lines += _vevent(answer, resource_address, resource_name, now, delegation)
    return lines + ["END:VCALENDAR"]


def _when(answer: Answer) -> str:
    start, end = _times(answer)
    event = answer.event
    if event.all_day:
        zone = event.start.tzinfo
        first, last = start.astimezone(zone).date(), (end.astimezone(zone) - timedelta(seconds=1)).date()
        return f"{first} (all day)" if last <= first else f"{first} to {last} (all day)"
    return format_span(start, end, event.start.tzinfo, _clean(event.tzid))  # type: ignore[arg-type]


def _wrapped(text: str, indent: str = "") -> list[str]:
    """Lines of at most 78 characters (RFC 5322 §2.1.1) but for a single longer word, which
    the part's quoted-printable then carries unchanged."""
    if len(text) <= LINE:
        return [text]  # nearly every line: textwrap costs more than the rest of the text
    return textwrap.wrap(text, LINE, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def _reason(text: str) -> str:
    reason = _clean(text, _MAX_REASON + 1)
    return reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON] + " …"


# Per PARTSTAT: how an answer's line begins, and the label of its reason.
_WORDS = {"ACCEPTED": ("Accepted", "Comment: "), "TENTATIVE": ("Tentatively accepted", ""),
          "DECLINED": ("Declined", "Reason: "), "DELEGATED": ("Delegated", "")}
_VERDICTS = {"Accepted": "accepted", "Tentative": "tentatively accepted",
             "Declined": "declined", "Delegated": "delegated"}


def verb(answers: Sequence[Answer]) -> str:
    """The subject's verb: Accepted, or Tentative (held for approval), else Declined."""
    kinds = {a.partstat for a in answers}
    if kinds == {"ACCEPTED"}:
        return "Accepted"
    if kinds == {"DELEGATED"}:
        return "Delegated"
    return "Tentative" if kinds == {"TENTATIVE"} else "Declined"


def _answer_lines(answer: Answer) -> list[str]:
    what, label = _WORDS[answer.partstat]
    scope = "occurrence" if answer.recurrence_id is not None else "meeting"
    lines = _wrapped(f"{what} {scope}: {_when(answer)}", "  ")
    if answer.reason:
        lines += _wrapped(f"  {label}{_reason(answer.reason)}", "    ")
    return lines


def _text(answers: Sequence[Answer], resource_name: str, summary: str,
          note: str = "") -> str:
    verdict = _VERDICTS[verb(answers)]
    lines = _wrapped(f'{_clean(resource_name)} has {verdict} your meeting request "{summary}".')
    lines.append("")
    for answer in answers:
        lines += _answer_lines(answer)
    return "\n".join(lines + _note_lines(note)) + "\n"


def _note_lines(note: str) -> list[str]:
    """The resource's own text (``--mr-response-text``) after a blank line, wrapped."""
    if not note.strip():
        return []
    lines = [""]
    for line in note.splitlines():
        lines += _wrapped(_clean(line, _MAX_REASON)) if line.strip() else [""]
    return lines


def _mailbox(address: str, role: str) -> ParsedAddress:
    """The parsed address; a ValueError naming the role (organizer, resource) if unusable."""
    try:
        return parse_mailbox(address)
    except AddressError as exc:
        raise AddressError(f"{role}: {exc}") from None


def _headers(event: EventData, resource_address: str, resource_name: str, subject: str,
             request_message_id: str | None, now: datetime, hostname: str) -> list[str]:
    """From the resource to the organizer, in the request's thread, marked auto-replied."""
    parent = next(iter(message_ids(request_message_id or "")), None)
    return [
        address_header("From", resource_name, _mailbox(resource_address, "resource")),
        address_header("To", event.organizer_cn, _mailbox(event.organizer, "organizer")),
        text_header("Subject", subject),
        date_header(now),
        field("Message-ID", new_message_id(hostname)),
        *thread_headers(parent, [parent] if parent else []),
        *AUTO_REPLY_HEADERS]


def build_reply(inv: Invitation, answers: Sequence[Answer], resource_address: str, resource_name: str,
                request_message_id: str | None, now: datetime, hostname: str,
                note: str = "", delegation: Delegation | None = None) -> bytes:
    """The complete REPLY message (CRLF line ends) to send to the organizer; ``note``: text
    the resource adds to every reply (Exchange's AdditionalResponse), after the answers;
    ``delegation``: a pool's delegation, on the ATTENDEE of every answer.

    Raises ValueError when there is nothing to answer, and its subclass
    ``outgoing.AddressError`` (message "organizer: unusable e-mail address '…': why") when
    the organizer's or the resource's address cannot be written into a header.
    """
    if not answers:
        raise ValueError("no answers to send")
    first = answers[0].event
    summary = _clean(first.summary or inv.events[0].summary)
    headers = _headers(first, resource_address, resource_name, f"{verb(answers)}: {summary}",
                       request_message_id, now, hostname)
    calendar = _calendar(answers, resource_address, resource_name, now, delegation)
    return message(headers, [text_part(_text(answers, resource_name, summary, note)),
                             calendar_part(calendar, "REPLY")])


COUNTER_SUBJECT = "New time proposed"


def build_counter(event: EventData, proposal: tuple[datetime, datetime],
                  resource_address: str, resource_name: str, request_message_id: str | None,
                  now: datetime, hostname: str, comment: str = "") -> bytes:
    """The iTIP COUNTER (RFC 5546 §3.2.7) proposing ``proposal`` for a declined single
    meeting, as Outlook's "decline and propose a new time" sends it: the REPLY's VEVENT
    (UID and SEQUENCE as received, ORGANIZER, the resource as its one ATTENDEE,
    DTSTAMP, SUMMARY, COMMENT) with the proposed DTSTART and DTEND, under
    METHOD:COUNTER. ``AddressError`` for an unusable address, as ``build_reply``."""
    start, end = proposal
    answer = Answer(event, "DECLINED", comment, None, start, end)
    summary = _clean(event.summary)
    headers = _headers(event, resource_address, resource_name,
                       f"{COUNTER_SUBJECT}: {summary}", request_message_id, now, hostname)
    calendar = _calendar([answer], resource_address, resource_name, now, method="COUNTER")
    words = _wrapped(f"{_clean(resource_name)} proposes a new time for your meeting request "
                     f'"{summary}": {_when(answer)}.')
    return message(headers, [text_part("\n".join(words) + "\n"),
                             calendar_part(calendar, "COUNTER")])
