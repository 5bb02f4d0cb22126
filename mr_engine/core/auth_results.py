"""Reading ``Authentication-Results`` header fields (RFC 8601) and what they vouch for.

An MTA or milter that checked a message (DMARC, SMTP AUTH) records it as

    Authentication-Results: mx.example.org; dmarc=pass (p=reject) header.from=example.org;
        auth=pass smtp.auth=alice@example.org

The first part is the *authserv-id*, the name of the checking service (§2.2); only results
of services listed in ``trusted_authserv_ids`` count, because anyone can write such a header
into a message: the MTA must remove fields carrying its own authserv-id from mail arriving
from outside (§5), as OpenDMARC and Postfix do.

Pure and lenient: a field that cannot be read is skipped, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

__all__ = ["AuthResults", "MethodResult", "parse", "vouches_for"]

_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^\s;="]+|=|;)')


@dataclass(frozen=True)
class MethodResult:
    """One resinfo (§2.2): ``method=result`` and its ``ptype.property=value`` pairs."""

    method: str  # lower-cased, without a /version
    result: str  # lower-cased
    properties: dict[str, str] = field(default_factory=dict)  # "header.from": "example.org"


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str  # lower-cased
    results: tuple[MethodResult, ...]


def _without_comments(text: str) -> str:
    """CFWS comments (RFC 5322 §3.2.2), nested ones too, outside quoted strings."""
    out, depth, quoted, escaped = [], 0, False, False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"' and not depth:
            quoted = not quoted
        elif not quoted and char in "()":
            depth = max(depth + (1 if char == "(" else -1), 0)
            out.append(" ")
            continue
        if not depth:
            out.append(char)
    return "".join(out)


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _tokens(text: str) -> list[str]:
    return [match.group(1) for match in _TOKEN.finditer(text)]


def _parts(tokens: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token == ";":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _pairs(tokens: list[str]) -> list[tuple[str, str]]:
    """``a=b`` pairs of a resinfo's tokens, in order; anything else is skipped."""
    return [(tokens[k].lower(), _unquote(tokens[k + 2]))
            for k in range(len(tokens) - 2) if tokens[k + 1] == "=" and tokens[k] != "="]


def _result(tokens: list[str]) -> MethodResult | None:
    pairs = _pairs(tokens)
    if not pairs:
        return None
    (method, result), rest = pairs[0], pairs[1:]
    properties = {name: value for name, value in rest if "." in name}
    return MethodResult(method.split("/")[0], result.lower(), properties)


def parse(value: str) -> AuthResults | None:
    """One header field's value; None when it has no authserv-id."""
    parts = _parts(_tokens(_without_comments(value)))
    head = parts[0]
    if not head or head[0] in ("=", ";"):
        return None
    results = tuple(r for r in map(_result, parts[1:]) if r is not None)
    return AuthResults(_unquote(head[0]).lower(), results)


def _vouches(result: MethodResult, organizer: str, user: str) -> bool:
    """DMARC passed for the organizer's domain (RFC 7489 §11.2, ``header.from``), or the
    organizer (its address or user name) submitted it authenticated (RFC 8601 §2.7.4)."""
    if result.result != "pass":
        return False
    domain = organizer.rpartition("@")[2].lower()
    if result.method == "dmarc":
        return bool(domain) and result.properties.get("header.from", "").lower() == domain
    who = result.properties.get("smtp.auth", "").lower()
    return result.method == "auth" and bool(who) and who in {organizer.lower(), user.lower()}


def vouches_for(values: Iterable[str], trusted: Collection[str], organizer: str,
                user: str = "") -> bool:
    """Whether a field from a trusted authserv-id vouches for the organizer (``user``: its
    directory user name, which ``smtp.auth`` may give instead of the address)."""
    wanted = {t.lower() for t in trusted}
    fields = (parsed for parsed in map(parse, values) if parsed is not None)
    return any(_vouches(result, organizer, user)
               for parsed in fields if parsed.authserv_id in wanted
               for result in parsed.results)
