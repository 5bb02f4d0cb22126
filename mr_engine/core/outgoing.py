"""Generated mail on the wire: addresses, header fields, text parts and the message bytes.

Every message the engine writes (iTIP replies, out-of-office replies) is built here, so each
one is valid on any relay: header lines are folded to 78 characters (RFC 5322 §2.1.1, 998 at
the most), non-ASCII header text is RFC 2047 encoded-words, a text part whose lines are not
all short ASCII is quoted-printable (RFC 2045 §6.7: lines of at most 76), and the result is
CRLF bytes that need neither 8BITMIME nor SMTPUTF8 - unless the recipient's local part is
non-ASCII, which only an RFC 6532 UTF-8 header can say (and the relay only sends with
SMTPUTF8, RFC 6531).

Addresses are parsed strictly (``parse_mailbox``): a dot-atom local part (RFC 5322 §3.4.1,
UTF-8 allowed by RFC 6532 §3.2) and a host name, converted to A-labels with Python's
built-in ``idna`` codec (IDNA 2003; the ``idna`` package is not a dependency), or an
address literal. Anything else is an ``AddressError``, a ValueError that says what is wrong.

Strings are put together directly instead of with the ``email`` package: its generator and
header registry were most of a meeting reply's cost under load. Pure: no database, no clock.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

__all__ = ["AUTO_REPLY_HEADERS", "LINE", "AddressError", "ParsedAddress", "Part", "address_header",
           "calendar_part", "date_header", "field", "fold_content_line", "message",
           "message_ids", "new_message_id", "one_line", "parse_mailbox", "text_header",
           "text_part", "thread_headers"]

LINE = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters...
MAX_LINE = 998  # ...and MUST be at most 998
_WORD_LINE = 76  # RFC 2047 §2: a line with encoded-words is at most 76 characters...
_MAX_WORD = 75  # ...and one encoded-word at most 75
_MAX_ID = 900  # a longer msg-id cannot share a header line with its field name
_MAX_LOCAL = 64  # RFC 5321 §4.5.3.1.1 (octets)
_MAX_DOMAIN = 253  # RFC 1035 §2.3.4: 255 octets on the wire, 253 as text

# C0 and C1 controls, DEL, Unicode line/paragraph separators and lone surrogates (what
# surrogateescape leaves of undecodable bytes): none may reach a header line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"  # RFC 5322 §3.2.3
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # RFC 1035 §2.3.1, RFC 1123 §2.1
_ASCII_ADDRESS = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*@{_LABEL}(?:\.{_LABEL})*")
_DOT_ATOM_UTF8 = re.compile(rf"(?:{_ATEXT}|[^\x00-\x7f])+(?:\.(?:{_ATEXT}|[^\x00-\x7f])+)*")
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ATOMS = re.compile(rf"{_ATEXT}+(?: {_ATEXT}+)*")
_MSGID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")  # printable ASCII but < and >
_LINE_ENDS = re.compile(r"\r\n?")
# NUL and lone surrogates cannot be sent; other controls (TAB, FF...) are quoted-printable.
_CONTROL_BODY = re.compile("[\x00\ud800-\udfff]")
# UTS #46 deviation characters: IDNA 2003 maps them away (straße -> strasse), IDNA 2008
# keeps them (xn--strae-oqa): the built-in codec would send such mail to another domain.
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


class AddressError(ValueError):
    """An e-mail address that cannot be written into a header or an SMTP command."""


def one_line(text: str, limit: int = 200) -> str:
    """One line of text: no CR/LF or other control characters (header injection)."""
    return _CONTROL.sub(" ", text).strip()[:limit]


# --- addresses ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParsedAddress:
    """A usable addr-spec; the domain in U-labels (``domain``, as given when the address is
    ASCII) and in A-labels."""

    local: str
    domain: str
    ascii_domain: str

    @property
    def needs_smtputf8(self) -> bool:
        return not self.local.isascii()

    @property
    def addr_spec(self) -> str:
        """The form for envelope and headers: all ASCII (A-labels) when the local part is
        ASCII, else UTF-8 (RFC 6531 §3.3) with U-labels where they fit."""
        if not self.needs_smtputf8 or len(self.domain.encode()) > _MAX_DOMAIN:
            return f"{self.local}@{self.ascii_domain}"
        return f"{self.local}@{self.domain}"


def parse_mailbox(address: str) -> ParsedAddress:
    """``address`` checked and split; AddressError (a ValueError) says why it is unusable."""
    text = unicodedata.normalize("NFC", address.strip())  # RFC 6532 §3.1
    if _ASCII_ADDRESS.fullmatch(text):
        local, _, domain = text.rpartition("@")  # the common case, without the codec
        if len(local) <= _MAX_LOCAL and len(domain) <= _MAX_DOMAIN:
            return ParsedAddress(local, domain, domain)
    problem = _address_problem(text)
    if problem:
        raise AddressError(f"{_unusable(address)}: {problem}")
    local, _, domain = text.rpartition("@")
    return ParsedAddress(local, *_domains(domain, address))


def _address_problem(text: str) -> str | None:
    if not text:
        return "it is empty"
    if _CONTROL.search(text):
        return "it contains a control character"
    if any(c.isspace() for c in text):
        return "it contains a space"
    local, at, domain = text.rpartition("@")
    if not at:
        return "it has no @domain"
    return _local_problem(local) or (None if domain else "the domain is empty")


def _local_problem(local: str) -> str | None:
    if not local:
        return "the local part is empty"
    if local.startswith('"'):
        return "quoted local parts are not supported"
    if "@" in local:
        return "it has more than one @"
    if len(local.encode()) > _MAX_LOCAL:
        return f"the local part is longer than {_MAX_LOCAL} octets (RFC 5321 §4.5.3.1.1)"
    if not _DOT_ATOM_UTF8.fullmatch(local) or _unprintable(local):
        return "the local part is not a dot-atom (RFC 5322 §3.4.1)"
    return None


def _unprintable(text: str) -> bool:
    # RFC 6532 allows any UTF-8, but a separator or format character is not an address.
    return any(unicodedata.category(c)[0] in "CZ" for c in text if not c.isascii())


def _unusable(address: str) -> str:
    # repr() shows control characters as escapes; the cut keeps a log line readable.
    shown = repr(address) if len(address) <= 100 else f"{address[:100]!r}…"
    return f"unusable e-mail address {shown}"


def _domain_error(address: str, domain: str) -> AddressError:
    return AddressError(f"{_unusable(address)}: {domain[:100]!r} is not a host name "
                        "(RFC 1123 §2.1, RFC 5890)")


def _domains(domain: str, address: str) -> tuple[str, str]:
    """The domain in U-labels and in A-labels; an address literal is both."""
    if domain.startswith("["):
        literal = _address_literal(domain, address)
        return literal, literal
    if _DEVIATIONS & set(domain.lower()):
        raise AddressError(f"{_unusable(address)}: the domain has a character IDNA 2003 "
                           "and IDNA 2008 encode differently (ß, ς, ZWJ, ZWNJ)")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")  # RFC 3490 ToASCII, per label
        # Decoded again, so a UTF-8 address names exactly the domain the A-labels do.
        unicode_domain = ascii_domain.encode("ascii").decode("idna")
    except UnicodeError:
        raise _domain_error(address, domain) from None
    if _unprintable(domain) or not _HOSTNAME.fullmatch(ascii_domain) \
            or len(ascii_domain) > _MAX_DOMAIN:
        raise _domain_error(address, domain)
    return unicode_domain, ascii_domain


def _address_literal(domain: str, address: str) -> str:
    """RFC 5321 §4.1.3: ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``."""
    inner = domain[1:-1] if domain.endswith("]") else ""
    try:
        if inner[:5].lower() == "ipv6:":
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:])}]"
        return f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError:
        raise AddressError(f"{_unusable(address)}: {domain[:100]!r} is not an address "
                           "literal") from None


# --- header fields -----------------------------------------------------------------------------

def _fold(name: str, tokens: Iterable[str]) -> str:
    """``name: tokens``, a line break before a token that would pass 78 (RFC 5322 §2.2.3)."""
    lines, line = [], f"{name}:"
    for token in tokens:
        # The first token stays on the field name's line, however long it is.
        if len(line) + 1 + len(token) > LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return "\n".join(lines)


def _char_start(data: bytes, end: int) -> int:
    # RFC 2047 §5: an encoded-word holds whole characters, so never end inside a UTF-8 sequence.
    while end < len(data) and data[end] & 0xC0 == 0x80:
        end -= 1
    return end


def _word_end(data: bytes, start: int, room: int) -> int:
    end = _char_start(data, start + (room - 12) // 4 * 3)
    if end >= len(data):
        return end
    # After a space where there is one: the whitespace between encoded-words is not text
    # (RFC 2047 §6.2), but some decoders (Python's address parser) keep it anyway.
    space = data.rfind(b" ", start, end)
    return space + 1 if space > start else end


def _encoded_words(text: str, first_room: int) -> list[str]:
    """``text`` as B encoded-words (RFC 2047 §4.1), the first one at most ``first_room`` long."""
    data, words, start = text.encode("utf-8", "replace"), [], 0
    room = max(min(first_room, _MAX_WORD), 24)  # 24: room for a 4-octet character at least
    while start < len(data):
        end = _word_end(data, start, room)
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode()}?=")
        start, room = end, _MAX_WORD
    return words


def _first_room(name: str) -> int:
    return _WORD_LINE - len(name) - 2


def _fits(folded: str) -> bool:
    return all(len(line) <= LINE for line in folded.split("\n"))


def text_header(name: str, value: str) -> str:
    """An unstructured field (Subject): plain words if they fold within 78, else encoded."""
    text = one_line(value, MAX_LINE)
    if text.isascii() and "=?" not in text:
        folded = _fold(name, text.split())
        if _fits(folded):
            return folded
    return _fold(name, _encoded_words(text, _first_room(name)))


def _phrase(name: str, display_name: str) -> list[str]:
    """The display name as tokens (RFC 5322 §3.2.5): atoms, a quoted-string or encoded-words."""
    text, room = " ".join(one_line(display_name).split()), _first_room(name)
    if not text:
        return []
    if not text.isascii() or "=?" in text:
        return _encoded_words(text, room)  # RFC 2047 §5 (3): a word of a phrase
    words = text.split(" ") if _ATOMS.fullmatch(text) else [_quoted(text)]
    return words if max(map(len, words)) <= room else _encoded_words(text, room)


def _quoted(text: str) -> str:
    """RFC 5322 §3.2.4 quoted-string: DQUOTE and backslash escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def address_header(name: str, display_name: str, mailbox: ParsedAddress) -> str:
    """``Name <local@domain>`` (or the bare address without a name), folded."""
    phrase = _phrase(name, display_name)
    if not phrase:
        return _fold(name, [mailbox.addr_spec])
    return _fold(name, [*phrase, f"<{mailbox.addr_spec}>"])


