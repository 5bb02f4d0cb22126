"""Untrusted text made safe to show on a terminal or to write to a log.

Subjects, summaries, UIDs, addresses and names come from mail that anyone can send. A raw
newline in one of them forges a row of a listing or a line of the log, an ESC or a C1 CSI
(U+009B) drives the administrator's terminal. Stored data keeps every byte as received; only
what is printed goes through here. Pure and free of engine imports: the ``serve`` supervisor,
which holds no engine code, logs through it too.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (U+0085 NEL included), the Unicode line and paragraph
# separators, and lone surrogates (what surrogateescape leaves of undecodable bytes; an
# encoder would raise on them, so they would end a listing with a traceback).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# What json.dumps(ensure_ascii=False) leaves raw: it escapes only C0 and the quote/backslash.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(char: str, keep: str) -> str:
    if char in keep:
        return char
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, keep: str = "") -> str:
    """``text`` with each control character shown as an escape (``\\n``, ``\\x1b``, ``\\u2028``).

    Without ``keep`` the result is one line. ``keep`` names controls to leave as they are
    (``"\\n"`` for a traceback's lines). A backslash is left alone: the result is for
    reading, not for parsing back.
    """
    return _CONTROLS.sub(lambda match: _visible(match.group(), keep), text)


def printable_lines(text: str) -> str:
    """Like ``printable``, but the LF between lines stays (a traceback, a two-line report)."""
    return printable(text, keep="\n")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_printable(json_text: str) -> str:
    """JSON text with the characters ``ensure_ascii=False`` lets through escaped as ``\\uXXXX``.

    They can only occur inside strings (the JSON syntax itself is ASCII), where the escape
    means the same character: the data a script reads back is unchanged.
    """
    return _JSON_RAW.sub(_json_escape, json_text)
