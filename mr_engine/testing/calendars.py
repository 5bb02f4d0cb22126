"""Published calendars read back for assertions (free/busy and feeds, parsed with
icalendar), and bookings written straight into a resource's calendar through the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from icalendar import Calendar

from mr_engine.core.recurrence import Instance
from mr_engine.store import calendar_store
from mr_engine.store.db import Database
from mr_engine.store.directory import get_user
from mr_engine.store.models import Booking, Occurrence

from .times import NOW

# (start, end, FBTYPE) in UTC, as a VFREEBUSY's FREEBUSY properties give them.
Period = tuple[dt.datetime, dt.datetime, str]


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc)


def freebusy_of(text: str):
    """The one VFREEBUSY of a VCALENDAR."""
    [component] = Calendar.from_ical(text).walk("VFREEBUSY")
    return component


def periods_of(text: str) -> list[Period]:
    """The FREEBUSY periods of a VFREEBUSY answer, in their order."""
    found = freebusy_of(text).get("FREEBUSY", [])
    found = found if isinstance(found, list) else [found]
    return [(_utc(p.dt[0]), _utc(p.dt[1]), str(p.params.get("FBTYPE", "BUSY"))) for p in found]


def events_of(text: str) -> list:
    """The VEVENTs of a feed."""
    return list(Calendar.from_ical(text).walk("VEVENT"))


def book(db: Database, resource: str, uid: str, times: Iterable[tuple[dt.datetime, dt.datetime]],
         status: str = "booked", transparent: bool = False, recurring: bool = False,
         summary: str = "Direct booking") -> None:
    """A booking with the occurrences ``times``, written as the booking service writes
    one (``status`` "tentative": as pending an approval)."""
    with db.write() as session:
        mailbox = get_user(session, resource)
        booking = Booking(resource_id=mailbox.id, uid=uid, organizer="organizer@remote.example",
                          organizer_name="Organizer", attendee_count=2, summary=summary,
                          status=status, created_at=NOW, updated_at=NOW)
        session.add(booking)
        session.flush()
        calendar_store.add_occurrences(session, mailbox, booking, [
            Instance(start if recurring else None, start, end, summary, transparent, False)
            for start, end in times])
        session.query(Occurrence).filter(Occurrence.booking_id == booking.id) \
            .update({"status": status})