def field(name: str, value: str) -> str:
    """A field whose value is a short ASCII token we made (Date, Auto-Submitted...)."""
    return f"{name}: {one_line(value, MAX_LINE - len(name) - 2)}"


def date_header(now: datetime) -> str:
    return field("Date", format_datetime(now))  # RFC 5322 §3.3


def message_ids(text: str) -> list[str]:
    """The msg-ids (RFC 5322 §3.6.4) in ``text`` that fit on a header line."""
    return [i for i in _MSGID.findall(text or "") if len(i) <= _MAX_ID]


def new_message_id(hostname: str, tag: str = "") -> str:
    domain = re.sub(r"[^A-Za-z0-9.\-\[\]:]", "", hostname) or "localhost"
    return f"<{uuid.uuid4().hex}{'.' + tag if tag else ''}@{domain[:200]}>"


def thread_headers(parent: str | None, references: Sequence[str]) -> list[str]:
    """In-Reply-To and References (RFC 5322 §3.6.4), each present only when it has ids."""
    headers = [_fold("In-Reply-To", [parent])] if parent else []
    return headers + ([_fold("References", references)] if references else [])


# RFC 3834 §5: no auto-replies to this; X-Auto-Response-Suppress is Exchange's dialect of it.
AUTO_REPLY_HEADERS = ("Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All")


