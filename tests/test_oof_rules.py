"""RFC 3834 auto-reply rules (pure) and the auto-reply message itself."""

from __future__ import annotations

import email
import email.policy

import pytest

from mr_engine.core.oof_rules import build_auto_reply, suppression_reason
from mr_engine.testing.times import NOW

USER = "alice@example.com"
SENDER = "bob@example.org"


def message(*extra: str, to: str = f"Alice <{USER}>", cc: str | None = None,
            subject: str = "Lunch?", raw: bytes = b"") -> email.message.Message:
    lines = [f"From: Bob <{SENDER}>", f"To: {to}", f"Subject: {subject}",
             "Message-ID: <orig@example.org>", *extra]
    if cc is not None:
        lines.append(f"Cc: {cc}")
    return email.message_from_bytes("\r\n".join(lines).encode() + raw + b"\r\n\r\nhello\r\n")


def reason(*extra: str, sender: str = SENDER, explicit: bool = True, **kw) -> str | None:
    return suppression_reason(sender, message(*extra, **kw), [USER], explicit)


def test_an_ordinary_message_gets_a_reply():
    assert reason() is None


@pytest.mark.parametrize("sender, expected", [
    ("", "null envelope sender"),
    ("<>", "null envelope sender"),
    (USER, "own address"),
    ("ALICE@Example.COM", "own address"),
    ("alice+lists@example.com", "own address"),
    ("MAILER-DAEMON@example.org", "system or list sender"),
    ("mailer-daemon@example.org", "system or list sender"),
    ("postmaster@example.org", "system or list sender"),
    ("root@example.org", "system or list sender"),
    ("LISTSERV@example.org", "system or list sender"),
    ("Majordomo@example.org", "system or list sender"),
    ("users-request@lists.example.org", "system or list sender"),
    ("Users-REQUEST@lists.example.org", "system or list sender"),
    ("owner-users@lists.example.org", "system or list sender"),
    ("OWNER-users@lists.example.org", "system or list sender"),
    ("no-at-sign", "invalid envelope sender"),
    ("a b@example.org", "invalid envelope sender"),
    ("a,b@example.org", "invalid envelope sender"),
    ("rootbeer@example.org", None),
    ("requester@example.org", None),
    ("bob-owner@example.org", None),
])
def test_envelope_sender_rules(sender, expected):
    got = reason(sender=sender)
    assert (got is None) if expected is None else (expected in got)


@pytest.mark.parametrize("header, suppressed", [
    ("Auto-Submitted: auto-generated", True),
    ("Auto-Submitted: auto-replied", True),
    ("Auto-Submitted: auto-notified", True),
    ("Auto-Submitted: whatever-else", True),
    ("Auto-Submitted:", True),
    ("Auto-Submitted: no", False),
    ("Auto-Submitted: No (sent by a human)", False),
    ("Auto-Submitted: no; param=1", False),
    ("Precedence: bulk", True),
    ("Precedence: list", True),
    ("Precedence: junk", True),
    ("Precedence: BULK", True),
    ("Precedence: first-class", False),
    ("List-Id: <users.lists.example.org>", True),
    ("List-Unsubscribe: <mailto:users-leave@example.org>", True),
    ("List-Post: <mailto:users@example.org>", True),
    ("List-Help: <mailto:users-help@example.org>", True),
    ("List-Subscribe: <mailto:users-join@example.org>", True),
    ("List-Owner: <mailto:owner@example.org>", True),
    ("List-Archive: <https://lists.example.org/users>", True),
    ("X-Auto-Response-Suppress: All", True),
    ("X-Auto-Response-Suppress: OOF", True),
    ("X-Auto-Response-Suppress: DR, OOF, AutoReply", True),
    ("X-Auto-Response-Suppress: dr, all", True),
    ("X-Auto-Response-Suppress: DR, RN, NRN", False),
    ("X-Spam-Flag: YES", True),
    ("X-Spam-Flag: yes", True),
    ("X-Spam-Flag: NO", False),
    ("X-Mailer: Thunderbird", False),
])
def test_header_rules(header, suppressed):
    assert (reason(header) is not None) == suppressed


@pytest.mark.parametrize("to, cc, explicit, replies", [
    (f"Alice <{USER}>", None, True, True),
    ("ALICE@EXAMPLE.COM", None, True, True),
    ("alice+work@example.com", None, True, True),
    ("team@example.com", f"x@example.net, {USER}", True, True),
    ('"Doe, Jane" <jane@example.net>, alice@example.com', None, True, True),
    ("team@example.com", None, True, False),
    ("undisclosed-recipients:;", None, True, False),
    ("<<<@@ broken", None, True, False),
    ("malice@example.com", None, True, False),
    ("team@example.com", None, False, True),
])
def test_user_must_be_named_in_to_or_cc(to, cc, explicit, replies):
    assert (reason(to=to, cc=cc, explicit=explicit) is None) == replies


