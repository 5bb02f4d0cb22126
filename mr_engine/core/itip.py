"""Turn an iTIP object (RFC 5546) into plain data.

iMIP (RFC 6047) carries an iTIP message as a ``text/calendar`` MIME part, which
:mod:`mr_engine.imip` finds; this module converts the VCALENDAR into frozen
dataclasses that the pure booking core works on. It never touches a database
or the clock. A calendar of the common kind is read by :mod:`mr_engine.core.plain_calendar`,
any other by icalendar (fed by :mod:`mr_engine.core.ical_reader`), to the same result;
this module adds what real mail needs: tolerance of the dialects of Outlook, Google, Thunderbird and friends,
zone resolution (:mod:`mr_engine.timezones`) and bounds on untrusted input.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone, tzinfo
from email.message import Message
from typing import Any

from icalendar import Calendar, Component
from icalendar.error import GloballyUniqueTZIDGuessed
from icalendar.prop.broken import vBroken

from mr_engine.core import plain_calendar, timezones
from mr_engine.core.ical_reader import read as read_ical
from mr_engine.core.imip import find_calendar
from mr_engine.core.plain_calendar import VTIMEZONE, PlainComponent
from mr_engine.core.timezones import CalendarZones

# We resolve globally unique TZIDs ourselves (timezones.lookup); icalendar's
# warning about guessing them would only be noise in the logs.
warnings.filterwarnings("ignore", category=GloballyUniqueTZIDGuessed)

__all__ = ["Attendee", "EventData", "Invitation", "InvitationError", "is_attendee",
           "parse_invitation", "people_invited"]

_MAX_EVENTS = 1000
# RFC 5546 §3.2: DTSTART is required in every VEVENT method except these.
_DTSTART_OPTIONAL = frozenset({"CANCEL", "REPLY", "REFRESH", "DECLINECOUNTER"})
_Periods = list[tuple[datetime, timedelta]]
# A calendar as read from a message: by plain_calendar where it can, else by icalendar.
ReadCalendar = Calendar | PlainComponent
_Component = Component | PlainComponent
# The components whose text as received is used (_texts_of), and any line icalendar might
# read as the start of a component, however written.
_BLOCKS = {name: re.compile(rf"^BEGIN:{name}$.*?^END:{name}$\n?", re.M | re.S)
           for name in ("VEVENT", "VTIMEZONE")}
_ANY_BEGIN = re.compile(r"^[ \t]*BEGIN[ \t]*:[ \t]*(\w*)", re.M | re.I)
# The times a booking may have. RFC 5545 allows the years 0000-9999, but arithmetic near
# either end overflows Python's datetime (DTSTART in year 1, 9999-12-31 plus two days,
# DURATION:P99999999W), and no resource is booked before 1900 or for ten years at a time.
EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
LONGEST = timedelta(days=3653)
OUT_OF_RANGE = "the meeting's time is out of range"
_TIMEZONE_TEXT = "mr_engine_timezones"  # attribute of a Calendar that _load_calendar read
_BLOCK_TEXTS = "mr_engine_blocks"  # another: VEVENTs and VTIMEZONEs as received, in order


class InvitationError(Exception):
    """The calendar data cannot be used as an invitation; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Attendee:
    address: str  # lower-cased, without "mailto:"
    cn: str
    partstat: str
    rsvp: bool
    # RFC 5545 §3.2.3: INDIVIDUAL when absent; ROOM and RESOURCE are no people.
    cutype: str = "INDIVIDUAL"


@dataclass(frozen=True)
class EventData:
    """One VEVENT of the invitation, with every time aware.

    All-day (VALUE=DATE) and floating times are placed in the default zone.
    ``rdate_periods`` holds (start, duration) for RDATE;VALUE=PERIOD values and
    ``exdate_days`` the days of EXDATE;VALUE=DATE values, so that recurrence
    expansion can tell them from plain date-times.
    """

    uid: str
    sequence: int
    dtstamp: datetime | None
    recurrence_id: datetime | None  # UTC
    this_and_future: bool
    start: datetime
    end: datetime
    all_day: bool
    tzid: str
    summary: str
    organizer: str
    organizer_cn: str
    attendees: tuple[Attendee, ...]
    rrule: tuple[str, ...]
    rdates: tuple[datetime, ...]
    rdate_periods: tuple[tuple[datetime, timedelta], ...]
    exdates: tuple[datetime, ...]
    exdate_days: tuple[date, ...]
    transparent: bool
    status: str
    ical: str
    # Outside EARLIEST..LATEST or longer than LONGEST: then start, end and the recurrence
    # are placeholders (EARLIEST, no rule) and the request is declined (OUT_OF_RANGE).
    out_of_range: bool = False

    @property
    def recurring(self) -> bool:
        return bool(self.rrule or self.rdates)


