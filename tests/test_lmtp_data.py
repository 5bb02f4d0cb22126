"""The bulk read of DATA (delivery.lmtp_data) against a line-by-line reading of RFC 5321.

The reference below reads the data as aiosmtpd did, one CRLF-ended line at a time; the
bulk read must give the same content, the same refusal and leave the same bytes unread,
however the bytes arrive (in one piece, byte by byte, or split anywhere) and with a
stream limit small enough that long lines and long runs between markers overrun it.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings, strategies as st

from delivery.lmtp_data import Data, read_data

LIMIT = 64  # the stream's limit and the line limit, as in the protocol (line_length_limit)
NEXT = b"MAIL FROM:<next@example.org>\r\n"  # a pipelined command after the data


def reference(stream: bytes, line_limit: int, size_limit: int) -> tuple[bytes, set[str]]:
    """The content and the possible problems, reading one line (to CRLF) at a time."""
    lines, size, problems = [], 0, set()
    rest = stream
    while True:
        line, _, rest = rest.partition(b"\r\n")
        if line == b".":
            break
        size += len(line) + 2
        if len(line) + 2 > line_limit:
            problems.add("too long")
        lines.append(line[1:] if line.startswith(b".") else line)
    if size_limit and size > size_limit:
        problems.add("too much")
    return b"".join(line + b"\r\n" for line in lines), problems


async def _read(pieces: list[bytes], size_limit: int) -> tuple[Data, bytes]:
    reader = asyncio.StreamReader(limit=LIMIT)

    async def feed() -> None:
        for piece in pieces:
            reader.feed_data(piece)
            await asyncio.sleep(0)  # the reader sees each piece on its own

    feeding = asyncio.ensure_future(feed())
    data = await read_data(reader, LIMIT, size_limit)
    await feeding
    reader.feed_eof()
    return data, await reader.read()


def read(pieces: list[bytes], size_limit: int = 0) -> tuple[Data, bytes]:
    return asyncio.run(_read(pieces, size_limit))


def assert_reads_as_reference(stream: bytes, pieces: list[bytes], size_limit: int) -> None:
    content, problems = reference(stream, LIMIT, size_limit)
    data, unread = read(pieces, size_limit)
    assert unread == NEXT
    if problems:
        assert data.problem in problems and data.content == b""
    else:
        assert data == Data(content)


@pytest.mark.parametrize("stream, content", [
    (b".\r\n", b""),
    (b"\r\n.\r\n", b"\r\n"),
    (b"Subject: x\r\n\r\nbody\r\n.\r\n", b"Subject: x\r\n\r\nbody\r\n"),
    (b"..\r\n.\r\n", b".\r\n"),
    (b"a\r\n..b\r\n...\r\n.\r\n", b"a\r\n.b\r\n..\r\n"),
    (b"bare\nlf\n.\nstill\r.\r\n.\r\n", b"bare\nlf\n.\nstill\r.\r\n"),  # CRLF only ends a line
    (b"a\r\n. \r\n.\r\n", b"a\r\n \r\n"),
])
def test_data_is_read_to_its_end_and_undone_of_dot_stuffing(stream, content):
    assert read([stream + NEXT]) == (Data(content), NEXT)


@pytest.mark.parametrize("stream", [
    b"x" * 100 + b"\r\n.\r\n",  # the first line overruns the stream's limit
    b"a\r\n" + b"y" * 63 + b"\r\n.\r\n",  # 63 + CRLF: one over, inside a bulk piece
    b"a\r\n" + b"y" * 300 + b"\r\nb\r\n.\r\n",
])
def test_a_line_over_the_limit_is_read_to_the_end_and_refused(stream):
    assert read([stream + NEXT]) == (Data(b"", "too long"), NEXT)


def test_a_line_at_the_limit_is_taken():
    line = b"z" * (LIMIT - 2) + b"\r\n"
    assert read([b"a\r\n" + line + line + b".\r\n" + NEXT]) == (Data(b"a\r\n" + 2 * line), NEXT)


def test_more_than_the_size_limit_is_read_to_the_end_and_refused():
    body = b"".join(b"line %d\r\n" % n for n in range(200))
    assert read([body + b".\r\n" + NEXT], size_limit=len(body) - 1) == (Data(b"", "too much"), NEXT)
    assert read([body + b".\r\n" + NEXT], size_limit=len(body)) == (Data(body), NEXT)


def test_the_end_marker_split_across_pieces_is_found():
    stream = b"one\r\ntwo\r\n.\r\n" + NEXT
    for cut in range(1, len(stream)):
        assert read([stream[:cut], stream[cut:]]) == (Data(b"one\r\ntwo\r\n"), NEXT)


def test_data_sent_byte_by_byte_reads_the_same():
    stream = b".a\r\n\r\n..\r\n" + b"w" * 150 + b"\r\n.\r\n" + NEXT
    assert read([bytes([b]) for b in stream]) == (Data(b"", "too long"), NEXT)
    stream = b".a\r\n\r\n..\r\nend\r\n.\r\n" + NEXT
    assert read([bytes([b]) for b in stream]) == (Data(b"a\r\n\r\n.\r\nend\r\n"), NEXT)


def test_a_client_that_hangs_up_mid_data_is_seen():
    async def hang_up() -> None:
        reader = asyncio.StreamReader(limit=LIMIT)
        reader.feed_data(b"Subject: cut\r\nbody")
        reader.feed_eof()
        await read_data(reader, LIMIT, 0)

    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(hang_up())


_LINES = st.lists(st.sampled_from([b"", b".", b"..", b". ", b".x", b"x", b"\r", b"\n", b"\n.",
                                   b"a.b", b"x" * 30, b"y" * 63, b"z" * 62, b"w" * 90]),
                  max_size=12)


@settings(max_examples=300, deadline=None)
@given(_LINES, st.lists(st.integers(min_value=1, max_value=200), max_size=6),
       st.sampled_from([0, 40, 200]))
def test_any_data_in_any_pieces_reads_as_line_by_line(lines, cuts, size_limit):
    lines = [line for line in lines if line != b"."]  # a lone dot would end the data early
    stream = b"".join(line + b"\r\n" for line in lines) + b".\r\n"
    whole = stream + NEXT
    bounds = sorted({0, len(whole), *(c for c in cuts if c < len(whole))})
    pieces = [whole[a:b] for a, b in zip(bounds, bounds[1:])]
    assert_reads_as_reference(stream, pieces, size_limit)
