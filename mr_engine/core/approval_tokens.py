"""Approval tokens and the addresses that carry them: ``room+approve-<token>@domain``.

A token names one pending approval and proves it was made by this engine: it is the
approval's id and an HMAC-SHA256 (RFC 2104) of that id and the approval's own random nonce,
keyed with a secret kept in the store. Nobody without the secret can make one, a token of an
approval that was replaced or decided names a row that is no longer pending, and the nonce
keeps a reused id (a restored store) from reviving an old token. The MAC is cut to 100 bits
(RFC 2104 §5 allows truncation to no less than half the hash), written in lower-case base32,
so that it survives an MTA that folds the case of local parts.

The token rides in the ``+detail`` of the resource's address, so an address of the
resource's domain delivers it (``directory.resolve`` strips the detail): the local part
stays within RFC 5321's 64 octets for resource names of up to 25 characters.

Pure: the secret and the nonce come in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["APPROVE", "DECLINE", "Ask", "address", "ask_of", "genuine", "make", "parse"]

APPROVE, DECLINE = "approve", "decline"
_MAC_CHARS = 20  # base32: 5 bits each


@dataclass(frozen=True)
class Ask:
    """What an approve or decline address asks: the decision, for which token."""

    action: str  # APPROVE | DECLINE
    token: str


def _mac(secret: bytes, approval_id: int, nonce: str) -> str:
    digest = hmac.new(secret, f"{approval_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:_MAC_CHARS].lower()


def make(secret: bytes, approval_id: int, nonce: str) -> str:
    """The token of one approval: ``<id>-<mac>``."""
    return f"{approval_id}-{_mac(secret, approval_id, nonce)}"


def parse(token: str) -> int | None:
    """The approval id a token claims, or None when it is not shaped like one."""
    number, dash, mac = token.strip().lower().partition("-")
    if not dash or not number.isdigit() or len(number) > 9 or len(mac) != _MAC_CHARS:
        return None
    return int(number)


def genuine(secret: bytes, token: str, approval_id: int, nonce: str) -> bool:
    """Whether ``token`` is the one made for the approval (constant-time comparison)."""
    wanted = make(secret, approval_id, nonce)
    return hmac.compare_digest(wanted.encode(), token.strip().lower().encode())


def address(resource_email: str, action: str, token: str) -> str:
    """``local+<action>-<token>@domain`` of the resource's address."""
    local, _, domain = resource_email.rpartition("@")
    return f"{local}+{action}-{token}@{domain}"


def ask_of(recipient: str) -> Ask | None:
    """The decision an envelope recipient asks for, or None for any other address."""
    local, at, _domain = recipient.strip().strip("<>").rpartition("@")
    _user, plus, detail = local.partition("+")
    if not at or not plus:
        return None
    action, dash, token = detail.lower().partition("-")
    if action not in (APPROVE, DECLINE) or not dash or not token:
        return None
    return Ask(action, token)
