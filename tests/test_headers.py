"""Untrusted header values read as one line of text (listings, auto-replies)."""

import email
import email.policy

import pytest

from mr_engine.core.headers import header_text


@pytest.mark.parametrize("raw, text", [
    (b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= and more", "Grüße and more"),
    ("Grüße aus Köln".encode(), "Grüße aus Köln"),          # raw UTF-8
    (b"caf\xe9", "café"),                                   # raw Latin-1
    (b"=?utf-8?q?broken", "=?utf-8?q?broken"),               # broken encoded-word kept
    (b"=?x-unknown?q?abc?=", "abc"),                          # unknown charset
    (b"folded\r\n\tline", "folded line"),
    (b"=?utf-8?q?a=0D=0AInjected:_x?=", "a Injected: x"),    # no CR/LF comes out
])
def test_header_text(raw, text):
    message = email.message_from_bytes(b"Subject: " + raw + b"\r\n\r\n",
                                       policy=email.policy.compat32)
    assert header_text(message.get("Subject")) == text


def test_missing_header_is_empty():
    assert header_text(None) == ""
