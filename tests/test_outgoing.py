"""mr_engine.outgoing: addresses (RFC 5321/5322/6531, IDNA), header fields and parts, parsed back."""

from __future__ import annotations

import email
import email.policy
import quopri
from email.header import decode_header, make_header

import pytest

from mr_engine.core.outgoing import (AddressError, address_header, calendar_part, field,
                                fold_content_line, message, message_ids, one_line,
                                parse_mailbox, text_header, text_part, thread_headers)

# --- addresses --------------------------------------------------------------------------------

# address, how the envelope and an ASCII-only header carry it, whether SMTPUTF8 is needed
ACCEPTED = [
    ("alice@example.org", "alice@example.org", False),
    ("  Alice.O'Brien+tag@Example.ORG ", "Alice.O'Brien+tag@Example.ORG", False),
    ("a!#$%&'*+-/=?^_`{|}~b@example.org", "a!#$%&'*+-/=?^_`{|}~b@example.org", False),
    ("bob@localhost", "bob@localhost", False),
    ("bob@[192.0.2.1]", "bob@[192.0.2.1]", False),
    ("bob@[IPv6:2001:DB8::1]", "bob@[IPv6:2001:db8::1]", False),
    ("juergen@bücher.example", "juergen@xn--bcher-kva.example", False),  # RFC 5890 A-labels
    ("juergen@BÜCHER.Example", "juergen@xn--bcher-kva.Example", False),
    ("juergen@xn--bcher-kva.example", "juergen@xn--bcher-kva.example", False),
    ("jürgen@bücher.example", "jürgen@bücher.example", True),  # RFC 6531: UTF-8 throughout
    ("jürgen@xn--bcher-kva.example", "jürgen@bücher.example", True),
    ("jürgen@example.org", "jürgen@example.org", True),
    ("用户@例子.广告", "用户@例子.广告", True),
    ("ju\u0308rgen@example.org", "jürgen@example.org", True),  # NFC, RFC 6532 §3.1
]

# address, what the error says
REFUSED = [
    ("", "it is empty"),
    ("   ", "it is empty"),
    ("@example.org", "the local part is empty"),
    ("alice", "it has no @domain"),
    ("alice@", "the domain is empty"),
    ("@@", "more than one @"),
    ("a@@example.org", "more than one @"),
    ("a@b@example.org", "more than one @"),
    ("alice smith@example.org", "space"),
    ("alice@exa mple.org", "space"),
    ("alice\u00a0smith@example.org", "space"),
    ("ali\x00ce@example.org", "control character"),
    ("alice@example.org\r\nBcc: victim@example.net", "control character"),
    ("al\x1bice@example.org", "control character"),
    ("ali\u0085ce@example.org", "control character"),
    ('"alice smith"@example.org', "space"),
    ('"alice"@example.org', "quoted local parts"),
    (".alice@example.org", "not a dot-atom"),
    ("alice.@example.org", "not a dot-atom"),
    ("al..ice@example.org", "not a dot-atom"),
    ("al,ice@example.org", "not a dot-atom"),
    ("<alice@example.org>", "not a dot-atom"),
    ("ali\u200bce@example.org", "not a dot-atom"),
    ("a" * 65 + "@example.org", "longer than 64 octets"),
    ("ü" * 33 + "@example.org", "longer than 64 octets"),
    ("alice@example..org", "not a host name"),
    ("alice@.example.org", "not a host name"),
    ("alice@example.org.", "not a host name"),
    ("alice@-example.org", "not a host name"),
    ("alice@exa_mple.org", "not a host name"),
    ("alice@exa,mple.org", "not a host name"),
    ("alice@" + "a" * 64 + ".org", "not a host name"),
    ("alice@" + ".".join(["a" * 60] * 5), "not a host name"),
    ("alice@\u200bexample.org", "not a host name"),
    ("alice@[300.1.1.1]", "not an address literal"),
    ("alice@[IPv6:zz::1]", "not an address literal"),
    ("alice@[192.0.2.1", "not an address literal"),
    ("alice@straße.de", "IDNA 2003 and IDNA 2008"),
]


@pytest.mark.parametrize("address, addr_spec, smtputf8", ACCEPTED)
def test_accepted_addresses(address, addr_spec, smtputf8):
    mailbox = parse_mailbox(address)
    assert (mailbox.addr_spec, mailbox.needs_smtputf8) == (addr_spec, smtputf8)
    assert mailbox.ascii_domain.isascii()


@pytest.mark.parametrize("address, problem", REFUSED)
def test_refused_addresses_say_why(address, problem):
    with pytest.raises(AddressError, match=problem) as refused:
        parse_mailbox(address)
    assert isinstance(refused.value, ValueError)  # the contract callers rely on
    assert repr(address)[:60] in str(refused.value) and "\n" not in str(refused.value)
    assert len(str(refused.value)) < 300  # a readable log line, however long the address


# --- header fields ----------------------------------------------------------------------------

def parsed(*headers: str) -> email.message.EmailMessage:
    raw = message(list(headers), [text_part("hi")])
    return email.message_from_bytes(raw, policy=email.policy.default)


def assert_folded(header: str, limit: int = 78) -> None:
    lines = header.split("\n")
    assert all(len(line) <= limit for line in lines), lines
    assert all(line.startswith(" ") for line in lines[1:])  # RFC 5322 §2.2.3 continuation


