"""The data of a DATA command, read in bulk up to its end (RFC 5321 §4.1.1.4, §4.5.2).

aiosmtpd reads the data line by line, with a Python loop turn per line: for a small message
that was a third of the protocol side's CPU. Here the data is read in pieces of up to the
stream's limit, by ``readuntil`` of the end marker CRLF "." CRLF, and undone of its dot
stuffing at once, with aiosmtpd's meaning: lines end at CRLF (a bare LF or CR is part of a
line), the data ends at the first line that is a lone ".", a leading "." of a line is
removed, a line longer than ``line_limit`` (with its CRLF) makes the data "too long", and
more than ``size_limit`` bytes (of the lines as sent) "too much"; both are read to the end
and dropped.

The end marker's leading CRLF ends the line before it; for the first line there is none.
So the reading starts at a line start only once it can see that the line is not the
marker: ``StreamReader`` has no public way to look ahead, so this looks at its buffer (and
reads line by line while fewer than three bytes are there).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

END = b"\r\n.\r\n"
_LONE_DOT = b".\r\n"


@dataclass(frozen=True)
class Data:
    content: bytes  # dot stuffing undone; empty when there is a problem
    problem: str = ""  # "too long" or "too much": read to the end and dropped


@dataclass
class _Pieces:
    size_limit: int
    pieces: list[bytes]
    size: int = 0
    too_long: bool = False

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.too_long or (self.size_limit and self.size > self.size_limit):
            self.pieces.clear()  # dropped at once: no memory for what will be refused
        else:
            self.pieces.append(piece)

    def result(self, line_limit: int) -> Data:
        if self.too_long:
            return Data(b"", "too long")
        if self.size_limit and self.size > self.size_limit:
            return Data(b"", "too much")
        raw = b"".join(self.pieces)
        self.pieces.clear()  # a large message is held twice at most: here, then its content
        if len(raw) > line_limit and any(len(line) + 2 > line_limit
                                         for line in raw.split(b"\r\n")):
            return Data(b"", "too long")
        content = raw.replace(b"\r\n.", b"\r\n")  # RFC 5321 §4.5.2: each line's first dot
        return Data(content[1:] if content.startswith(b".") else content)


async def read_data(reader: asyncio.StreamReader, line_limit: int, size_limit: int) -> Data:
    """The data from the current position (a line start) to its end marker, consumed."""
    got = _Pieces(size_limit, [])
    while True:  # at a line start: the marker may be here, without a CRLF before it
        ahead = bytes(reader._buffer[:3])  # no public look-ahead: see the docstring
        if len(ahead) == 3 and ahead != _LONE_DOT:
            break
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as exc:  # a line over the stream's limit
            got.too_long = True
            got.add(await reader.read(exc.consumed))
            break  # mid-line: whatever ends the data is still ahead, CRLF and all
        if line == _LONE_DOT:
            return got.result(line_limit)
        got.add(line)
    await _read_to_end(reader, got)
    return got.result(line_limit)


async def _read_to_end(reader: asyncio.StreamReader, got: _Pieces) -> None:
    # Not at the marker: its CRLF is still to be read, and readuntil finds it whole. A
    # limit overrun leaves the last bytes in the buffer, so a marker across two pieces is
    # found in the next.
    while True:
        try:
            piece = await reader.readuntil(END)
        except asyncio.LimitOverrunError as exc:
            got.add(await reader.read(exc.consumed))
            continue
        got.add(piece[:-3])  # the line before the marker keeps its CRLF
        return
