"""The LMTP side's cheap parses give exactly what the full parsers give (delivery.lmtp_parsing).

Addresses are compared with aiosmtpd's own ``_getaddr`` and messages with the compat32
parse of the whole message, on hand-picked odd inputs and on random ones (a fixed seed).
"""

from __future__ import annotations

import email.message
import random

import pytest
from aiosmtpd.lmtp import LMTP

from mr_engine.delivery.context import parse_message
from mr_engine.delivery.lmtp import LMTPProtocol
from mr_engine.delivery.lmtp_parsing import parse_single_part, simple_address

ADDRESSES = [
    "<user@example.com>", "<user@example.com> SIZE=2048", "<user@example.com>  BODY=8BITMIME",
    "<user@example.com>\tSIZE=1", "<user@example.com>(comment) SIZE=1",
    "<user@example.com> (comment)", "<>", "<> SIZE=10", "user@example.com", "",
    "<a.b.c@d.e.f>", "<a..b@c>", "<.a@b>", "<a.@b>", "<a@b.>", "<a@.b>", "<a@b..c>",
    "<\"quoted local\"@example.com>", "<a@[127.0.0.1]>", "< a@b>", "<a @b>", "<a@ b>",
    "<a@b >", "<=?utf-8?q?x?=@example.com>", "<a@=?utf-8?q?x?=>", "<@relay:a@b>",
    "<a@b@c>", "<a>", "<a@b", "<SRS0=HhB2=ZZ=example.org=alice@forward.example>",
    "<o'neil+tag@example.com>", "<x{y}|z~@example.com>", "<über@example.com>",
    "<user@example.com>\x0bSIZE=1", "<user@example.com>SIZE=1", "<a\\b@c>",
]
_ALPHABET = "ab.@<>\"( )\\[]=?:,;\t+-é1"


def _random_addresses(count: int) -> list[str]:
    rng = random.Random(2033)
    return ["<" + "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 14)))
            for _ in range(count)] + \
        [f"<{rng.choice(['a', 'a.b', 'x-y'])}@{rng.choice(['b', 'b.c'])}>"
         + "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 6)))
         for _ in range(count)]


def _read(protocol: LMTP, arg: str) -> object:
    """What ``_getaddr`` answers, or the exception it raises (the email parser has bugs
    on some inputs, and aiosmtpd then answers 500: ours must do the same)."""
    try:
        return protocol._getaddr(arg)
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return type(exc)


def _protocols() -> tuple[LMTP, LMTPProtocol]:
    return LMTP(object(), hostname="mx.test"), LMTPProtocol(object(), hostname="mx.test")


@pytest.mark.parametrize("arg", ADDRESSES)
def test_addresses_read_as_aiosmtpd_reads_them(arg):
    theirs, ours = _protocols()
    assert _read(ours, arg) == _read(theirs, arg)


def test_random_addresses_read_as_aiosmtpd_reads_them():
    theirs, ours = _protocols()
    args = _random_addresses(1500)
    assert [a for a in args if _read(ours, a) != _read(theirs, a)] == []
    assert sum(simple_address(a) is not None for a in args) > 300  # both paths were taken


def test_the_local_part_limit_still_holds():
    theirs, ours = _protocols()
    theirs.local_part_limit = ours.local_part_limit = 5
    for arg in ("<abcde@x.y>", "<abcdef@x.y>"):
        assert _read(ours, arg) == _read(theirs, arg)


def test_plain_addresses_take_the_cheap_path():
    assert simple_address("<user@example.com> SIZE=1") == ("user@example.com", "SIZE=1")
    assert simple_address("<\"q\"@example.com>") is None


HEAD = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n"
MESSAGES = [
    HEAD + b"\r\nbody\r\n", HEAD + b"\r\n", HEAD, b"", b"\r\n\r\n", b"\r\n\r\nbody",
    HEAD.replace(b"\r\n", b"\n") + b"\nbody\n", HEAD + b"\r\nline\r\n\r\n\r\nmore\r\n.\r\n",
    HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xc3\xbc\xff\r\n",
    HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
    HEAD + b"Content-Type: MULTIPART/alternative; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
    HEAD + b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n",
    HEAD + b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n",
    HEAD + b"Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\n",
    HEAD + b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
    HEAD + b"Content-Type: ;;;\r\n\r\nbroken type\r\n",
    HEAD + b"this line is no header\r\nX: y\r\n\r\nbody\r\n",
    b" leading white space\r\n" + HEAD + b"\r\nbody\r\n",
    b"From sender@example.com Mon Mar  2 08:00:00 2026\r\n" + HEAD + b"\r\nbody\r\n",
    HEAD + b"X-Folded: one\r\n two\r\n\tthree\r\n\r\nbody\r\n",
    HEAD + b"X-Bare-CR: a\rb\r\n\r\nbody\r\n", HEAD + b"X-Mixed: a\n\r\n\r\nbody\r\n",
    HEAD + b"\n\r\n\r\nbody after an LF-only blank line\r\n",
    HEAD + b"X-Eight-Bit: \xe9t\xe9\r\n\r\nbody\r\n", HEAD + b"X-Empty:\r\n\r\nbody\r\n",
    HEAD + b"Content-Transfer-Encoding: base64\r\n\r\nYm9keQ==\r\n",
    HEAD + b":no name\r\n\r\nbody\r\n", HEAD + b"X-Long: " + b"y" * 5000 + b"\r\n\r\nb\r\n",
]


def _state(message: email.message.Message) -> tuple:
    payload = message._payload  # type: ignore[attr-defined]
    if isinstance(payload, list):
        payload = [_state(part) for part in payload]
    return (message._unixfrom, message._headers, payload,  # type: ignore[attr-defined]
            message._charset, message.preamble, message.epilogue,  # type: ignore[attr-defined]
            message._default_type, [(type(d), str(d)) for d in message.defects])


@pytest.mark.parametrize("content", MESSAGES)
def test_messages_parse_as_the_full_parse_does(content):
    ours = parse_single_part(content, parse_message)
    assert _state(ours) == _state(parse_message(content))
    assert ours.as_bytes() == parse_message(content).as_bytes()


def _nested(depth: int) -> bytes:
    return b"Subject: deep\r\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)) + b"end\r\n"


def _depth(message: email.message.Message) -> int:
    depth = 0
    while message.is_multipart() and message.get_payload():
        message, depth = message.get_payload()[0], depth + 1
    return depth


def test_a_nesting_up_to_the_container_limit_is_parsed_in_full(caplog):
    assert _depth(parse_message(_nested(250))) == 250
    assert "not parsed" not in caplog.text


def test_a_nesting_past_the_container_limit_is_not_parsed_at_all(caplog):
    # Refused before the parser runs: it never gets to exhaust the recursion (whose unwinding
    # can fail again in finalizers), so the reason logged is the count, not RecursionError.
    message = parse_message(_nested(3000))
    assert _depth(message) == 0 and message["Subject"] == "deep"
    assert "more than 250 multipart or message parts" in caplog.text
    assert "RecursionError" not in caplog.text


def test_a_digest_of_many_messages_side_by_side_is_parsed_in_full(caplog):
    part = b"--d\r\nContent-Type: message/rfc822\r\n\r\nSubject: one\r\n\r\nbody\r\n"
    digest = b"Content-Type: multipart/digest; boundary=\"d\"\r\n\r\n" + part * 200 + b"--d--\r\n"
    message = parse_message(digest)
    assert len(message.get_payload()) == 200
    assert message.get_payload()[199].get_payload()[0]["Subject"] == "one"