@dataclass(frozen=True)
class Invitation:
    method: str
    uid: str
    events: tuple[EventData, ...]  # master first (if any), then overrides by RECURRENCE-ID
    prodid: str
    timezones: str = ""  # the calendar's VTIMEZONEs, serialized, for keeping with a booking

    @property
    def master(self) -> EventData | None:
        first = self.events[0]
        return first if first.recurrence_id is None else None


# --- parsing the calendar -----------------------------------------------------


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Deliberate departure from RFC 5545 §3.1.4 (UTF-8 only): old Outlook
        # builds send Windows-1252; better accented names than no booking.
        text = data.decode("cp1252", errors="replace")
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _load_calendar(data: bytes) -> ReadCalendar:
    text = _text(data)
    blocks = _block_texts(text)
    calendar = plain_calendar.read(text)
    # Each VEVENT's text as received is what a booking keeps (_texts_of): found for all.
    if calendar is None or len(calendar.walk("VEVENT")) != len(blocks.get("VEVENT", ())):
        calendar = _icalendar(text)
    # The VTIMEZONEs as received, for keeping with a booking: cut from the text,
    # because icalendar takes 0.7 ms to serialize an Outlook zone again.
    setattr(calendar, _TIMEZONE_TEXT, "".join(VTIMEZONE.findall(text)))
    setattr(calendar, _BLOCK_TEXTS, blocks)
    return calendar


def _icalendar(text: str) -> Calendar:
    """The first VCALENDAR of *text* that holds a VEVENT, read by icalendar."""
    try:
        calendars = read_ical(text)
    except Exception as exc:  # noqa: BLE001 - icalendar raises several types
        # icalendar builds every VTIMEZONE while parsing, so one broken zone
        # fails the whole calendar: retry without them (times then fall back
        # to known names or the default zone, see timezones.resolve).
        try:
            calendars = read_ical(VTIMEZONE.sub("", text))
        except Exception:  # noqa: BLE001
            raise InvitationError(f"unparseable calendar: {exc}") from exc
    for calendar in calendars:
        if calendar.name == "VCALENDAR" and calendar.walk("VEVENT"):
            return calendar
    raise InvitationError("no VEVENT in the calendar")


def _block_texts(text: str) -> dict[str, list[str]]:
    """The VEVENTs and VTIMEZONEs of a calendar's *text* as received, in order,
    CRLF-terminated, by component name. No entry for a name when the text holds more than one
    VCALENDAR (the one read could not be told by position) or such a component begun in
    another spelling than ``BEGIN:NAME`` (it would not be found)."""
    begun = [name.upper() for name in _ANY_BEGIN.findall(text)]
    found: dict[str, list[str]] = {}
    for name, pattern in _BLOCKS.items():
        blocks = pattern.findall(text)
        if begun.count("VCALENDAR") == 1 and begun.count(name) == len(blocks):
            found[name] = [(b if b.endswith("\n") else b + "\n").replace("\n", "\r\n")
                           for b in blocks]
    return found


def _plain(component: _Component, name: str) -> str:
    value = next(_values(component, name), None)
    return "" if value is None else str(value).strip()


def _address(value: object) -> str:
    """RFC 5545 §3.3.3 CAL-ADDRESS -> bare lower-case e-mail address."""
    text = str(value).strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    email = str(getattr(value, "params", {}).get("EMAIL", "")).strip()
    if ":" in text and email:  # urn:uuid:... with an EMAIL parameter (RFC 6638)
        text = email
    return text.strip().lower()


def _attendee(value: object) -> Attendee:
    params = getattr(value, "params", {})
    return Attendee(
        address=_address(value),
        cn=str(params.get("CN", "")),
        partstat=str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(),
        # RFC 5545 makes RSVP default to FALSE, but organizers that omit it still
        # expect the resource's answer (Kopano and Exchange reply): only an explicit
        # RSVP=FALSE silences the reply. Deliberate departure.
        rsvp=str(params.get("RSVP", "")).upper() != "FALSE",
        cutype=str(params.get("CUTYPE", "INDIVIDUAL")).upper(),
    )


