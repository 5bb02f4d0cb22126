"""Expand an invitation into its concrete occurrences (UTC), bounded.

RFC 5545 §3.8.5: the recurrence set is DTSTART, plus RRULE and RDATE
occurrences, minus EXDATEs; RECURRENCE-ID overrides (§3.8.4.4) then replace
the instance they name, and with RANGE=THISANDFUTURE also shift every later
one. The rules are computed with python-dateutil on the master's DTSTART *in
its own zone*, so wall-clock times hold across DST changes (a 09:00
Europe/Berlin meeting stays at 09:00 local after the switch).

Input is untrusted: expansion is lazy, stops at ``window_end``, refuses more
than ``cap`` occurrences and refuses MINUTELY/SECONDLY rules outright.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

from dateutil.rrule import rrulestr

from mr_engine.core.itip import EventData, Invitation

__all__ = ["Instance", "RecurrenceError", "expand", "finished_by", "is_recurring"]

_ALLOWED_FREQ = frozenset({"YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY"})
_RULE_PARTS = frozenset({
    "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
    "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST",
})
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MAX_RULES = 10
# Occurrences examined before the window (a daily series since 1990 is ~13k).
_MAX_SCANNED = 200_000
_UNTIL = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")


class RecurrenceError(Exception):
    """The recurrence cannot (or may not) be expanded; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Instance:
    recurrence_id: datetime | None  # UTC original start; None for a non-recurring event
    start: datetime  # UTC
    end: datetime  # UTC
    summary: str
    transparent: bool
    cancelled: bool


def is_recurring(inv: Invitation) -> bool:
    """True for a series or for a message about instances of one."""
    return any(e.recurring or e.recurrence_id is not None for e in inv.events)


# --- rule text -> dateutil ------------------------------------------------------


