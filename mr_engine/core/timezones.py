"""Resolve iCalendar TZIDs to tzinfo objects, and show times in a zone.

Invitations name their zones in many dialects (RFC 5545 §3.2.19 TZID):

* IANA names (``Europe/Berlin``) -> :mod:`zoneinfo`;
* Outlook/Exchange Windows names (``W. Europe Standard Time``) -> IANA via the
  CLDR table that icalendar ships (``icalendar.timezone.windows_to_olson``);
* "globally unique" TZIDs (``/mozilla.org/20070129_1/Europe/Berlin``) -> the
  trailing IANA name;
* anything else -> the VTIMEZONE the sender included (RFC 5545 §3.6.5), built
  with icalendar's ``Timezone.to_tz()``.

Deliberate choice: an unknown TZID without a usable VTIMEZONE falls back to
the caller's default zone instead of failing; a booking a few hours off is
better than bouncing a meeting request, and the organizer sees the times we
understood in the reply.

Everything here is pure and cached: parsing runs once per delivery on the hot
path, and the same handful of zones recur in every message.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timezone, tzinfo

from icalendar import Timezone
from icalendar.timezone import tzid_from_tzinfo, tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

__all__ = ["CalendarZones", "lookup", "resolve", "zone_from_vtimezone", "zone_label", "format_span"]

# Outlook occasionally varies the case of its names; the table is exact-case.
_WINDOWS_BY_LOWER = {name.lower(): olson for name, olson in WINDOWS_TO_OLSON.items()}
_UTC_NAMES = {"utc", "z", "gmt", "etc/utc", "etc/gmt", "zulu", "universal"}
# Bounded so that a stream of junk TZIDs cannot grow memory without limit.
_CACHE_SIZE = 512


def _candidates(tzid: str) -> list[str]:
    """Names to try for *tzid*, best first."""
    cleaned = tzid.strip().strip('"').strip()
    bare = cleaned.strip("/")
    names = [bare]
    olson = WINDOWS_TO_OLSON.get(bare) or _WINDOWS_BY_LOWER.get(bare.lower())
    if olson:
        names.append(olson)
    if cleaned.startswith("/"):
        # RFC 5545 §3.2.19: a leading "/" marks a globally unique TZID such as
        # /mozilla.org/20070129_1/Europe/Berlin. libical and Lightning put an
        # IANA name at the end; try the longest suffix first so that
        # America/Argentina/Buenos_Aires wins over Argentina/Buenos_Aires.
        parts = bare.split("/")
        names.extend("/".join(parts[i:]) for i in range(1, len(parts)))
    return names


def _zoneinfo(name: str) -> tzinfo | None:
    if name.lower() in _UTC_NAMES:
        return timezone.utc
    try:
        return zoneinfo.ZoneInfo(name)
    except Exception:  # noqa: BLE001 - untrusted key: not found, bad path, directory...
        return None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def lookup(tzid: str) -> tzinfo | None:
    """Return the zone a TZID names (IANA, Windows or globally unique), or None."""
    for name in _candidates(tzid):
        if name:
            zone = _zoneinfo(name)
            if zone is not None:
                return zone
    return None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _zone_from_ical(vtimezone_ical: bytes) -> tzinfo | None:
    try:
        component = Timezone.from_ical(vtimezone_ical)
        # lookup_tzid=False: build from the rules the sender sent, never from
        # icalendar's process-wide cache, where another message may already
        # have registered a different zone under the same custom name.
        return component.to_tz(tzp, lookup_tzid=False)
    except Exception:  # noqa: BLE001 - broken VTIMEZONEs are common; caller falls back
        return None


_MAX_TRANSITION_DATES = 400  # explicit RDATEs; real zones have a few hundred at most


def _plausible(vtimezone: Timezone) -> bool:
    """Real zones change offset at most a few times a year. A sender's VTIMEZONE with an
    hourly rule from 1601 would make icalendar compute millions of transitions (seconds
    of CPU, hundreds of MB): such a definition is not used (the default zone is)."""
    dates = 0
    for sub in vtimezone.subcomponents:
        rules = sub.get("RRULE")
        for rule in rules if isinstance(rules, list) else [rules] if rules else []:
            if [str(f).upper() for f in rule.get("FREQ", [])] != ["YEARLY"]:
                return False
        rdates = sub.get("RDATE")
        for rdate in rdates if isinstance(rdates, list) else [rdates] if rdates else []:
            dates += len(getattr(rdate, "dts", [rdate]))
    return dates <= _MAX_TRANSITION_DATES


def zone_from_vtimezone(vtimezone: Timezone, text: str | None = None) -> tzinfo | None:
    """Build a tzinfo from a VTIMEZONE component (RFC 5545 §3.6.5), or None.

    Cached by the component's text (*text*, as received, when known: serializing an
    Outlook zone again costs 0.7 ms), so identical definitions in different messages
    share one tzinfo, and same-named different ones do not.
    """
    if not _plausible(vtimezone):
        return None
    try:
        key = vtimezone.to_ical() if text is None else text.encode("utf-8")
    except Exception:  # noqa: BLE001
        return None
    return _zone_from_ical(key)


def resolve(tzid: str, default: tzinfo, vtimezone: Timezone | None = None,
            text: str | None = None) -> tzinfo:
    """Resolve *tzid*: known name, else the sender's VTIMEZONE (its *text* if known, see
    ``zone_from_vtimezone``), else *default*."""
    zone = lookup(tzid)
    if zone is None and vtimezone is not None:
        zone = zone_from_vtimezone(vtimezone, text)
    return default if zone is None else zone


class CalendarZones:
    """TZID resolution for one calendar, against that calendar's VTIMEZONEs (and the text
    of those in *texts*, by ``id()`` of the component, as received)."""

    def __init__(self, vtimezones: Iterable[Timezone], default: tzinfo,
                 texts: Mapping[int, str] | None = None) -> None:
        self.default = default
        self._vtimezones = {str(vtz.get("TZID", "")).strip(): vtz for vtz in vtimezones}
        self._texts = texts or {}
        self._zones: dict[str, tzinfo] = {}

    def zone(self, tzid: str) -> tzinfo:
        if tzid not in self._zones:
            vtimezone = self._vtimezones.get(tzid.strip().strip('"'))
            text = None if vtimezone is None else self._texts.get(id(vtimezone))
            self._zones[tzid] = resolve(tzid, self.default, vtimezone, text)
        return self._zones[tzid]

    def aware(self, value: date | datetime, tzid: str | None) -> datetime:
        """An RFC 5545 §3.3.4 DATE or §3.3.5 DATE-TIME value as an aware datetime."""
        if not isinstance(value, datetime):  # DATE: that day in the default zone
            return datetime.combine(value, time(), tzinfo=self.default)
        if tzid:  # form #3: local time with a zone reference
            return value.replace(tzinfo=self.zone(tzid))
        if value.tzinfo is None:  # form #1: floating, read in the default zone
            return value.replace(tzinfo=self.default)
        return value.astimezone(timezone.utc)  # form #2: UTC


def zone_label(zone: tzinfo) -> str:
    """A human-readable name for *zone* (``Europe/Berlin``, ``UTC``...)."""
    if zone is timezone.utc:
        return "UTC"
    key = getattr(zone, "key", None)
    if isinstance(key, str):
        return key
    try:
        name = tzid_from_tzinfo(zone)
    except Exception:  # noqa: BLE001
        name = None
    return name or str(zone)


def format_span(start: datetime, end: datetime, zone: tzinfo, label: str | None = None) -> str:
    """Format ``[start, end)`` in *zone*: ``2026-03-17 11:00-12:00 (Europe/Berlin)``.

    The end date is repeated only when the span crosses midnight locally.
    """
    local_start = start.astimezone(zone)
    local_end = end.astimezone(zone)
    if local_end.date() == local_start.date():
        end_text = local_end.strftime("%H:%M")
    else:
        end_text = local_end.strftime("%Y-%m-%d %H:%M")
    return f"{local_start:%Y-%m-%d %H:%M}-{end_text} ({label or zone_label(zone)})"


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as every JSON output of the engine writes a time."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
