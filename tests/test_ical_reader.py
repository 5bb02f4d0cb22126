"""mr_engine.core.ical_reader against icalendar's own reader.

Every line must split into the same name, parameters and value as icalendar's
``Contentline`` splits it, or fail with the same error; a whole calendar read by ``read``
must equal the one icalendar reads from the text, for generated lines and for every real
invitation in fixtures/.
"""

from __future__ import annotations

import email
import pathlib

import pytest
from hypothesis import given, settings, strategies as st
from icalendar import Calendar
from icalendar.parser.content_line import Contentline

from mr_engine.core import ical_reader
from mr_engine.core.ical_reader import Line, read
from mr_engine.core.imip import find_calendar

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
# Every character the split looks at, some it does not, and non-ASCII letters (\w).
_CHARS = st.sampled_from(list(':;="\\,. \t-_aAzZ09éß\u00a0') + ["mailto:", "TZID=", "20260310",
                                                                 "20260310T090000Z"])
_LINES = st.lists(_CHARS, max_size=30).map("".join)
_PLAIN = st.builds(
    lambda name, params, value: name + "".join(f";{k}={v}" for k, v in params) + ":" + value,
    st.sampled_from(["DTSTART", "dtend", "RDATE", "EXDATE", "CATEGORIES", "ATTENDEE",
                     "X-WR-CALNAME", "x.y", "ORGANIZER", "SEQUENCE"]),
    # VALUE picks the value type, which the reader remembers by property and VALUE.
    st.lists(st.tuples(st.sampled_from(["CN", "TZID", "RSVP", "X-P", "VALUE", "value"]),
                       st.sampled_from(["", "a", "A,b", "Europe/Amsterdam", "=3D", "a b", "DATE",
                                        "date", "DATE-TIME", "PERIOD", "TEXT", "X-NEW",
                                        "Jörg", " a", "a ", "a  b", "x^n", "%2C", "a/b@c+d",
                                        "a=b", "a\tb", "ROOM"])),
             max_size=3),
    _LINES)


def _split(line: Contentline) -> tuple[str, object, str] | str:
    try:
        name, params, value = line.parts()
    except ValueError as exc:
        return f"error: {exc}"
    return name, (type(params), dict(params)), value


@settings(max_examples=3000, deadline=None)
@given(st.one_of(_LINES, _PLAIN), st.booleans())
def test_a_line_splits_as_icalendar_splits_it(text: str, strict: bool) -> None:
    assert _split(Line(text, strict=strict)) == _split(Contentline(text, strict=strict))


@pytest.mark.parametrize("text", [
    "SUMMARY:a: b; c", "DTSTART;TZID=W. Europe Standard Time:20260310T090000",
    'ATTENDEE;CN="Doe, Jane";RSVP=TRUE:mailto:jane@example.org',
    "DESCRIPTION:a\\, b\\; c\\n d", "X-A\\B:v", ":no name", "NAME;:v", "NAME", "NA ME:v",
    "ATTENDEE;CN=Jane;BAD:mailto:j@example.org", "ATTENDEE;CN=a\"b:x"])
def test_lines_of_every_shape(text: str) -> None:
    assert _split(Line(text)) == _split(Contentline(text))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_PLAIN, st.sampled_from([" folded", "\tfolded", ""])), max_size=8))
def test_a_calendar_reads_as_icalendar_reads_it(lines: list[str]) -> None:
    text = "\n".join(["BEGIN:VCALENDAR", "BEGIN:VEVENT", *lines, "END:VEVENT", "END:VCALENDAR"])
    assert _ours(text) == _icalendars(text)


@pytest.mark.parametrize("path", sorted([*FIXTURES.rglob("*.ics"), *FIXTURES.rglob("*.eml")]),
                         ids=lambda p: p.name)
def test_real_invitations_read_as_icalendar_reads_them(path: pathlib.Path) -> None:
    data = path.read_bytes()
    if path.suffix == ".eml":
        data = find_calendar(email.message_from_bytes(data)) or b""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    assert _ours(text) == _icalendars(text)


def _ours(text: str) -> bytes | str:
    return _outcome(lambda: read(text))


def _icalendars(text: str) -> bytes | str:
    return _outcome(lambda: Calendar.from_ical(text, multiple=True))


def _outcome(parse) -> bytes | str:
    try:
        return b"".join(c.to_ical() for c in parse())
    except Exception as exc:  # noqa: BLE001 - the same failure either way
        return f"{type(exc).__name__}: {exc}"


def test_the_value_types_remembered_are_bounded_whatever_the_mail_names() -> None:
    names = "".join(f"X-P{i};VALUE=V{i}:x\n" for i in range(ical_reader.VALUE_TYPES_KEPT + 50))
    text = f"BEGIN:VCALENDAR\nBEGIN:VEVENT\n{names}END:VEVENT\nEND:VCALENDAR\n"
    assert _ours(text) == _icalendars(text)
    assert len(ical_reader._value_types) == ical_reader.VALUE_TYPES_KEPT
