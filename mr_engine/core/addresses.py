"""E-mail addresses as recipients are written: subaddressing (RFC 5233)."""

from __future__ import annotations


def strip_detail(address: str) -> str:
    """``user+detail@domain`` → ``user@domain`` (subaddressing, RFC 5233)."""
    local, at, domain = address.rpartition("@")
    base, plus, _detail = local.partition("+")
    return f"{base}@{domain}" if at and plus and base else address
