"""The mail between a resource and its delegates: what they are asked, and what they answer.

``request_mail`` asks a delegate to approve a request (subject ``Approval needed: …``): who
asks, when in the resource's time zone, the recurrence, and the three ways to decide (a mail
to the approve or decline address, ``mr-engine approvals``, the approval page when HTTP
runs). It carries no text/calendar part: a calendar client would answer the organizer in
the delegate's name (RFC 5546 §3.2.3 lets any attendee REPLY). ``notice_mail`` tells them of
an automatic booking (``--mr-notify-delegates``), ``withdrawn_mail`` that a request they
were asked about is gone. All are marked ``Auto-Submitted: auto-generated`` (RFC 3834 §5),
so no out-of-office answers them, and are written by ``core.outgoing``.

``comment_of`` reads a delegate's answer: the first line of its text is the comment.

Pure: plain data and ``now`` in, bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from mr_engine.core import approval_tokens as tokens
from mr_engine.core.outgoing import (address_header, date_header, field, message,
                                     new_message_id, one_line, parse_mailbox, text_header,
                                     text_part)
from mr_engine.core.timezones import format_span, zone_label

__all__ = ["Asked", "Person", "comment_of", "notice_mail", "request_mail", "waited",
           "withdrawn_mail"]

# RFC 3834 §5: generated, not a reply; Exchange's dialect of "do not auto-answer".
_GENERATED = ("Auto-Submitted: auto-generated", "X-Auto-Response-Suppress: All")
MAX_COMMENT = 500  # characters of a comment taken from a mail


@dataclass(frozen=True)
class Person:
    """An address with its display name."""

    email: str
    name: str = ""

    def shown(self) -> str:
        name = one_line(self.name)
        return f"{name} <{self.email}>" if name else self.email


@dataclass(frozen=True)
class Asked:
    """A request held for approval, as the delegates are told of it."""

    approval_id: int
    resource: Person
    organizer: Person
    summary: str
    start: datetime  # the first occurrence
    end: datetime
    zone: tzinfo  # the resource's
    occurrences: int  # held for it
    recurrence: tuple[str, ...] = ()  # the RRULEs as sent; none for a single meeting
    declined: int = 0  # occurrences of the series declined (conflicts)
    expires_at: datetime | None = None
    token: str = ""
    page_url: str = ""  # the approval page; "" when HTTP does not run


def waited(hours: int) -> str:
    """``7 days`` for 168 hours, ``36 hours`` for 36: how long a request waits."""
    if hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _headers(asked: Asked, to: Person, subject: str, now: datetime, hostname: str) -> list[str]:
    return [address_header("From", asked.resource.name, parse_mailbox(asked.resource.email)),
            address_header("To", to.name, parse_mailbox(to.email)),
            text_header("Subject", f"{subject}: {one_line(asked.summary)}"),
            date_header(now), field("Message-ID", new_message_id(hostname)), *_GENERATED]


def _meeting_lines(asked: Asked) -> list[str]:
    lines = [f"  Meeting:   {one_line(asked.summary) or '(no title)'}",
             f"  Organizer: {asked.organizer.shown()}",
             f"  When:      {format_span(asked.start, asked.end, asked.zone)}"]
    if asked.recurrence:
        rules = "; ".join(one_line(rule) for rule in asked.recurrence)
        lines.append(f"  Repeats:   {rules} ({asked.occurrences} occurrence(s) held)")
    if asked.declined:
        lines.append(f"  Declined:  {asked.declined} occurrence(s) that conflict")
    return lines


def _how_to_decide(asked: Asked) -> list[str]:
    email = asked.resource.email
    lines = ["To approve, send any mail to",
             f"  {tokens.address(email, tokens.APPROVE, asked.token)}",
             "To decline, send any mail to",
             f"  {tokens.address(email, tokens.DECLINE, asked.token)}",
             "The first line of its text is passed on to the organizer as the comment.", "",
             "Or, on the server:",
             f"  mr-engine approvals accept {asked.approval_id} [--comment TEXT]",
             f"  mr-engine approvals decline {asked.approval_id} [--comment TEXT]"]
    if asked.page_url:
        lines += ["", "Or open the approval page:", f"  {asked.page_url}"]
    return lines


def _held(asked: Asked) -> str:
    if asked.expires_at is None:
        return "The time is held tentatively until a delegate decides."
    local = asked.expires_at.astimezone(asked.zone)
    return (f"The time is held tentatively until a delegate decides; without a decision "
            f"by {local:%Y-%m-%d %H:%M} ({zone_label(asked.zone)}) it is declined.")


def request_mail(asked: Asked, to: Person, now: datetime, hostname: str) -> bytes:
    """``Approval needed: <summary>`` to one delegate."""
    lines = [f"{asked.organizer.shown()} asks to book {one_line(asked.resource.name)}.", "",
             *_meeting_lines(asked), "", _held(asked), "", *_how_to_decide(asked)]
    headers = _headers(asked, to, "Approval needed", now, hostname)
    return message(headers, [text_part("\n".join(lines))])


def notice_mail(asked: Asked, to: Person, now: datetime, hostname: str) -> bytes:
    """``Booked: <summary>``: an automatic booking, for the delegates' information."""
    lines = [f"{one_line(asked.resource.name)} has accepted a meeting request "
             "automatically.", "", *_meeting_lines(asked)]
    return message(_headers(asked, to, "Booked", now, hostname),
                   [text_part("\n".join(lines))])


def withdrawn_mail(asked: Asked, to: Person, why: str, now: datetime, hostname: str) -> bytes:
    """``Approval withdrawn: <summary>``: nothing is left to decide (``why``)."""
    lines = [f"The request to book {one_line(asked.resource.name)} that you were asked to "
             f"approve needs no decision any more: {one_line(why, 500)}.", "",
             *_meeting_lines(asked), "", "Its approve and decline addresses no longer work."]
    return message(_headers(asked, to, "Approval withdrawn", now, hostname),
                   [text_part("\n".join(lines))])


def comment_of(text: str) -> str:
    """A delegate's comment: the first line of the mail's text that is neither blank nor
    quoted (``>``, a reply's citation); "" when there is none."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            return "" if stripped.startswith(">") else one_line(stripped, MAX_COMMENT)
    return ""


def named(people: Sequence[Person]) -> str:
    """``alice@example.com or bob@example.com``: the delegates, as a reply names them."""
    return " or ".join(p.email for p in people)