def people_invited(event: EventData, besides: Iterable[str] = ()) -> int:
    """How many people the meeting invites, as a room's seats count them: ATTENDEEs with
    CUTYPE=INDIVIDUAL (or none, RFC 5545 §3.2.3), not the organizer and none of ``besides``
    (the resource itself, which some clients list without a CUTYPE)."""
    others = {event.organizer.lower(), *(a.lower() for a in besides)}
    return sum(1 for a in event.attendees
               if a.cutype == "INDIVIDUAL" and a.address not in others)


def _values(component: _Component, name: str, keep_broken: bool = False) -> Iterator[Any]:
    """Every value of property *name*; ones icalendar could not parse are skipped."""
    raw = component.get(name)
    for value in raw if isinstance(raw, list) else ([] if raw is None else [raw]):
        if keep_broken or not isinstance(value, vBroken):
            yield value


def _times(component: _Component, zones: CalendarZones,
           method: str) -> tuple[datetime, datetime, bool, str]:
    """(start, end, all_day, tzid) following RFC 5545 §3.6.1 for the end."""
    start_prop = _first_time(component, "DTSTART")
    if start_prop is None:
        if method not in _DTSTART_OPTIONAL:
            raise InvitationError("VEVENT without a usable DTSTART")
        # A CANCEL may omit DTSTART; keep the instance identifiable anyway.
        start_prop = _first_time(component, "RECURRENCE-ID") or _first_time(component, "DTEND")
        if start_prop is None:
            raise InvitationError("VEVENT without DTSTART, RECURRENCE-ID or DTEND")
    raw_start, tzid = start_prop
    all_day = not isinstance(raw_start, datetime)
    start = zones.aware(raw_start, tzid)
    end = _end(component, zones, start, all_day)
    floating = all_day or getattr(raw_start, "tzinfo", None) is None
    label = tzid or (timezones.zone_label(zones.default) if floating else "UTC")
    return start, max(end, start), all_day, label


def _end(component: _Component, zones: CalendarZones, start: datetime, all_day: bool) -> datetime:
    end_prop = _first_time(component, "DTEND")
    if end_prop is not None:  # DTEND wins over a (non-conformant) DURATION too
        return zones.aware(*end_prop)
    duration = next(_values(component, "DURATION"), None)
    if duration is not None and isinstance(getattr(duration, "dt", None), timedelta):
        return start + duration.dt  # aware + timedelta = wall-clock, RFC 5545 §3.3.6
    return start + timedelta(days=1) if all_day else start


def _first_time(component: _Component, name: str) -> tuple[date | datetime, str | None] | None:
    for prop in _values(component, name):
        value = getattr(prop, "dt", None)
        if isinstance(value, date):
            tzid = prop.params.get("TZID")
            return value, (str(tzid) if tzid else None)
    return None


def _date_list(component: _Component, name: str) -> Iterator[tuple[Any, str | None]]:
    """(value, tzid) for every value of every RDATE or EXDATE property."""
    for prop in _values(component, name):
        tzid = prop.params.get("TZID")
        for item in getattr(prop, "dts", ()):
            yield item.dt, (str(tzid) if tzid else None)


def _rdates(component: _Component, zones: CalendarZones) -> tuple[list[datetime], _Periods]:
    starts, periods = [], []
    for value, tzid in _date_list(component, "RDATE"):
        if isinstance(value, tuple):  # RFC 5545 §3.3.9 PERIOD: start/end or start/duration
            start, end = zones.aware(value[0], tzid), value[1]
            length = end if isinstance(end, timedelta) else zones.aware(end, tzid) - start
            periods.append((start, max(length, timedelta(0))))
            value = value[0]
        if isinstance(value, date):
            starts.append(zones.aware(value, tzid))
    return starts, periods


def _exdates(component: _Component, zones: CalendarZones) -> tuple[list[datetime], list[date]]:
    values = [(v, tzid) for v, tzid in _date_list(component, "EXDATE") if isinstance(v, date)]
    days = [v for v, _ in values if not isinstance(v, datetime)]
    return [zones.aware(v, tzid) for v, tzid in values], days


def _utc_or_none(component: _Component, name: str, zones: CalendarZones) -> datetime | None:
    found = _first_time(component, name)
    return None if found is None else zones.aware(*found).astimezone(timezone.utc)


