"""Who may book a resource: whether the organizer is who sent the request, and the book-in and
request-in lists that name who books at once and who with approval.

A list (``--mr-book-in``, ``--mr-request-in``) is comma-separated entries: a user name or an
address, ``group:NAME`` (its members, nested groups included), ``domain:example.org``,
``internal`` (organizers in a local domain), ``all`` or ``none``. It is kept as the
normalized comma list (``normalize``) and read back as its entries (``entries``).

The ORGANIZER of an iTIP request is just a property anyone can write (RFC 5546 §6.1 leaves
verifying it to the transport), so it counts as the one asking only when it is verified at
the resource's level (``--mr-verify-organizer``):

* ``none``: always;
* ``match``: it is the message's From, Sender or envelope sender;
* ``authenticated``: that, and a trusted Authentication-Results header vouches for it
  (``core.auth_results``).

An unverified organizer is matched only by ``all``, so the defaults (book-in ``all``) accept
what they always did. Pure: the directory's answers (user name, groups, local domain) come
in as facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["ALL", "NONE", "VERIFY_LEVELS", "domain_of", "entries", "matches", "named",
           "normalize", "organizer_verified"]

VERIFY_LEVELS = ("none", "match", "authenticated")
ALL, NONE, INTERNAL = "all", "none", "internal"
GROUP, DOMAIN = "group:", "domain:"
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_NAME = re.compile(r"[^\s,:@]+")
_ADDRESS = re.compile(r"[^\s,@]+@[^\s,@]+")


def domain_of(address: str) -> str:
    """The domain of an address, lower-cased; "" when it has none."""
    local, at, domain = address.rpartition("@")
    return domain.lower() if at and local else ""


def _entry(text: str) -> str:
    """One entry, written the one way; ValueError naming what is wrong with it."""
    word = text.strip()
    lowered = word.lower()
    if lowered in (ALL, NONE, INTERNAL):
        return lowered
    if lowered.startswith(GROUP) and word[len(GROUP):].strip():
        return GROUP + word[len(GROUP):].strip()
    if lowered.startswith(DOMAIN):
        domain = lowered[len(DOMAIN):].strip()
        if _DOMAIN.fullmatch(domain):
            return DOMAIN + domain
        raise ValueError(f"not a domain: {word!r}")
    if _ADDRESS.fullmatch(word):
        return lowered
    if _NAME.fullmatch(word):
        return word
    raise ValueError(f"not an entry: {word!r} (a user name or address, group:NAME, "
                     "domain:DOMAIN, internal, all or none)")


def normalize(text: str) -> str:
    """The list as stored: entries normalized, repeats dropped, comma-separated."""
    found = list(dict.fromkeys(_entry(part) for part in text.split(",") if part.strip()))
    if not found:
        raise ValueError("give at least one entry, or none")
    if NONE in found and len(found) > 1:
        raise ValueError("none cannot be combined with other entries")
    return ",".join(found)


def entries(stored: str) -> tuple[str, ...]:
    """The entries of a stored list."""
    return tuple(part for part in stored.split(",") if part)


def named(listed: Sequence[str]) -> Iterator[tuple[str, str]]:
    """What a list names in the directory: ("user", NAME) and ("group", NAME) pairs."""
    for entry in listed:
        if entry.startswith(GROUP):
            yield "group", entry[len(GROUP):]
        elif entry not in (ALL, NONE, INTERNAL) and not entry.startswith(DOMAIN) \
                and "@" not in entry:
            yield "user", entry


def organizer_verified(level: str, organizer: str, senders: Iterable[str],
                       authenticated: bool) -> bool:
    """Whether the organizer counts as the one asking, at ``level`` (see above).
    ``senders``: the From, Sender and envelope sender addresses ("" when absent)."""
    if level == "none":
        return True
    matched = bool(organizer) and organizer.lower() in {s.lower() for s in senders if s}
    return matched and (level == "match" or authenticated)


def _matches_entry(entry: str, organizer: str, user: str, groups: frozenset[str],
                   internal: bool) -> bool:
    if entry == INTERNAL:
        return internal
    if entry.startswith(GROUP):
        return entry[len(GROUP):].casefold() in groups
    if entry.startswith(DOMAIN):
        return domain_of(organizer) == entry[len(DOMAIN):]
    if "@" in entry:
        return organizer.lower() == entry
    return bool(user) and user == entry


def matches(listed: Sequence[str], verified: bool, organizer: str, user: str = "",
            groups: frozenset[str] = frozenset(), internal: bool = False) -> bool:
    """Whether the list names the organizer. ``user``: its directory user name ("" for
    none); ``groups``: the groups it belongs to, nested ones included, case-folded;
    ``internal``: its domain is a local one. Unverified, only ``all`` names it."""
    if ALL in listed:
        return True
    return verified and any(_matches_entry(entry, organizer, user, groups, internal)
                            for entry in listed)