def test_envelope_recipient_counts_as_the_users_address():
    msg = message(to="team@example.com")
    assert suppression_reason(SENDER, msg, [USER, "team@example.com"], True) is None


def test_undecodable_8bit_headers_do_not_crash_the_rules():
    msg = email.message_from_bytes(
        b"From: b\xf6b <bob@example.org>\r\nTo: Caf\xe9 <\xff@example.com>\r\n"
        b"X-Auto-Response-Suppress: \xff\xfe\r\nSubject: \xe9\r\n\r\nhi\r\n")
    assert suppression_reason(SENDER, msg, [USER], True) == "the user is not in To or Cc"


# --- the reply ----------------------------------------------------------------------------

def reply(original: email.message.Message | None = None, **kw) -> email.message.EmailMessage:
    args = dict(original=original or message("References: <a@x> <b@x>"), to=SENDER,
                from_name="Alice Liddell", from_address=USER, subject="Away until Monday",
                body="I am away.\nBack on Monday – Grüße.\n", now=NOW, hostname="mr.test")
    args.update(kw)
    raw = build_auto_reply(**args)
    assert all(line.endswith(b"\r") or not line for line in raw.split(b"\n")[:-1])
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_reply_headers_follow_rfc_3834():
    r = reply()
    assert r["From"] == f"Alice Liddell <{USER}>"
    assert r["To"] == SENDER
    assert r["Subject"] == "Away until Monday [Lunch?]"
    assert r["In-Reply-To"] == "<orig@example.org>"
    assert r["References"] == "<a@x> <b@x> <orig@example.org>"
    assert r["Auto-Submitted"] == "auto-replied"
    assert r["X-Auto-Response-Suppress"] == "All"
    assert r["Precedence"] == "bulk"
    assert r["Date"].datetime == NOW
    assert r["Message-ID"].endswith("@mr.test>")
    assert r.get_content_type() == "text/plain" and r.get_content_charset() == "utf-8"
    assert r.get_content().replace("\r\n", "\n") == "I am away.\nBack on Monday – Grüße.\n"
    assert all(b < 128 for b in reply().as_bytes())


def test_default_subject_and_references_from_in_reply_to():
    r = reply(message("In-Reply-To: <parent@x>"), subject="")
    assert r["Subject"] == "Out of office [Lunch?]"
    assert r["References"] == "<parent@x> <orig@example.org>"


def test_encoded_original_subject_is_decoded_and_no_message_id_means_no_threading():
    original = email.message_from_bytes(
        b"From: bob@example.org\r\nTo: alice@example.com\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nhi\r\n")
    r = reply(original)
    assert r["Subject"] == "Away until Monday [Grüße]"
    assert r["In-Reply-To"] is None and r["References"] is None


@pytest.mark.parametrize("field, value", [
    ("subject", "Away\r\nBcc: victim@example.net"),
    ("from_name", "Alice\r\nBcc: victim@example.net"),
    ("original", "Subject: =?utf-8?q?hi=0D=0ABcc:_victim@example.net?="),
    ("original", "Message-ID: <x@y>\r\n\tBcc: victim@example.net"),
    ("original", "References: <x@y>\r\n Bcc: victim@example.net"),
])
def test_no_header_injection_from_input(field, value):
    if field == "original":
        name, _, rest = value.partition(": ")
        raw = (f"From: bob@example.org\r\nTo: {USER}\r\n{name}: {rest}\r\n\r\nhi\r\n")
        r = reply(email.message_from_bytes(raw.encode()))
    else:
        r = reply(**{field: value})
    assert r["Bcc"] is None
    assert not any(line.lower().startswith(b"bcc:") for line in r.as_bytes().split(b"\r\n"))


def test_raw_latin1_subject_still_makes_a_readable_reply():
    original = email.message_from_bytes(b"From: bob@example.org\r\nTo: alice@example.com\r\n"
                                        b"Subject: caf\xe9 \xff\r\n\r\nhi\r\n")
    assert reply(original)["Subject"] == "Away until Monday [caf\u00e9 \u00ff]"


def test_overlong_references_are_trimmed_keeping_the_first():
    ids = " ".join(f"<r{i}@x>" for i in range(50))
    refs = reply(message(f"References: {ids}"))["References"].split()
    assert len(refs) == 20 and refs[0] == "<r0@x>" and refs[-1] == "<orig@example.org>"
