"""iCalendar text the engine publishes over HTTP (free/busy, feeds): values and a stream.

Written by hand rather than through icalendar's objects: a free/busy answer is a few
fixed lines around periods formatted once and cached, and building it costs microseconds.
Pure: plain values in, text out.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from .outgoing import fold_content_line

PRODID = "-//mr-engine//Resource calendars//EN"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 5545 §3.3.11: TAB is allowed
_PARAM_UNSAFE = re.compile(r'[\x00-\x08\x0a-\x1f\x7f"]')


def utc_text(moment: dt.datetime) -> str:
    """A DATE-TIME in UTC form (RFC 5545 §3.3.5, "form #2"): ``20260310T090000Z``."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): backslash, semicolon and comma escaped, line
    breaks as ``\\n``, other control characters dropped."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return _CONTROL.sub("", value.replace("\n", "\\n"))


def param_value(value: str) -> str:
    """A parameter value (RFC 5545 §3.2): no DQUOTE or controls; quoted when it holds
    ``:``, ``;`` or ``,``."""
    value = _PARAM_UNSAFE.sub("", value)
    return f'"{value}"' if any(ch in value for ch in ":;,") else value


def address_line(name: str, address: str, common_name: str = "") -> str:
    """A CAL-ADDRESS property (ORGANIZER, ATTENDEE) with its CN when there is one."""
    cn = f";CN={param_value(common_name)}" if param_value(common_name).strip('"') else ""
    return f"{name}{cn}:mailto:{_CONTROL.sub('', address)}"


def stream(lines: Iterable[str]) -> str:
    """Content lines as an iCalendar stream: folded at 75 octets, CRLF-terminated
    (RFC 5545 §3.1)."""
    return "".join(fold_content_line(line).replace("\n", "\r\n") + "\r\n" for line in lines)


def calendar_head(extra: Iterable[str] = ()) -> list[str]:
    """The first lines of a published VCALENDAR (RFC 5546 §3.2.1, METHOD:PUBLISH)."""
    return ["BEGIN:VCALENDAR", f"PRODID:{PRODID}", "VERSION:2.0", "METHOD:PUBLISH", *extra]


CALENDAR_END = "END:VCALENDAR"


def vcalendar(body: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """A published VCALENDAR around ``body``'s lines."""
    return [*calendar_head(extra), *body, CALENDAR_END]
