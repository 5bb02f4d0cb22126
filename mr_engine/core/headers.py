"""Reading untrusted header values as one line of readable text.

Headers arrive RFC 2047-encoded, as raw 8-bit (UTF-8 or legacy Latin-1), or broken. The
stored message keeps them as received; listings, auto-replies and logs use this module, which
never raises and never returns CR, LF or other control characters.
"""

from __future__ import annotations

import email.errors
import email.message
import email.utils
import re
from email.header import Header, decode_header

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _decode_bytes(data: bytes, charset: str | None) -> str:
    if charset and charset.lower() not in ("unknown-8bit", "us-ascii"):
        try:
            return data.decode(charset, "replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte is a Latin-1 character


def header_text(value: str | Header | None) -> str:
    """The header as readable text: encoded-words decoded, raw 8-bit read as UTF-8."""
    if value is None:
        return ""
    if isinstance(value, str):
        # compat32 parsing keeps raw 8-bit bytes as surrogate escapes; recover them.
        value = _decode_bytes(value.encode("ascii", "surrogateescape"), None) \
            if not value.isascii() and any("\udc80" <= c <= "\udcff" for c in value) \
            else value
    try:
        chunks = decode_header(value)
        text = "".join(_decode_bytes(part, charset) if isinstance(part, bytes) else part
                       for part, charset in chunks)
    except (email.errors.HeaderParseError, ValueError, UnicodeError):
        text = str(value)
    return " ".join(_CONTROL.sub(" ", text).split())


def first_address(message: email.message.Message, name: str) -> str:
    """The first address in the ``name`` header fields (From, Sender), as readable text;
    "" when there is none."""
    values = [header_text(value) for value in message.get_all(name, [])]
    return next((address for _name, address in email.utils.getaddresses(values) if address), "")
