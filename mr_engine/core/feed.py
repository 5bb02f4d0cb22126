"""A resource's calendar as an ICS feed to subscribe to (RFC 5545, METHOD:PUBLISH).

One VEVENT per booked occurrence, identified as the booking is (its UID, plus the
occurrence's RECURRENCE-ID when it has one), so a client that refreshes the feed updates
its copy instead of adding one. What a VEVENT tells of the meeting is the resource's
``calendar_details`` level (``calendar_view.shown``). Pure: plain values in, lines out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .calendar_view import Shown, shown
from .ical_text import address_line, escape_text, utc_text, vcalendar

# RFC 5545 §3.8.1.11: a booking pending approval is TENTATIVE, any other CONFIRMED.
_STATUS = {"tentative": "TENTATIVE"}
# How often a subscribed client should fetch the feed again (RFC 7986 §5.7).
REFRESH = "PT15M"


class BookedOccurrence(Protocol):
    """An occurrence as the calendar store lists it (``calendar_store.AgendaEntry``)."""

    @property
    def uid(self) -> str: ...
    @property
    def recurrence_id(self) -> dt.datetime | None: ...
    @property
    def summary(self) -> str: ...
    @property
    def start(self) -> dt.datetime: ...
    @property
    def end(self) -> dt.datetime: ...
    @property
    def organizer(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def organizer_name(self) -> str: ...
    @property
    def attendee_count(self) -> int: ...
    @property
    def transparent(self) -> bool: ...


@dataclass(frozen=True)
class Published:
    """An occurrence as the public sees it: its times and state, and what ``level`` shows."""

    uid: str
    recurrence_id: dt.datetime | None
    start: dt.datetime
    end: dt.datetime
    status: str  # booked | tentative
    transparent: bool
    shown: Shown


def published(level: str, entry: BookedOccurrence) -> Published:
    """``entry`` with only what the ``calendar_details`` level lets through."""
    return Published(entry.uid, entry.recurrence_id, entry.start, entry.end, entry.status,
                     entry.transparent,
                     shown(level, entry.summary, entry.organizer_name, entry.organizer,
                           entry.attendee_count))


def description(seen: Shown) -> str:
    """The organizer and the attendee count, where the level shows them; else ""."""
    organizer = seen.organizer_name
    if seen.organizer:
        organizer = f"{organizer} <{seen.organizer}>" if organizer else seen.organizer
    parts = [f"Organizer: {organizer}"] if organizer else []
    if seen.attendees is not None:
        parts.append(f"Attendees: {seen.attendees}")
    return "\n".join(parts)


def vevent(item: Published, stamp: dt.datetime) -> list[str]:
    """One VEVENT: UID (+ RECURRENCE-ID), times in UTC, TRANSP, STATUS, what is shown."""
    lines = ["BEGIN:VEVENT", f"UID:{escape_text(item.uid)}"]
    if item.recurrence_id is not None:
        lines.append(f"RECURRENCE-ID:{utc_text(item.recurrence_id)}")
    lines += [f"DTSTAMP:{utc_text(stamp)}", f"DTSTART:{utc_text(item.start)}",
              f"DTEND:{utc_text(item.end)}", f"SUMMARY:{escape_text(item.shown.title)}",
              f"TRANSP:{'TRANSPARENT' if item.transparent else 'OPAQUE'}",
              f"STATUS:{_STATUS.get(item.status, 'CONFIRMED')}"]
    if item.shown.organizer:
        lines.append(address_line("ORGANIZER", item.shown.organizer, item.shown.organizer_name))
    if description(item.shown):
        lines.append(f"DESCRIPTION:{escape_text(description(item.shown))}")
    return lines + ["END:VEVENT"]


def feed(title: str, items: Iterable[Published], stamp: dt.datetime) -> list[str]:
    """The VCALENDAR of a resource's feed, named ``title`` (RFC 7986 NAME, and the
    X-WR-CALNAME that Apple Calendar, Thunderbird and Google read), as content lines."""
    name = escape_text(title)
    head = [f"NAME:{name}", f"X-WR-CALNAME:{name}",
            f"REFRESH-INTERVAL;VALUE=DURATION:{REFRESH}", f"X-PUBLISHED-TTL:{REFRESH}"]
    return vcalendar([line for item in items for line in vevent(item, stamp)], head)