# --- body parts and the message ----------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """A MIME part, encoded: its header lines and its body ("\\n" line ends, ASCII)."""

    headers: tuple[str, ...]
    body: str


def _longest_line(text: str) -> int:
    return max(map(len, text.split("\n")))


def text_part(text: str, subtype: str = "plain", **params: str) -> Part:
    """A UTF-8 text part: 7bit when it is ASCII with lines of at most 78 characters (as an
    iCalendar stream folded at 75 octets is, RFC 5545 §3.1), else quoted-printable."""
    body = _CONTROL_BODY.sub("", _LINE_ENDS.sub("\n", text))
    body = body if body.endswith("\n") else body + "\n"
    if body.isascii() and _longest_line(body) <= LINE:
        encoding = "7bit"
    else:
        encoding = "quoted-printable"  # RFC 2045 §6.7; keeps the message 7-bit for any relay
        body = binascii.b2a_qp(body.encode("utf-8", "replace"), istext=True).decode("ascii")
    return Part((_content_type(f"text/{subtype}", {"charset": '"utf-8"', **params}),
                 f"Content-Transfer-Encoding: {encoding}"), body)


def fold_content_line(line: str, limit: int = 75) -> str:
    """RFC 5545 §3.1: lines of at most 75 octets, never splitting a UTF-8 character; each
    continuation starts with a space. Measured in octets, as icalendar's own folding is,
    but without its loop over every character (a third of a reply's cost)."""
    if len(line) <= limit and (line.isascii() or len(line.encode()) <= limit):
        return line
    data, pieces, start, room = line.encode("utf-8", "replace"), [], 0, limit
    while start < len(data):
        end = _char_start(data, start + room)
        end = _escape_end(data, start, end) if end < len(data) else end
        pieces.append(data[start:end].decode("utf-8"))
        start, room = end, limit - 1
    return "\n ".join(pieces)


