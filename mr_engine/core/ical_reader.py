"""iCalendar text read as icalendar (7.x) reads it, with less of its work per line.

icalendar finds where a content line's name and parameters end (RFC 5545 §3.1) by walking
every character of the line, its value included, parses the parameters through two mappings
(quoting, escapes, lists) even when there are none to undo, and looks up each property's
value type twice; for an invitation that was half of its parse. :func:`read` hands
icalendar's own calendar parser the content lines ready made, as it allows
(``Calendar.from_ical(lines)``), of a :class:`icalendar.parser.content_line.Contentline`
subclass whose :meth:`Line.raw_parts` splits a plain line (no DQUOTE or backslash before its
first colon) with ``str.find``, takes plain parameters (``CN=Jane Doe;RSVP=TRUE``) apart with
``str.split``, and any other line as icalendar does, through a parser that remembers the
value type of each (property, VALUE) pair. The result is icalendar's for every input; where
the short way meets anything unusual it takes the long one, so even error messages are
icalendar's own.
"""

from __future__ import annotations

import re
from typing import Any

from icalendar import Calendar, Component
from icalendar.parser.content_line import NEWLINE, UFOLD, Contentline
from icalendar.parser.ical.calendar import CalendarIcalParser
from icalendar.parser.parameter import Parameters
from icalendar.parser.string import NAME

__all__ = ["Line", "content_lines", "plain_parts", "read", "unfold", "value_type"]

# An unquoted parameter value that icalendar's parameter parser leaves as it is.
_PLAIN_VALUE = re.compile(r"[\w.+/@-]+(?: [\w.+/@-]+)*")


def plain_parts(line: str) -> tuple[str, dict[str, str], str] | None:
    """(name, parameters, value) of a content line that icalendar would take apart unchanged:
    no DQUOTE or backslash before its first colon, a plain name and plain parameters (see
    ``_plain_params``; their keys upper-cased, as icalendar's Parameters keep them); else
    None. The value is as written (icalendar's ``raw_parts``)."""
    head = _head(line)
    if head is None:
        return None
    semi = head.find(";")
    name = head if semi < 0 else head[:semi]
    if not NAME.fullmatch(name):
        return None
    params = {} if semi < 0 else _plain_params(head[semi + 1:])
    return None if params is None else (name, params, line[len(head) + 1:])


def _head(line: str) -> str | None:
    """What precedes the line's first colon, which ends its name and parameters (RFC 5545
    §3.1) when there is no DQUOTE or backslash before it, so that the walk over the head
    alone finds what icalendar's walk over the whole line finds; None otherwise (a colon may
    be quoted or escaped: only the character walk knows)."""
    colon = line.find(":")
    head = line[:colon]
    return None if colon <= 0 or '"' in head or "\\" in head else head


class Line(Contentline):
    """A content line that icalendar's parser splits with :meth:`raw_parts`."""

    __slots__ = ()

    def raw_parts(self) -> tuple[str, Parameters, str]:
        parts = None if self.strict else plain_parts(self)
        if parts is not None:
            name, params, value = parts
            return name, Parameters(params), value
        head = _head(self)
        if head is None:
            return super().raw_parts()
        try:
            name, params, _ = Contentline(head + ":", strict=self.strict).raw_parts()
        except ValueError:
            return super().raw_parts()  # the same error, naming the whole line
        return name, params, self[len(head) + 1:]


def _plain_params(section: str) -> dict[str, str] | None:
    """The parameters of *section* when icalendar would take them apart unchanged: each a
    token, ``=`` and a value with no quoting, list, escape (backslash, RFC 6868's ``^``, the
    ``%XX`` icalendar uses inside) or space next to a delimiter; else None. (A strict line's
    values are upper-cased: icalendar's way, so strict lines never come here.)"""
    params: dict[str, str] = {}
    for param in section.split(";"):
        key, _, value = param.partition("=")
        if not NAME.fullmatch(key) or not _PLAIN_VALUE.fullmatch(value):
            return None
        params[key.upper()] = value  # a later one replacing an earlier, as in icalendar
    return params


def unfold(text: str) -> list[Contentline]:
    """*text*'s content lines, unfolded (RFC 5545 §3.1), as icalendar's
    ``Contentlines.from_ical`` makes them but of :class:`Line`."""
    lines: list[Contentline] = [Line(line) for line in content_lines(text) if line]
    lines.append(Contentline(""))
    return lines


def content_lines(text: str) -> list[str]:
    """*text* unfolded and split at its line ends, as icalendar splits it (empty lines
    included). Its unfolding pattern looks behind at every line end, a sixth of a small
    invitation's reading: a text with no line end before a space or tab has no fold."""
    if "\n " in text or "\n\t" in text:
        text = UFOLD.sub("", text)
    return NEWLINE.split(text) if "\r" in text else text.split("\n")


# Calendar's types factory maps the same (property, VALUE) to the same type every time. The
# names come from the mail (X- properties): past VALUE_TYPES_KEPT pairs, the rest are not kept.
VALUE_TYPES_KEPT = 1024
_value_types: dict[tuple[str, str], Any] = {}


def value_type(name: str, value: str | None) -> Any:
    """The value type icalendar's Calendar gives property *name* (upper-cased) with the VALUE
    parameter *value* (None when it has none), remembered for the next time."""
    key = (name, value.upper() if value else "")  # as icalendar's Parameters.value reads it
    found = _value_types.get(key)
    if found is None:
        found = Calendar.types_factory.for_property(name, key[1] or None)
        if len(_value_types) < VALUE_TYPES_KEPT:
            _value_types[key] = found
    return found


class _Parser(CalendarIcalParser):
    """icalendar's calendar parser, with the value types remembered (``value_type``)."""

    def get_factory_for_property(self, name: str, params: Parameters) -> Any:
        value = params.get("VALUE") if params else None
        if value is not None and not isinstance(value, str):
            return super().get_factory_for_property(name, params)  # fails as icalendar's
        return value_type(name, value)


class _Calendar(Calendar):
    @classmethod
    def _get_ical_parser(cls, st: Any) -> _Parser:
        return _Parser(st, cls._get_component_factory(), cls.types_factory)


def read(text: str) -> list[Component]:
    """The components of *text* (a whole iCalendar object), as
    ``Calendar.from_ical(text, multiple=True)`` gives them."""
    return _Calendar.from_ical(unfold(text), multiple=True)
