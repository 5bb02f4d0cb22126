"""A calendar of the common kind, read without icalendar's components.

icalendar builds, for every content line, a component entry, a case-insensitive
``Parameters`` mapping (two, with the value's own) and a typed value object; for a meeting
request that is most of the protocol side's reading of it. :func:`read` takes a calendar
apart line by line into :class:`PlainComponent`\\ s, which answer what :mod:`itip` asks of a
component (``get``, ``walk``, ``name``, ``errors``) with what icalendar's would answer: text
and calendar addresses as plain :class:`Value`\\ s, dates and date-times parsed by icalendar's
own value types, and every other property itip reads as the icalendar value object itself.

It reads only what it can read exactly as icalendar does, and answers None for anything
else, which the caller then reads with icalendar: one VCALENDAR holding VEVENTs (and their
VALARMs); no VTIMEZONE (the caller takes out those it may, as icalendar's reader would on a
zone it cannot build); a TZID only where a known zone name (:func:`timezones.lookup`) makes
the sender's VTIMEZONE irrelevant, and only on a date-time (icalendar makes a DATE with a
TZID a date-time when it knows the zone, which depends on the zones it has seen); no line
icalendar would split, type or fail otherwise than plainly. Properties itip does not read
are checked, not kept: icalendar records a property it cannot parse in the component's
``errors``, and then itip keeps the event serialized again rather than as received.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from icalendar.parser.content_line import Contentline
from icalendar.parser.parameter import Parameters
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.parser.property import unescape_backslash
from icalendar.prop import vCalAddress, vDDDTypes, vText, vUnknown

from mr_engine.core.ical_reader import content_lines, plain_parts, value_type
from mr_engine.core.timezones import lookup

__all__ = ["VTIMEZONE", "PlainComponent", "Value", "read"]

# A VTIMEZONE as icalendar's reader is retried without it (itip) and as read() takes it out.
VTIMEZONE = re.compile(r"^BEGIN:VTIMEZONE$.*?^END:VTIMEZONE$\n?", re.M | re.S | re.I)
_ZONE_PARTS = ("STANDARD", "DAYLIGHT")  # RFC 5545 §3.6.5

# The components read: a VCALENDAR's VEVENTs and a VEVENT's VALARMs (RFC 5545 §3.6.6).
_INSIDE = {"VCALENDAR": "VEVENT", "VEVENT": "VALARM"}
# What itip reads of a component; every other property is only checked.
_TEXTS = frozenset({"METHOD", "PRODID", "UID", "SUMMARY", "STATUS", "TRANSP", "ORGANIZER",
                    "ATTENDEE"})
_TIMES = frozenset({"DTSTAMP", "DTSTART", "DTEND", "RECURRENCE-ID"})
_OTHERS = frozenset({"SEQUENCE", "DURATION", "RRULE", "RDATE", "EXDATE"})
_READ = _TEXTS | _TIMES | _OTHERS
# Properties icalendar reads in a way of their own (ComponentIcalParser.handle_property).
_OWN_WAY = frozenset({"CATEGORIES", "FREEBUSY"})
_TZID_NAMES = frozenset(ComponentIcalParser.datetime_names)
# Value types whose reading cannot fail, and those read as plain text.
_INFALLIBLE = (vText, vUnknown)
_TEXT_TYPES = (vText, vCalAddress)


class Value:
    """A property value as itip reads it: ``str()`` its text, ``dt`` its date or date-time,
    ``params`` its parameters (as icalendar's values have them)."""

    __slots__ = ("text", "dt", "params")

    def __init__(self, text: str, dt: date | None, params: Any) -> None:
        self.text, self.dt, self.params = text, dt, params

    def __str__(self) -> str:
        return self.text


class PlainComponent:
    """A VCALENDAR, VEVENT or VALARM read by :func:`read`: the properties itip reads, each
    name's values in order, and the components inside it."""

    errors: tuple[()] = ()  # what icalendar would have recorded: read() accepts none

    def __init__(self, name: str) -> None:
        self.name = name
        self.properties: dict[str, list[Any]] = {}
        self.subcomponents: list[PlainComponent] = []

    def get(self, name: str, default: Any = None) -> Any:
        """The value of property *name*, a list of them if it came more than once (as
        icalendar's ``Component.get``), else *default*."""
        values = self.properties.get(name)
        if not values:
            return default
        return values[0] if len(values) == 1 else list(values)

    def walk(self, name: str | None = None) -> list[PlainComponent]:
        """This component and those inside it, depth first, of *name* if given."""
        return [c for c in self._all() if name is None or c.name == name.upper()]

    def _all(self) -> Iterator[PlainComponent]:
        yield self
        for sub in self.subcomponents:
            yield from sub._all()


class _NotPlain(Exception):
    """The calendar holds something read() leaves to icalendar."""


def read(text: str) -> PlainComponent | None:
    """The VCALENDAR of *text* (LF-separated lines), or None when it is not one that this
    module reads exactly as icalendar would."""
    zones = list(VTIMEZONE.finditer(text))
    if zones and not _apart(text, zones):
        return None
    try:
        return _read(content_lines(VTIMEZONE.sub("", text) if zones else text))
    except Exception:  # noqa: BLE001 - _NotPlain, or any error icalendar's value types raise
        return None


def _apart(text: str, zones: list[re.Match[str]]) -> bool:
    """Whether taking the VTIMEZONEs out of *text* changes nothing that icalendar's reading
    of the rest would see: each is one VTIMEZONE of STANDARD and DAYLIGHT parts, with no
    line folded into the one after it, and all come before the first VEVENT (icalendar
    would read a VEVENT before its zone twice, and a zone inside a VEVENT is no zone)."""
    events = text.find("\nBEGIN:VEVENT\n")
    return events >= 0 and all(
        zone.end() <= events + 1 and text[zone.end():zone.end() + 1] not in (" ", "\t")
        and _one_zone(zone.group()) for zone in zones)


def _one_zone(block: str) -> bool:
    """Whether *block*'s structure lines, however icalendar would spell them, are the BEGIN
    and END of one VTIMEZONE around STANDARD and DAYLIGHT parts."""
    lines = [line for line in content_lines(block) if line]
    if len(lines) < 2 or lines[0] != "BEGIN:VTIMEZONE" or lines[-1] != "END:VTIMEZONE":
        return False
    part = None
    for line in lines[1:-1]:
        if not line.replace(" ", "").replace("\t", "").upper().startswith(("BEGIN", "END")):
            continue
        keyword, _, name = line.partition(":")
        if keyword == "BEGIN" and part is None and name in _ZONE_PARTS:
            part = name
        elif keyword == "END" and name == part:
            part = None
        else:
            return False
    return part is None


def _read(lines: list[str]) -> PlainComponent:
    stack: list[PlainComponent] = []
    done: PlainComponent | None = None
    for line in lines:
        if not line:
            continue
        if done is not None:
            raise _NotPlain  # anything after the VCALENDAR
        if line.startswith(("BEGIN:", "END:")):
            done = _structure(line, stack)
        elif stack:
            _property(line, stack[-1])
        else:
            raise _NotPlain  # a property outside any component
    if done is None or not done.walk("VEVENT"):
        raise _NotPlain
    return done


def _structure(line: str, stack: list[PlainComponent]) -> PlainComponent | None:
    """Open or close a component; the VCALENDAR once it is closed."""
    keyword, _, name = line.partition(":")
    if keyword == "BEGIN":
        if name != (_INSIDE.get(stack[-1].name) if stack else "VCALENDAR"):
            raise _NotPlain
        component = PlainComponent(name)
        if stack:
            stack[-1].subcomponents.append(component)
        stack.append(component)
        return None
    if not stack or stack[-1].name != name:
        raise _NotPlain
    closed = stack.pop()
    return None if stack else closed


def _property(line: str, component: PlainComponent) -> None:
    # An unusual line is taken apart by icalendar itself, raising where its parser would.
    name, params, raw = plain_parts(line) or Contentline(line).raw_parts()
    name = name.upper()
    factory = _factory(name, params.get("VALUE"))
    if name in _OWN_WAY or name.startswith(("BEGIN", "END")) or \
            hasattr(factory, "get_value_from_content_line") and name in _READ:
        raise _NotPlain  # read in a way of icalendar's own, or a structure line misspelt
    value = _value(name, params, raw, factory)
    if value is not None:
        component.properties.setdefault(name, []).append(value)


def _value(name: str, params: Any, raw: str, factory: Any) -> Any:
    """The value of a property itip reads, or None for one it does not, once icalendar
    would read it without an error."""
    text = unescape_backslash(raw) if "\\" in raw else raw  # icalendar's Contentline.parts
    if name in _TEXTS and factory in _TEXT_TYPES:
        if factory is vCalAddress and ("\n" in text or "\r" in text):
            raise _NotPlain  # icalendar's vCalAddress refuses line ends
        return Value(text, None, params)
    if name not in _READ and factory in _INFALLIBLE:
        return None
    tzid = params.get("TZID") if params else None
    if tzid is not None and not _known_zone(tzid, raw, name):
        raise _NotPlain
    parsed = factory.from_ical(text, tzid) if tzid and name in _TZID_NAMES else \
        factory.from_ical(text)
    if name in _TIMES and factory is vDDDTypes:
        if not isinstance(parsed, date):
            raise _NotPlain  # a period or duration where a time belongs
        return Value(text, parsed, params)
    instance = factory(parsed)  # may raise, as icalendar's does (vInt's range)
    # icalendar's own value types read their Parameters' attributes (VALUE, TZID).
    instance.params = params if isinstance(params, Parameters) else Parameters(params)
    return instance if name in _READ else None


def _known_zone(tzid: Any, raw: str, name: str) -> bool:
    """Whether a TZID parameter's zone is one :mod:`timezones` knows without the sender's
    VTIMEZONE, on date-times only (see the module's docstring)."""
    if not isinstance(tzid, str) or lookup(tzid) is None:
        return False
    values = raw.split(",") if name in ("RDATE", "EXDATE") else [raw]
    return all("T" in v for v in values)


def _factory(name: str, value: Any) -> Any:
    """The value type icalendar gives property *name* with VALUE *value*."""
    if value is not None and not isinstance(value, str):
        raise _NotPlain  # a VALUE list: icalendar fails on it
    return value_type(name, value)