def _escape_end(data: bytes, start: int, end: int) -> int:
    """``end``, or one before it where it would cut an escape (RFC 5545 §3.3.11 ``\\;``,
    RFC 6868 ``^n``) in two: some clients do not unfold before unescaping."""
    for mark in b"\\^":
        run = end
        while run > start and data[run - 1] == mark:
            run -= 1
        if (end - run) % 2:  # an odd run of marks: the last one begins an escape
            return end - 1
    return end


def calendar_part(content_lines: Iterable[str], method: str) -> Part:
    """``text/calendar; method=...`` (RFC 6047 §2.4) from unfolded iCalendar content lines."""
    text = "\n".join(fold_content_line(line) for line in content_lines if line)
    return text_part(text, "calendar", method=method)


def _content_type(media_type: str, params: dict[str, str]) -> str:
    """RFC 2045 §5.1, folded between parameters; values are tokens or quoted already."""
    tokens = [media_type, *(f"{key}={value}" for key, value in params.items())]
    return _fold("Content-Type", [f"{token};" for token in tokens[:-1]] + tokens[-1:])


def _boundary(parts: Sequence[Part]) -> str:
    # "=_" cannot occur in quoted-printable; a 7bit part is checked (RFC 2046 §5.1.1).
    while True:
        boundary = f"=_{uuid.uuid4().hex}"
        if not any(boundary in part.body for part in parts):
            return boundary


def _multipart(parts: Sequence[Part], subtype: str) -> list[str]:
    boundary = _boundary(parts)
    lines = [_content_type(f"multipart/{subtype}", {"boundary": f'"{boundary}"'}), ""]
    for part in parts:
        lines += [f"--{boundary}", *part.headers, "", part.body]
    return lines + [f"--{boundary}--", ""]


def message(headers: Sequence[str], parts: Sequence[Part], subtype: str = "alternative") -> bytes:
    """The whole message as CRLF bytes: one part inline, several as multipart/``subtype``."""
    if len(parts) == 1:
        lines = [*headers, "MIME-Version: 1.0", *parts[0].headers, "", parts[0].body]
    else:
        lines = [*headers, "MIME-Version: 1.0", *_multipart(parts, subtype)]
    # Every piece above ends its lines in "\n" alone (values are one_line()d, bodies
    # normalized), so this is the one place that writes CRLF (RFC 5322 §2.1).
    return "\n".join(lines).replace("\n", "\r\n").encode("utf-8")
