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
