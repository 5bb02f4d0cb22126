"""Book-in and request-in lists: entries normalized or refused, whom they name, and when the
organizer counts as the one asking (``core.who_may_book``)."""

from __future__ import annotations

import pytest

from mr_engine.core.who_may_book import entries, matches, named, normalize, organizer_verified


@pytest.mark.parametrize(("text", "stored"), [
    ("all", "all"),
    (" ALL ", "all"),
    ("None", "none"),
    ("alice, Bob@Example.COM", "alice,bob@example.com"),
    ("group:Staff,GROUP:board", "group:Staff,group:board"),
    ("Domain:Example.ORG, internal", "domain:example.org,internal"),
    ("alice,alice,,", "alice"),
])
def test_a_list_is_stored_normalized(text: str, stored: str) -> None:
    assert normalize(text) == stored
    assert entries(stored) == tuple(stored.split(","))


@pytest.mark.parametrize(("text", "why"), [
    ("", "give at least one entry, or none"),
    (" , ", "give at least one entry, or none"),
    ("none,alice", "none cannot be combined"),
    ("domain:", "not a domain"),
    ("domain:exa mple.org", "not a domain"),
    ("domain:-x.org", "not a domain"),
    ("group:", "not an entry"),
    ("role:admin", "not an entry"),
    ("two words", "not an entry"),
    ("a@b@c", "not an entry"),
])
def test_a_bad_list_says_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        normalize(text)


SENDERS = ("alice@example.com", "", "bounce@lists.example.com")


@pytest.mark.parametrize(("level", "organizer", "authenticated", "verified"), [
    ("none", "anyone@evil.example", False, True),
    ("match", "alice@example.com", False, True),
    ("match", "ALICE@example.com", False, True),
    ("match", "bounce@lists.example.com", False, True),  # the envelope sender counts too
    ("match", "boss@example.com", False, False),
    ("match", "", False, False),
    ("authenticated", "alice@example.com", False, False),
    ("authenticated", "alice@example.com", True, True),
    ("authenticated", "boss@example.com", True, False),  # vouched, but not the sender
])
def test_organizer_verified(level: str, organizer: str, authenticated: bool,
                            verified: bool) -> None:
    assert organizer_verified(level, organizer, SENDERS, authenticated) is verified


STAFF = frozenset({"staff", "everyone"})


@pytest.mark.parametrize(("listed", "verified", "expected"), [
    (("all",), False, True),
    (("none",), True, False),
    (("alice",), True, True),
    (("alice",), False, False),
    (("Alice",), True, False),  # user names are exact
    (("alice@example.com",), True, True),
    (("group:STAFF",), True, True),
    (("group:board",), True, False),
    (("domain:example.com",), True, True),
    (("domain:sub.example.com",), True, False),
    (("internal",), True, True),
    (("bob", "internal"), False, False),
    (("bob", "all"), False, True),
])
def test_matches(listed: tuple[str, ...], verified: bool, expected: bool) -> None:
    assert matches(listed, verified, "Alice@Example.com", "alice", STAFF, True) is expected


def test_named_gives_what_the_directory_must_have() -> None:
    listed = entries(normalize("alice,group:staff,bob@example.com,domain:x.org,internal,all"))
    assert list(named(listed)) == [("user", "alice"), ("group", "staff")]
