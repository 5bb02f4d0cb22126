"""What the pages for people need of a resource at a moment, read from the store.

A resource's bookings from the start of its local day of ``at`` to the end of the next day
(the door lists what comes next, tomorrow's first meeting too), each cut to what the
resource's ``calendar_details`` allows (``core.calendar_view``), and its state, timeline and
next bookings (``core.room_state``), all in the resource's time zone (the one booking reads
its floating times in: ``horizon.zone_of``). Everything returned is plain data, usable
once the read session is closed.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core import room_state
from mr_engine.core.calendar_view import shown
from mr_engine.core.policy import effective_capacity
from mr_engine.core.room_state import Block, Day, Entry, State
from mr_engine.services import horizon
from mr_engine.store import calendar_store as cal
from mr_engine.store.calendar_store import AgendaEntry
from mr_engine.store.models import Mailbox

LOOKAHEAD = dt.timedelta(days=1)  # read past the day: the door's next bookings
NEXT_SHOWN = 6  # bookings the door lists


@dataclass(frozen=True)
class ResourcePage:
    """One resource as a page shows it at a moment."""

    name: str
    email: str
    fullname: str
    kind: str  # room | equipment
    capacity: int  # as configured (resource_capacity)
    details: str  # the level shown: busy | subject | full
    zone: zoneinfo.ZoneInfo
    at: dt.datetime  # the moment shown
    day: Day  # its local day
    state: State
    today: tuple[Block, ...]
    upcoming: tuple[Entry, ...]

    @property
    def word(self) -> str:
        return "busy" if self.state.busy else "free"

    @property
    def headline(self) -> str:
        return room_state.headline(self.state, self.zone, self.day)

    @property
    def status(self) -> str:
        return room_state.status(self.state, self.zone, self.day)

    @property
    def ticks(self) -> tuple[tuple[str, float], ...]:
        return room_state.ticks(self.day, self.zone)

    @property
    def now_at(self) -> float:
        return room_state.position(self.at, self.day)

    def clock(self, moment: dt.datetime) -> str:
        return room_state.clock(moment, self.zone, self.day)


def entry_of(found: AgendaEntry, level: str) -> Entry:
    """A stored occurrence as ``level`` shows it; blocking as booking counts it
    (``calendar_store.busy_intervals``: booked or tentative, and opaque)."""
    view = shown(level, found.summary, found.organizer_name, found.organizer,
                 found.attendee_count)
    return Entry(found.start, found.end, view.title, view.organizer_name,
                 blocks=not found.transparent and found.status in cal.HOLDING,
                 note=_note(found))


def _note(found: AgendaEntry) -> str:
    """"" for a firm booking; else what it is ("tentative": held, awaiting approval)."""
    if found.transparent:
        return "shown as free"
    return "" if found.status == cal.BOOKED else found.status


def page_of(session: Session, resource: Mailbox, settings: Settings, at: dt.datetime,
            level: str | None = None) -> ResourcePage:
    """The resource at ``at``, shown at ``level`` (by default its own setting)."""
    level = level or resource.resource_settings.calendar_details
    zone = horizon.zone_of(resource, settings)
    day = room_state.day_of(at, zone)
    entries = [entry_of(e, level) for e in cal.agenda(session, resource, day.start,
                                                        day.end + LOOKAHEAD)]
    state = room_state.state_at(entries, at, effective_capacity(resource.resource_settings))
    return ResourcePage(resource.name, resource.email, resource.fullname,
                        resource.resource_type, resource.resource_capacity, level, zone, at, day,
                        state, room_state.timeline(entries, day),
                        room_state.upcoming(entries, at, NEXT_SHOWN))


def listed_page(session: Session, resource: Mailbox, settings: Settings,
                at: dt.datetime) -> ResourcePage:
    """The resource as the public list shows it: a resource whose calendar needs a token
    shows there no more than its free/busy times, which ``/freebusy`` publishes anyway."""
    return page_of(session, resource, settings, at,
                   "busy" if resource.calendar_token is not None else None)
