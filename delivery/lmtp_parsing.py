"""Cheap exact answers for the common case of two parses the LMTP side does per transaction.

aiosmtpd reads the address of each MAIL and RCPT with the email package's RFC 5322 parser
(and builds a ``typing.Protocol`` class every call): about 40 µs an address, more than the
rest of the command. A plain ``<local@domain>`` (dot-atoms, ASCII) is read here by a
regular expression with the same result; anything else (quoted local parts, comments,
domain literals, encoded words, ``<>``, no angle brackets) goes to aiosmtpd's parser.

A message of one part (not ``multipart/*`` nor ``message/*``) parses to its headers and its
body as one string; reading only the header block and setting the rest as the payload gives
the same ``Message`` for about half the cost. Anything the header parse finds odd (a defect,
a line that is no header) takes the full parse.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import re
from typing import Callable

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 §3.2.3, ASCII only
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_ANGLE_ADDR = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>")
_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)
_END_OF_HEADERS = b"\r\n\r\n"


def simple_address(arg: str) -> tuple[str, str] | None:
    """``(address, rest)`` as aiosmtpd's ``_getaddr`` finds them in ``<a@b> REST``, or None
    when the address is not a plain one (then only the full parser knows)."""
    match = _ANGLE_ADDR.match(arg)
    if match is None or "=?" in match.group(1):  # "=?": an RFC 2047 encoded word
        return None
    rest = arg[match.end():]
    if rest[:1] in (" ", "\t"):  # the parser takes the white space after ">" with it
        rest = rest.lstrip()
    if rest.startswith("("):  # ... and a comment
        return None
    return match.group(1), rest


def parse_single_part(content: bytes,
                      full: Callable[[bytes], email.message.Message]) -> email.message.Message:
    """``full(content)`` (a compat32 parse of the whole message), cheaper for a message of
    one part: its header block parsed, the rest set as the payload, as the full parse does."""
    end = content.find(_END_OF_HEADERS)
    if end < 0:
        return full(content)
    message = _HEADERS.parsebytes(content[:end + len(_END_OF_HEADERS)])
    # A payload here: the headers ended before the blank line (a line that is no header).
    if message.defects or message.get_payload() or message.is_multipart() \
            or message.get_content_maintype() in ("multipart", "message"):
        return full(content)
    message.set_payload(content[end + len(_END_OF_HEADERS):].decode("ascii", "surrogateescape"))
    return message