@pytest.mark.parametrize("subject", [
    "Accepted: Weekly planning",
    "Accepted: " + "planning " * 40,
    "Declined: " + "x" * 300,  # one word longer than a line: encoded-words, which fold
    "Weekly planning – Büro",
    "会议" * 300,
    "😀" * 100,  # 4-octet characters are never split between encoded-words (RFC 2047 §5)
    "Looks like =?utf-8?q?an_encoded_word?=",
])
def test_subject_folds_within_78_and_round_trips(subject):
    header = text_header("Subject", subject)
    assert_folded(header)
    assert header.isascii()
    assert " ".join(parsed(header)["Subject"].split()) == " ".join(subject.split())


def test_encoded_words_are_at_most_75_characters():
    for word in text_header("Subject", "ä" * 500).split():
        assert len(word) <= 75 or not word.startswith("=?")


@pytest.mark.parametrize("name", [
    "Alice Liddell", "Smith, John (Facilities)", 'Say "hi" \\ bye', "Jürgen Müller",
    "Dr. " + "Jürgen Müller-Lüdenscheidt " * 6, "Room (1) " * 20, "A" * 150, "ü" * 150])
def test_display_names_fold_and_round_trip(name):
    header = address_header("To", name, parse_mailbox("juergen@bücher.example"))
    assert_folded(header)
    phrase, _, addr_spec = header.removeprefix("To: ").rpartition(" ")
    assert addr_spec == "<juergen@xn--bcher-kva.example>"
    if phrase.startswith("=?"):  # an RFC 2047 decoder gives back the name exactly
        assert str(make_header(decode_header(phrase))) == one_line(name)
    [address] = parsed(header)["To"].addresses  # Python's own, which keeps the folds' spaces
    assert address.display_name.split() == one_line(name).split() or " " not in name


def test_no_display_name_is_the_bare_address():
    assert address_header("To", " ", parse_mailbox("bob@example.org")) == "To: bob@example.org"


def test_utf8_local_part_is_an_rfc_6532_header():
    header = address_header("To", "Jürgen", parse_mailbox("jürgen@bücher.example"))
    assert header.endswith(" <jürgen@bücher.example>")
    assert header.split(" <")[0].isascii()  # the display name is still encoded-words


def test_message_ids_and_threading():
    ids = message_ids("<a@x> junk <b@x>\r\nBcc: v@x <" + "c" * 950 + "@x> <ü@x>")
    assert ids == ["<a@x>", "<b@x>"]
    in_reply_to, references = thread_headers("<b@x>", [f"<r{i}@example.org>" for i in range(20)])
    assert in_reply_to == "In-Reply-To: <b@x>"
    assert_folded(references)
    assert parsed(references)["References"].split() == [f"<r{i}@example.org>" for i in range(20)]
    assert thread_headers(None, []) == []


def test_field_cannot_carry_a_line_break():
    assert field("Auto-Submitted", "auto-replied\r\nBcc: v@x") == \
        "Auto-Submitted: auto-replied Bcc: v@x"


# --- iCalendar content lines (RFC 5545 §3.1) ---------------------------------------------------

@pytest.mark.parametrize("line", [
    "SUMMARY:short", "SUMMARY:" + "x" * 67, "SUMMARY:" + "x" * 68, "SUMMARY:" + "x" * 500,
    "SUMMARY:" + "ü" * 300, "SUMMARY:" + "会议" * 200, "SUMMARY:" + "😀a" * 150,
    "COMMENT:" + "a\\;" * 100, "ATTENDEE;CN=" + "^n^^" * 60 + ":mailto:a@b.org",
    "SUMMARY:" + "ab\\\\" * 80])
def test_content_lines_fold_at_75_octets_by_octets(line):
    folded = fold_content_line(line)
    pieces = folded.split("\n")
    assert all(len(piece.encode()) <= 75 for piece in pieces)
    assert all(piece.startswith(" ") for piece in pieces[1:])
    assert "".join([pieces[0], *(p[1:] for p in pieces[1:])]) == line  # unfolds to the line
    for piece in pieces[:-1]:  # no escape (\; \\ ^n ^^) is cut in two
        assert (len(piece) - len(piece.rstrip("\\"))) % 2 == 0
        assert (len(piece) - len(piece.rstrip("^"))) % 2 == 0


def test_calendar_part_is_7bit_when_ascii_and_round_trips():
    lines = ["BEGIN:VCALENDAR", "SUMMARY:" + "x" * 200, "END:VCALENDAR", ""]
    part = calendar_part(lines, "REPLY")
    assert part.headers == ('Content-Type: text/calendar; charset="utf-8"; method=REPLY',
                            "Content-Transfer-Encoding: 7bit")
    assert part.body == "BEGIN:VCALENDAR\n" + fold_content_line(lines[1]) + "\nEND:VCALENDAR\n"


# --- parts and the message --------------------------------------------------------------------

def test_short_ascii_text_is_7bit_anything_else_quoted_printable():
    assert text_part("hello\n").headers[1] == "Content-Transfer-Encoding: 7bit"
    for text in ["Grüße\n", "x" * 79 + "\n", "tab\tand a long line " * 10]:
        part = text_part(text)
        assert part.headers[1] == "Content-Transfer-Encoding: quoted-printable"
        assert all(len(line) <= 76 for line in part.body.split("\n"))  # RFC 2045 §6.7
        assert quopri.decodestring(part.body.encode()).decode() == text.rstrip("\n") + "\n"


def test_message_is_crlf_and_multipart_alternative():
    raw = message(["Subject: s"], [text_part("a\r\nb\rc\n"), text_part("BEGIN:X\r\n", "calendar",
                                                                         method="REPLY")])
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    plain, calendar = msg.get_payload()
    assert msg.get_content_type() == "multipart/alternative"
    assert plain.get_content().replace("\r\n", "\n") == "a\nb\nc\n"
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REPLY" and calendar.get_content_charset() == "utf-8"
