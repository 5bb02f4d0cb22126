"""What a published calendar shows of a booking, by the resource's ``calendar_details``.

The ICS feed and the pages for people publish a resource's bookings to whoever can reach
them, so the resource's setting decides how much (Exchange's AddOrganizerToSubject and
DeleteSubject answer the same privacy concern):

- ``busy``: the time only, titled "Busy";
- ``subject``: also the meeting's summary and the organizer's name;
- ``full``: also the organizer's address and the number of attendees.

Pure: plain values in, plain values out.
"""

from __future__ import annotations

from dataclasses import dataclass

BUSY_TITLE = "Busy"


@dataclass(frozen=True)
class Shown:
    """The parts of a booking a level lets through; withheld ones are empty (None)."""

    title: str
    organizer_name: str = ""
    organizer: str = ""  # the address
    attendees: int | None = None


def shown(level: str, summary: str, organizer_name: str, organizer: str,
          attendees: int) -> Shown:
    """The parts of a booking that ``level`` (busy, subject, full) shows."""
    if level == "busy":
        return Shown(BUSY_TITLE)
    title = summary.strip() or BUSY_TITLE
    if level == "subject":
        return Shown(title, organizer_name)
    return Shown(title, organizer_name, organizer, attendees)
