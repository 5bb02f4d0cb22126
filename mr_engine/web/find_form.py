"""The "find a free resource" form of ``GET /``: its fields, read strictly.

The fields are ``date`` (YYYY-MM-DD), ``start`` (HH:MM), ``duration`` (minutes), ``kind``
(empty for any, ``room`` or ``equipment``) and ``capacity`` (at least that many). Date and
time are local to the server's ``default_timezone``, which the form names. A form is
submitted when the query has a ``date``; a bad field is a ``BadRequest`` naming it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Callable, Mapping

from mr_engine.services.finder import KINDS, Wanted

from .errors import BadRequest

LONGEST = 24 * 60  # minutes: the longest period one can look for
MOST_CAPACITY = 100_000
DEFAULT_DURATION = 60
# The ISO 8601 fields (what a person reads of them, their shape, their reader).
ISO_FIELDS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "date": ("a date", "YYYY-MM-DD", dt.date.fromisoformat),
    "start": ("a time", "HH:MM", dt.time.fromisoformat),
}


@dataclass(frozen=True)
class FindForm:
    """The fields as typed (shown again in the form), or their defaults."""

    date: str
    start: str
    duration: str
    kind: str
    capacity: str

    @property
    def kind_wanted(self) -> str:
        return "" if self.kind == "any" else self.kind


def submitted(query: Mapping[str, str]) -> bool:
    return "date" in query


def form_of(query: Mapping[str, str], at: dt.datetime, zone: tzinfo) -> FindForm:
    """The fields of ``query``; those not given default to the next full hour, for an hour,
    any kind, capacity 1."""
    local = (at.astimezone(zone) + dt.timedelta(hours=1)).replace(minute=0, second=0,
                                                                  microsecond=0)
    return FindForm(query.get("date", local.date().isoformat()),
                    query.get("start", f"{local:%H:%M}"),
                    query.get("duration", str(DEFAULT_DURATION)),
                    query.get("kind", ""), query.get("capacity", "1"))


def wanted_of(form: FindForm, zone: tzinfo) -> Wanted:
    """The finder's question, or BadRequest naming the first bad field."""
    start = dt.datetime.combine(_iso("date", form.date), _iso("start", form.start), zone)
    minutes = _number("duration", form.duration, 1, LONGEST)
    if form.kind_wanted not in ("", *KINDS):
        raise BadRequest(f"kind: one of any, {', '.join(KINDS)}, not {form.kind[:20]!r}")
    utc = start.astimezone(dt.timezone.utc)
    return Wanted(utc, utc + dt.timedelta(minutes=minutes), form.kind_wanted,
                  _number("capacity", form.capacity, 1, MOST_CAPACITY))


def _iso(name: str, text: str) -> Any:
    """The field ``name`` read as ``ISO_FIELDS`` says, in exactly its shape."""
    what, shape, parse = ISO_FIELDS[name]
    try:
        if len(text) == len(shape):
            return parse(text)
    except ValueError:
        pass
    raise BadRequest(f"{name}: not {what} ({shape}): {text[:40]!r}")


def _number(name: str, text: str, lowest: int, highest: int) -> int:
    value = int(text) if text.strip().isdigit() and len(text) < 10 else None
    if value is None or not lowest <= value <= highest:
        raise BadRequest(f"{name}: a whole number from {lowest} to {highest}: {text[:20]!r}")
    return value