def _until_utc(value: str, zone: tzinfo) -> datetime:
    """RFC 5545 §3.3.10 UNTIL in any form -> UTC, as dateutil demands for an
    aware DTSTART. A DATE or floating UNTIL is read in the series' zone; a
    DATE includes its whole day (UNTIL is inclusive)."""
    match = _UNTIL.match(value)
    if match is None:
        raise RecurrenceError(f"unparseable UNTIL {value!r}")
    day, clock, utc = match.groups()
    try:
        local = datetime.strptime(day + (clock or "235959"), "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise RecurrenceError(f"unparseable UNTIL {value!r}") from exc
    return local.replace(tzinfo=timezone.utc if utc else zone).astimezone(timezone.utc)


def _matches_no_day(parts: dict[str, str]) -> bool:
    """BYMONTHDAY beyond every BYMONTH's length (e.g. 31 February): dateutil
    would scan to year 9999 before giving up, so reject it up front."""
    try:
        months = [int(m) for m in parts.get("BYMONTH", "").split(",") if m]
        days = [int(d) for d in parts.get("BYMONTHDAY", "").split(",") if d]
    except ValueError:
        return False
    lengths = [_MONTH_DAYS[m - 1] for m in months if 1 <= m <= 12]
    return bool(lengths and days) and all(abs(d) > max(lengths) for d in days)


def _rule_parts(text: str) -> dict[str, str]:
    """Split and clean a RRULE value: Exchange/CDO put spaces in lists
    (``BYDAY=MO, TU``); unknown and X- parts are dropped."""
    body = re.sub(r"\s+", "", text).upper().removeprefix("RRULE:")
    parts: dict[str, str] = {}
    for item in filter(None, body.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise RecurrenceError(f"unparseable RRULE {text!r}")
        if key in _RULE_PARTS:
            parts[key] = value.strip(",")
    return parts


def _check(parts: dict[str, str], text: str) -> None:
    freq = parts.get("FREQ", "")
    if freq in ("SECONDLY", "MINUTELY"):  # bounded input: no per-minute bookings
        raise RecurrenceError(f"FREQ={freq} recurrences are refused")
    if freq not in _ALLOWED_FREQ:
        raise RecurrenceError(f"unparseable RRULE {text!r}")
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or int(interval) < 1:  # RFC 5545 §3.3.10: a positive integer
        raise RecurrenceError(f"invalid INTERVAL in RRULE {text!r}")
    if _matches_no_day(parts) or _slow_combination(freq, parts):
        raise RecurrenceError(f"RRULE {text!r} matches no date or is not supported")


def _slow_combination(freq: str, parts: dict[str, str]) -> bool:
    """Combinations RFC 5545 §3.3.10 forbids (BYWEEKNO and BYYEARDAY beyond
    YEARLY, BYMONTHDAY with WEEKLY), plus BYSETPOS on DAILY/HOURLY, which no
    mainstream client sends. All of them can make dateutil scan day by day
    to year 9999 (seconds of CPU) when they never match."""
    if freq != "YEARLY" and ("BYWEEKNO" in parts or "BYYEARDAY" in parts):
        return True
    if freq == "WEEKLY" and "BYMONTHDAY" in parts:
        return True
    return freq in ("DAILY", "HOURLY") and "BYSETPOS" in parts


_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _weekdays_unreachable(parts: dict[str, str], dtstart: datetime) -> bool:
    """Whether a DAILY or HOURLY rule's INTERVAL steps over all its BYDAY weekdays.

    dateutil finds the next match internally, without looking at UNTIL on days that
    the filter drops, so such a rule (``FREQ=HOURLY;INTERVAL=168;BYDAY=TU`` from a
    Monday) is scanned to year 9999. The weekdays a step can reach repeat within a
    week of hours, so trying 168 steps decides it.
    """
    freq, byday = parts["FREQ"], parts.get("BYDAY")
    if freq not in ("DAILY", "HOURLY") or not byday:
        return False
    wanted = {day.strip()[-2:].upper() for day in byday.split(",")}
    step = int(parts.get("INTERVAL", "1")) * (24 if freq == "DAILY" else 1)
    first = dtstart.weekday() * 24 + dtstart.hour
    reachable = {_WEEKDAYS[(first + k * step) % 168 // 24] for k in range(168)}
    return not reachable & wanted


def _rule(text: str, dtstart: datetime, horizon: datetime) -> Iterator[datetime]:
    """A lazy iterator over one RRULE's occurrences up to *horizon*, in DTSTART's zone.

    The horizon goes into the rule as its UNTIL, because dateutil looks for the next
    match internally: a rule that never matches would otherwise be scanned to year 9999
    (seconds of CPU) whatever the caller stops at. COUNT (which dateutil will not take
    with UNTIL, RFC 5545 §3.3.10) becomes a cut-off on the bounded rule: the first COUNT
    occurrences before the horizon are the same either way. A client that sends both
    COUNT and UNTIL gets whichever ends first.
    """
    parts = _rule_parts(text)
    _check(parts, text)
    if _weekdays_unreachable(parts, dtstart):
        raise RecurrenceError(f"RRULE {text!r} matches no date")
    until = horizon
    if "UNTIL" in parts:
        until = min(until, _until_utc(parts.pop("UNTIL"), dtstart.tzinfo or timezone.utc))
    count = parts.pop("COUNT", None)
    if count is not None and not count.isdigit():
        raise RecurrenceError(f"invalid COUNT in RRULE {text!r}")
    parts["UNTIL"] = until.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    normalised = ";".join(f"{key}={value}" for key, value in parts.items())
    try:
        rule = rrulestr(normalised, dtstart=dtstart)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RecurrenceError(f"unparseable RRULE {text!r}: {exc}") from exc
    return iter(rule) if count is None else itertools.islice(rule, int(count))


def _occurrences(series: EventData, horizon: datetime) -> Iterator[datetime]:
    """The recurrence set in time order, without duplicates: DTSTART (which
    always counts as the first instance, RFC 5545 §3.8.5.3), RRULEs, RDATEs."""
    if len(series.rrule) > _MAX_RULES:
        raise RecurrenceError(f"more than {_MAX_RULES} RRULEs")
    rules = [_rule(text, series.start, horizon) for text in series.rrule]
    previous = None
    for occurrence in heapq.merge([series.start], sorted(series.rdates), *rules):
        if occurrence != previous:
            yield occurrence
        previous = occurrence


# --- expansion --------------------------------------------------------------------


class _Series:
    """The master plus everything needed to turn its occurrences into instances."""

    def __init__(self, master: EventData, overrides: list[EventData]) -> None:
        self.master = master
        self.zone = master.start.tzinfo or timezone.utc
        self.duration = master.end - master.start
        self.periods = {start.astimezone(timezone.utc): length for start, length in master.rdate_periods}
        self.overrides = {self.key(o.recurrence_id): o for o in overrides}  # type: ignore[arg-type]
        self.futures = sorted((o for o in overrides if o.this_and_future), key=lambda o: o.recurrence_id)
        self.future_ids = [o.recurrence_id for o in self.futures]
        if master.all_day:  # Outlook sends date-time EXDATEs for all-day series
            self.ex_days = {e.date() for e in master.exdates}
            self.ex_instants: set[datetime] = set()
        else:
            self.ex_days = set(master.exdate_days)
            self.ex_instants = {e.astimezone(timezone.utc) for e in master.exdates}

    def key(self, moment: datetime) -> datetime | date:
        """How overrides are matched: by local day for all-day series."""
        if self.master.all_day:
            return moment.astimezone(self.zone).date()
        return moment.astimezone(timezone.utc)

    def excluded(self, occurrence: datetime) -> bool:
        local_day = occurrence.astimezone(self.zone).date()
        return local_day in self.ex_days or occurrence.astimezone(timezone.utc) in self.ex_instants

    def earliest_shift(self) -> timedelta:
        """The most negative THISANDFUTURE shift, which pulls later instances forward."""
        shifts = (o.start - o.recurrence_id for o in self.futures)  # type: ignore[operator]
        return min(shifts, default=timedelta(0))

    def instance(self, occurrence: datetime) -> Instance:
        rid = occurrence.astimezone(timezone.utc)
        start = occurrence  # aware in the series zone: + timedelta is wall-clock
        end = start + self.periods.get(rid, self.duration)
        source = self.master
        index = bisect.bisect_left(self.future_ids, rid) - 1  # RFC 5545 §3.8.4.4 RANGE
        if index >= 0:
            source = self.futures[index]
            start = rid + (source.start - source.recurrence_id)  # type: ignore[operator]
            end = start + (source.end - source.start)
        return _make(source, rid, start, end)


def _make(source: EventData, rid: datetime | None, start: datetime, end: datetime) -> Instance:
    return Instance(
        recurrence_id=rid,
        start=start.astimezone(timezone.utc),
        end=end.astimezone(timezone.utc),
        summary=source.summary,
        transparent=source.transparent,
        cancelled=source.status == "CANCELLED",
    )


def _series_source(inv: Invitation) -> EventData | None:
    """The master; or, without one, a lone recurring override (Exchange and
    Lotus send a THISANDFUTURE override carrying its own RDATE list)."""
    if inv.master is not None:
        return inv.master
    if len(inv.events) == 1 and inv.events[0].recurring:
        return inv.events[0]
    return None


def _generated(series: _Series, until: datetime) -> Iterator[Instance]:
    """Instances of the rule that no override replaces, up to *until*."""
    scanned = itertools.count(1)
    try:
        for occurrence in _occurrences(series.master, until):
            if occurrence >= until:
                return
            if next(scanned) > _MAX_SCANNED:
                raise RecurrenceError("recurrence starts too long before the booking window")
            if series.key(occurrence) in series.overrides or series.excluded(occurrence):
                continue
            yield series.instance(occurrence)
    except (ValueError, TypeError, OverflowError) as exc:  # dateutil's "empty rule" errors
        raise RecurrenceError(f"cannot expand recurrence: {exc}") from exc


def _in_window(instance: Instance, start: datetime | None, end: datetime) -> bool:
    if instance.start >= end:
        return False
    return start is None or instance.end > start or instance.start >= start


def expand(inv: Invitation, window_end: datetime, cap: int,
           window_start: datetime | None = None) -> list[Instance]:
    """Occurrences of *inv* starting before *window_end*, sorted by start.

    With *window_start*, occurrences that ended before it are left out (and not
    counted against *cap*). A non-recurring event yields one instance with
    ``recurrence_id=None``; its overrides, if any, are ignored. Overrides always
    count by their own (possibly moved) times, wherever their original was.
    Raises :class:`RecurrenceError`.
    """
    source = _series_source(inv)
    if source is not None and not source.recurring:
        found = [_make(source, None, source.start, source.end)]
    else:
        overrides = [e for e in inv.events if e is not source and e.recurrence_id is not None]
        found = [_make(o, o.recurrence_id, o.start, o.end) for o in overrides]
        if source is not None:
            series = _Series(source, overrides)
            generated = _generated(series, window_end - series.earliest_shift())
            in_window = (i for i in generated if _in_window(i, window_start, window_end))
            # Lazy: cap + 1 generated instances are enough to know the cap is
            # exceeded, however open-ended the rule.
            found.extend(itertools.islice(in_window, cap + 1))
    inside = [i for i in found if _in_window(i, window_start, window_end)]
    if len(inside) > cap:
        raise RecurrenceError(f"more than {cap} occurrences in the booking window")
    return sorted(inside, key=lambda i: (i.start, i.recurrence_id or i.start))


# --- the end of a series ------------------------------------------------------------


def _rule_done_by(text: str, dtstart: datetime, moment: datetime) -> bool:
    """Whether one RRULE has no occurrence at or after *moment* (UNTIL or COUNT reached)."""
    parts = _rule_parts(text)
    if "UNTIL" in parts:
        return _until_utc(parts["UNTIL"], dtstart.tzinfo or timezone.utc) < moment
    count = parts.get("COUNT", "")
    if not count.isdigit():
        return False  # open-ended
    before = itertools.islice(_rule(text, dtstart, moment), min(int(count), _MAX_SCANNED))
    return sum(1 for _ in before) >= int(count)


def finished_by(inv: Invitation, moment: datetime) -> bool:
    """Whether no occurrence of *inv* starts at or after *moment*: expanding further
    would never find another one (a single meeting, or a series past its UNTIL/COUNT)."""
    source = _series_source(inv)
    overrides = [e for e in inv.events if e is not source]
    if any(e.start >= moment for e in overrides):
        return False
    if source is None or not source.recurring:
        return source is None or source.start < moment
    # A THISANDFUTURE override that moves instances later moves the end with them.
    later = max((o.start - o.recurrence_id for o in overrides  # type: ignore[operator]
                 if o.this_and_future), default=timedelta(0))
    until = moment - max(later, timedelta(0))
    if any(r >= until for r in source.rdates):
        return False
    return all(_rule_done_by(text, source.start, until) for text in source.rrule)
