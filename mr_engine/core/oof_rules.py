"""Out-of-office auto-replies: when not to answer (RFC 3834), and the reply itself. Pure.

``suppression_reason`` is as strict as Dovecot Pigeonhole's vacation extension (RFC 5230):
no reply to the null sender, system and list senders, automatic or bulk mail, mailing lists,
spam, or mail that does not name the user in To/Cc. ``build_auto_reply`` makes the reply
(RFC 3834 §3). The once-per-interval check and the queueing are ``services.oof``'s.
"""

from __future__ import annotations

import datetime as dt
import email.errors
import email.message
import email.utils
import re
from typing import Callable, Sequence

from mr_engine.core.addresses import strip_detail
from mr_engine.core.headers import header_text
from mr_engine.core.outgoing import (AUTO_REPLY_HEADERS, AddressError, address_header, date_header, field,
                                message, message_ids, new_message_id, parse_mailbox,
                                text_header, text_part, thread_headers)

DEFAULT_SUBJECT = "Out of office"
# Pigeonhole's list plus postmaster and root: addresses that never read their replies.
SYSTEM_LOCALPARTS = frozenset({"mailer-daemon", "postmaster", "root", "listserv", "majordomo"})
# RFC 2369 and RFC 2919 list headers: any of them marks mailing-list traffic.
LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post", "List-Help", "List-Subscribe",
                "List-Owner", "List-Archive")
BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
MAX_QUOTED_SUBJECT = 256


# --- reading untrusted headers ------------------------------------------------------------

def _values(message: email.message.Message, name: str) -> list[str]:
    return [header_text(v) for v in message.get_all(name, [])]


def normalize(address: str) -> str:
    """Lower-cased, without ``+detail`` (RFC 5233), for comparing addresses."""
    return strip_detail(address.strip().lower())


def _valid_address(address: str) -> bool:
    """Usable as the reply's recipient (the strict check the reply's builder makes)."""
    try:
        parse_mailbox(address)
    except AddressError:
        return False
    return True


# --- the rules ------------------------------------------------------------------------------

Rule = Callable[[str, email.message.Message, frozenset[str]], "str | None"]


def _sender(sender: str, message: email.message.Message, own: frozenset[str]) -> str | None:
    if not sender:
        return "null envelope sender"  # RFC 3834 §2: never reply to <>
    if not _valid_address(sender):
        return "invalid envelope sender"
    if normalize(sender) in own:
        return "sender is the user's own address"
    local = sender.rpartition("@")[0].lower()
    if local in SYSTEM_LOCALPARTS or local.endswith("-request") or local.startswith("owner-"):
        return f"system or list sender {local}"
    return None


def _auto_submitted(sender: str, message: email.message.Message,
                    own: frozenset[str]) -> str | None:
    # RFC 3834 §5.1: anything but "no" (comments and parameters aside) is automatic.
    for value in _values(message, "Auto-Submitted"):
        keyword = re.sub(r"\([^)]*\)", "", value).split(";")[0].strip().lower()
        if keyword != "no":
            return f"Auto-Submitted: {keyword or '(empty)'}"
    return None


def _bulk(sender: str, message: email.message.Message, own: frozenset[str]) -> str | None:
    for value in _values(message, "Precedence"):
        if value.strip().lower() in BULK_PRECEDENCE:
            return f"Precedence: {value.strip().lower()}"
    for name in LIST_HEADERS:
        if message.get(name) is not None:
            return f"mailing list ({name})"
    return None


def _suppressed(sender: str, message: email.message.Message, own: frozenset[str]) -> str | None:
    # [MS-OXCMAIL] §2.2.3.2.14: a comma-separated list; All or OOF means no OOF reply.
    for value in _values(message, "X-Auto-Response-Suppress"):
        tokens = set(re.split(r"[\s,;]+", value.lower()))
        if tokens & {"all", "oof"}:
            return f"X-Auto-Response-Suppress: {value}"
    if any(v.strip().upper() == "YES" for v in _values(message, "X-Spam-Flag")):
        return "X-Spam-Flag: YES"
    return None


def _explicit(sender: str, message: email.message.Message, own: frozenset[str]) -> str | None:
    # RFC 3834 §2: a responder should only answer mail addressed to the user explicitly.
    named = email.utils.getaddresses(_values(message, "To") + _values(message, "Cc"))
    if any(normalize(addr) in own for _name, addr in named if addr):
        return None
    return "the user is not in To or Cc"


RULES: tuple[Rule, ...] = (_sender, _auto_submitted, _bulk, _suppressed)


def suppression_reason(envelope_sender: str, message: email.message.Message,
                       user_addresses: Sequence[str], require_explicit: bool) -> str | None:
    """Why no auto-reply may be sent to this message, or None if one may."""
    sender = envelope_sender.strip()
    sender = "" if sender == "<>" else sender
    own = frozenset(normalize(a) for a in user_addresses if a)
    rules = RULES + ((_explicit,) if require_explicit else ())
    for rule in rules:
        reason = rule(sender, message, own)
        if reason:
            return reason
    return None


# --- the reply ------------------------------------------------------------------------------

def _references(original: email.message.Message, parent: str | None) -> list[str]:
    """RFC 5322 §3.6.4: the parent's References (else its In-Reply-To) plus its Message-ID."""
    refs = message_ids(" ".join(_values(original, "References")))
    if not refs:
        in_reply_to = message_ids(" ".join(_values(original, "In-Reply-To")))
        refs = in_reply_to if len(in_reply_to) == 1 else []
    refs = refs + [parent] if parent else refs
    # Bounded: the first and the latest ids keep the thread together (RFC 5322 allows trimming).
    return refs if len(refs) <= 20 else refs[:1] + refs[-19:]


def reply_subject(oof_subject: str, original: email.message.Message) -> str:
    subject = header_text(oof_subject) or DEFAULT_SUBJECT
    quoted = header_text(original.get("Subject", ""))[:MAX_QUOTED_SUBJECT]
    # Deliberate: with no original subject there is nothing to quote, so no empty "[]".
    return f"{subject} [{quoted}]" if quoted else subject


def build_auto_reply(*, original: email.message.Message, to: str, from_name: str,
                     from_address: str, subject: str, body: str, now: dt.datetime,
                     hostname: str) -> bytes:
    """The auto-reply (RFC 3834 §3) to ``original``, sent to ``to`` (its envelope sender).

    Raises ``outgoing.AddressError`` (a ValueError) when an address is unusable.
    """
    parent = next(iter(message_ids(" ".join(_values(original, "Message-ID")))), None)
    headers = [
        address_header("From", header_text(from_name), parse_mailbox(header_text(from_address))),
        address_header("To", "", parse_mailbox(to)),
        text_header("Subject", reply_subject(subject, original)),
        date_header(now.astimezone(dt.timezone.utc)),
        field("Message-ID", new_message_id(header_text(hostname), "oof")),
        *thread_headers(parent, _references(original, parent)),
        *AUTO_REPLY_HEADERS,
        field("Precedence", "bulk")]
    return message(headers, [text_part(body)])
