"""Plain (non-calendar) messages for delivery tests."""

from __future__ import annotations


def msg(subject: str = "Hello", message_id: str | None = "<m1@example.com>",
        body: str = "Hi there.\r\n", extra: str = "") -> bytes:
    """A short message from a remote sender to alice; ``extra`` is more header lines."""
    mid = f"Message-ID: {message_id}\r\n" if message_id else ""
    return (f"From: Sender <sender@remote.example>\r\nTo: alice@example.com\r\n"
            f"Subject: {subject}\r\n{mid}{extra}\r\n{body}").encode()