def _this_and_future(component: _Component) -> bool:
    # RFC 5545 §3.2.13: RANGE=THISANDFUTURE extends the override to later instances.
    prop = next(_values(component, "RECURRENCE-ID"), None)
    return prop is not None and str(prop.params.get("RANGE", "")).upper() == "THISANDFUTURE"


def _int(component: _Component, name: str) -> int:
    try:
        return int(_plain(component, name) or 0)
    except ValueError:
        return 0


def _serialize(component: _Component) -> str:
    try:
        return component.to_ical().decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - keep the booking even if re-serializing fails
        return ""


def _event(component: _Component, uid: str, method: str, zones: CalendarZones,
           ical: str) -> EventData:
    try:
        event = _read_event(component, uid, method, zones, ical)
        if _in_range(event):
            return event
    except OverflowError:
        event = None
    return _placeholder(component, uid, event, ical)


def _in_range(event: EventData) -> bool:
    """Whether every time of *event* is one a booking may have (raises OverflowError)."""
    times = [event.start, event.end, *event.rdates, *event.exdates]
    if event.recurrence_id is not None:
        times.append(event.recurrence_id)
    utc = [t.astimezone(timezone.utc) for t in times]
    return all(EARLIEST <= t <= LATEST for t in utc) and event.end - event.start <= LONGEST


def _placeholder(component: _Component, uid: str, event: EventData | None,
                 ical: str) -> EventData:
    """An out-of-range VEVENT: enough to decline it, with no time to compute with."""
    organizer, organizer_cn = _organizer(component)
    base = event or EventData(
        uid=uid, sequence=_int(component, "SEQUENCE"), dtstamp=None, recurrence_id=None,
        this_and_future=False, start=EARLIEST, end=EARLIEST, all_day=False, tzid="UTC",
        summary=_plain(component, "SUMMARY"), organizer=organizer, organizer_cn=organizer_cn,
        attendees=tuple(_attendee(a) for a in _values(component, "ATTENDEE")), rrule=(),
        rdates=(), rdate_periods=(), exdates=(), exdate_days=(), transparent=False,
        status=_plain(component, "STATUS").upper(), ical=ical)
    rid = None if component.get("RECURRENCE-ID") is None else EARLIEST
    return replace(base, start=EARLIEST, end=EARLIEST, all_day=False, tzid="UTC",
                   recurrence_id=rid, this_and_future=False, dtstamp=None, rrule=(),
                   rdates=(), rdate_periods=(), exdates=(), exdate_days=(),
                   out_of_range=True)


def _read_event(component: _Component, uid: str, method: str,
                zones: CalendarZones, ical: str) -> EventData:
    start, end, all_day, tzid = _times(component, zones, method)
    organizer, organizer_cn = _organizer(component)
    rdates, rdate_periods = _rdates(component, zones)
    exdates, exdate_days = _exdates(component, zones)
    return EventData(
        uid=uid,
        sequence=_int(component, "SEQUENCE"),
        dtstamp=_utc_or_none(component, "DTSTAMP", zones),
        recurrence_id=_utc_or_none(component, "RECURRENCE-ID", zones),
        this_and_future=_this_and_future(component),
        start=start,
        end=end,
        all_day=all_day,
        tzid=tzid,
        summary=_plain(component, "SUMMARY"),
        organizer=organizer,
        organizer_cn=organizer_cn,
        attendees=tuple(_attendee(a) for a in _values(component, "ATTENDEE")),
        rrule=tuple(_rrule_text(r) for r in _values(component, "RRULE", keep_broken=True)),
        rdates=tuple(rdates),
        rdate_periods=tuple(rdate_periods),
        exdates=tuple(exdates),
        exdate_days=tuple(exdate_days),
        transparent=_plain(component, "TRANSP").upper() == "TRANSPARENT",
        status=_plain(component, "STATUS").upper(),
        ical=ical,
    )


def _organizer(component: _Component) -> tuple[str, str]:
    """ORGANIZER's address and CN ("" for each when there is none)."""
    organizer = next(_values(component, "ORGANIZER"), None)
    if organizer is None:
        return "", ""
    return _address(organizer), str(organizer.params.get("CN", ""))


