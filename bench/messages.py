"""The messages the benchmark sends: 2 KB plain mail and iMIP meeting requests.

Each is built once as a template (already dot-stuffed for the wire) and specialised per send
by replacing placeholders, so the client spends its CPU on talking, not on composing.
"""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

from mr_engine.testing.ical import ical_time
from mr_engine.testing.lmtp_client import dot_stuff

DOMAIN = "bench.example"
SENDER = f"sender@{DOMAIN}"
ORGANIZER = "organizer@remote.example"
MSGID = b"@@MSGID@@"


def plain_template(size: int = 2048) -> bytes:
    """A plain-text message of about ``size`` bytes, with a Message-ID placeholder."""
    head = (f"From: Bench Sender <{SENDER}>\r\n"
            f"To: Bench Users <users@{DOMAIN}>\r\n"
            "Subject: Benchmark message\r\n"
            "Date: Mon, 02 Mar 2026 08:00:00 +0000\r\n"
            "Message-ID: <@@MSGID@@>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog, 0123456789 times over.\r\n"
    body = b""
    while len(head) + len(body) + len(line) <= size:
        body += line
    body += b"x" * max(0, size - len(head) - len(body) - 2) + b"\r\n"
    return dot_stuff(head + body)


def with_message_id(template: bytes, message_id: str) -> bytes:
    return template.replace(MSGID, message_id.encode(), 1)


def invite_template(attendee: str) -> bytes:
    """An iMIP REQUEST (RFC 6047) for ``attendee`` as a plain client sends it; placeholders
    @@UID@@, @@START@@, @@END@@ and @@MSGID@@."""
    lines = [
        "BEGIN:VCALENDAR", "PRODID:-//mr-engine bench//EN", "VERSION:2.0", "METHOD:REQUEST",
        "BEGIN:VEVENT", "UID:@@UID@@", "SEQUENCE:0", "DTSTAMP:20260101T000000Z",
        "DTSTART:@@START@@", "DTEND:@@END@@", "SUMMARY:Benchmark meeting",
        f"ORGANIZER;CN=Organizer:mailto:{ORGANIZER}",
        f"ATTENDEE;CN=Resource;CUTYPE=RESOURCE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{attendee}",
        "END:VEVENT", "END:VCALENDAR",
    ]
    msg = EmailMessage()
    msg["From"] = f"Organizer <{ORGANIZER}>"
    msg["To"] = attendee
    msg["Subject"] = "Invitation: Benchmark meeting"
    msg.set_content("You are invited.")
    msg.add_alternative("\r\n".join(lines) + "\r\n", subtype="calendar",
                        params={"method": "REQUEST"})
    template = dot_stuff(b"Message-ID: <@@MSGID@@>\r\n" + msg.as_bytes())
    for placeholder in (b"@@UID@@", b"@@START@@", b"@@END@@", MSGID):
        if placeholder not in template:
            raise AssertionError(f"placeholder {placeholder!r} was encoded away")
    return template


def invite(template: bytes, uid: str, start: dt.datetime, end: dt.datetime,
           message_id: str) -> bytes:
    return (template.replace(b"@@UID@@", uid.encode(), 1)
            .replace(b"@@START@@", ical_time(start).encode(), 1)
            .replace(b"@@END@@", ical_time(end).encode(), 1)
            .replace(MSGID, message_id.encode(), 1))
