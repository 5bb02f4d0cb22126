"""Finding the iCalendar object in an iMIP message (RFC 6047).

The calendar may come as a ``text/calendar`` part (any case, any transfer encoding), or as an
``application/ics`` part or ``.ics`` attachment. The walk is bounded in depth and parts, and
broken MIME never raises: the message is then simply not a meeting request.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message

_MAX_MIME_DEPTH = 20
_MAX_MIME_PARTS = 500


def _leaf_parts(msg: Message, depth: int = 0) -> Iterator[Message]:
    """Leaf MIME parts, depth-first, bounded; never inside attached messages.

    An invitation forwarded as a message/rfc822 attachment was not sent to us.
    """
    if depth > _MAX_MIME_DEPTH:
        return
    if not msg.is_multipart():
        yield msg
        return
    if msg.get_content_maintype() == "message":
        return
    payload = msg.get_payload()
    for part in payload if isinstance(payload, list) else ():
        if isinstance(part, Message):
            yield from _leaf_parts(part, depth + 1)


def _decoded(part: Message) -> bytes | None:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes) or not data.strip():
        return None
    charset = part.get_content_charset()
    if charset and charset.replace("-", "").replace("_", "") not in ("utf8", "usascii"):
        # Hand on UTF-8 whatever the sender declared, so parsing has one charset.
        try:
            data = data.decode(charset).encode("utf-8")
        except (LookupError, UnicodeError):
            pass
    return data


def _is_ics_attachment(part: Message) -> bool:
    if part.get_content_type() == "application/ics":
        return True
    filename = part.get_filename() or ""
    return str(filename).strip().lower().endswith(".ics")


def find_calendar(msg: Message) -> bytes | None:
    """The iCalendar data of *msg*: the first ``text/calendar`` part (RFC 6047
    §2.4), else an ``application/ics`` part or ``*.ics`` attachment, else None.

    Content types compare case-insensitively; any transfer encoding is undone.
    Broken MIME yields what was found before the breakage, never an exception.
    """
    fallback: bytes | None = None
    try:
        for count, part in enumerate(_leaf_parts(msg)):
            if count >= _MAX_MIME_PARTS:
                break
            is_calendar = part.get_content_type() == "text/calendar"
            if not is_calendar and (fallback is not None or not _is_ics_attachment(part)):
                continue
            data = _decoded(part)
            if data is not None and is_calendar:
                return data
            fallback = fallback or data
    except Exception:  # noqa: BLE001 - malformed MIME from the wire
        pass
    return fallback