def _rrule_text(value: object) -> str:
    if isinstance(value, vBroken):  # kept raw; recurrence.py repairs what it can
        return str(value)
    return value.to_ical().decode("ascii", errors="replace")  # type: ignore[attr-defined]


def _ordered(events: list[EventData]) -> tuple[EventData, ...]:
    """Master first, then overrides by RECURRENCE-ID; first copy of duplicates wins."""
    seen: dict[datetime | None, EventData] = {}
    for event in events:
        seen.setdefault(event.recurrence_id, event)
    master = [seen.pop(None)] if None in seen else []
    overrides = sorted(seen.values(), key=lambda e: e.recurrence_id)  # type: ignore[arg-type]
    return tuple(master + overrides)


def read_calendar(message: Message) -> ReadCalendar | InvitationError | None:
    """The iMIP message's calendar parsed, or why it cannot be; None if it carries none.

    Parsing is the costly part of reading a request and does not depend on the resource,
    so it is done once a message, before any recipient's transaction.
    """
    data = find_calendar(message)
    if data is None:
        return None
    try:
        return _load_calendar(data)
    except InvitationError as exc:
        return exc


def parse_invitation(data: bytes | ReadCalendar, default_tz: tzinfo) -> Invitation:
    """Parse iCalendar *data* (or a calendar ``read_calendar`` parsed) into an
    :class:`Invitation`.

    Only VEVENTs carrying the first VEVENT's UID are kept (RFC 5546 §3.1: one
    iTIP message is about one UID). Raises :class:`InvitationError`.
    """
    calendar = _load_calendar(data) if isinstance(data, bytes) else data
    method = _plain(calendar, "METHOD").upper()
    components = calendar.walk("VEVENT")
    uid = _plain(components[0], "UID")
    if not uid:
        raise InvitationError("VEVENT without UID")
    mine = [c for c in components if _plain(c, "UID") == uid]
    if len(mine) > _MAX_EVENTS:
        raise InvitationError(f"more than {_MAX_EVENTS} VEVENTs for one UID")
    vtimezones = calendar.walk("VTIMEZONE")
    zones = CalendarZones(vtimezones, default_tz, _texts_of(calendar, "VTIMEZONE", vtimezones))
    texts = _texts_of(calendar, "VEVENT", components)
    events = [_event(c, uid, method, zones, texts.get(id(c)) or _serialize(c)) for c in mine]
    return Invitation(method=method, uid=uid, events=_ordered(events),
                      prodid=_plain(calendar, "PRODID"),
                      timezones=_timezones(calendar))


def _texts_of(calendar: ReadCalendar, name: str,
              components: list[_Component]) -> dict[int, str]:
    """The received text of each of the *name* *components* (by id) that icalendar read
    without an error.

    A VEVENT's is kept with a booking, and a VTIMEZONE's is the key of its tzinfo
    (timezones.zone_from_vtimezone), instead of the component serialized again, which
    costs more than a third of reading a request (an Outlook zone 0.7 ms); the text
    parses to the same component. The n-th of the text is the n-th that icalendar
    walked, when their counts agree.
    """
    texts = getattr(calendar, _BLOCK_TEXTS, {}).get(name)
    if texts is None or len(texts) != len(components):
        return {}
    return {id(c): t for c, t in zip(components, texts)
            if not any(part.errors for part in c.walk())}


def _timezones(calendar: ReadCalendar) -> str:
    """The calendar's VTIMEZONEs as text (CRLF lines, as ``to_ical`` writes them)."""
    text = getattr(calendar, _TIMEZONE_TEXT, None)
    if text is None:
        return "".join(_serialize(z) for z in calendar.walk("VTIMEZONE"))
    return text.replace("\n", "\r\n")


def invitation_in(calendar: ReadCalendar | InvitationError | None,
                  default_tz: tzinfo) -> Invitation | InvitationError | None:
    """``parse_invitation`` of what ``read_calendar`` returned, its error as a value."""
    if calendar is None or isinstance(calendar, InvitationError):
        return calendar
    try:
        return parse_invitation(calendar, default_tz)
    except InvitationError as exc:
        return exc


def is_attendee(inv: Invitation, addresses: Iterable[str]) -> Attendee | None:
    """The first ATTENDEE of *inv* whose address is one of *addresses* (any case)."""
    wanted = {_address(a) for a in addresses}
    for event in inv.events:
        for attendee in event.attendees:
            if attendee.address in wanted:
                return attendee
    return None
