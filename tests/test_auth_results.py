"""Authentication-Results (RFC 8601): the parser, and when a field vouches for an organizer
(only from a trusted authserv-id: DMARC passed for its domain, or it submitted the message
authenticated)."""

from __future__ import annotations

import pytest

from mr_engine.core.auth_results import AuthResults, MethodResult, parse, vouches_for

MX = ("mx.example.com; spf=pass smtp.mailfrom=example.com;\r\n"
      " dkim=pass (1024-bit key) header.d=example.com header.s=s1;\r\n"
      " dmarc=pass (p=reject dis=none) header.from=Example.COM")


def test_a_field_is_read_into_its_authserv_id_and_results() -> None:
    assert parse(MX) == AuthResults("mx.example.com", (
        MethodResult("spf", "pass", {"smtp.mailfrom": "example.com"}),
        MethodResult("dkim", "pass", {"header.d": "example.com", "header.s": "s1"}),
        MethodResult("dmarc", "pass", {"header.from": "Example.COM"})))


@pytest.mark.parametrize(("value", "expected"), [
    # a version after the authserv-id, no results
    ("mx.example.com 1; none", AuthResults("mx.example.com", ())),
    # quoted values, a reason, a method version, nested comments
    ('"MX.example.com"; auth/1=PASS (good (very)) reason="ok; fine" '
     'smtp.auth="alice@example.com"',
     AuthResults("mx.example.com", (MethodResult("auth", "pass",
                                                 {"smtp.auth": "alice@example.com"}),))),
    # garbage inside a result is skipped, not an error
    ("mx.example.com; dmarc; =; spf=fail", AuthResults("mx.example.com", (
        MethodResult("spf", "fail", {}),))),
    ("", None),
    ("; dmarc=pass", None),
])
def test_odd_fields(value: str, expected: AuthResults | None) -> None:
    assert parse(value) == expected


TRUSTED = ("mx.example.com",)
AUTH = "mx.example.com; auth=pass smtp.auth={}"


@pytest.mark.parametrize(("values", "organizer", "user", "vouched"), [
    ([MX], "alice@example.com", "", True),  # dmarc=pass for its domain, any letter case
    ([MX], "alice@other.example", "", False),  # another domain's pass
    ([MX.replace("mx.example.com", "mx.evil.example")], "alice@example.com", "", False),
    ([MX.replace("dmarc=pass", "dmarc=fail")], "alice@example.com", "", False),
    ([MX.replace("dmarc=pass", "dmarc=none")], "alice@example.com", "", False),
    ([AUTH.format("alice@example.com")], "Alice@Example.com", "", True),
    ([AUTH.format("alice")], "alice@example.com", "alice", True),  # by user name
    ([AUTH.format("alice")], "alice@example.com", "", False),
    ([AUTH.format("bob@example.com")], "alice@example.com", "alice", False),
    ([AUTH.format("alice@example.com").replace("auth=pass", "auth=fail")],
     "alice@example.com", "", False),
    # spf vouches for the envelope, not for the organizer
    (["mx.example.com; spf=pass smtp.mailfrom=example.com"], "alice@example.com", "", False),
    # one trusted field among untrusted ones is enough
    ([MX.replace("mx.example.com", "mx.evil.example"), MX], "alice@example.com", "", True),
    ([], "alice@example.com", "", False),
])
def test_only_a_trusted_field_vouches_for_the_organizer(values: list[str], organizer: str,
                                                         user: str, vouched: bool) -> None:
    assert vouches_for(values, TRUSTED, organizer, user) is vouched


def test_nothing_is_trusted_by_default() -> None:
    assert not vouches_for([MX], (), "alice@example.com")
    assert vouches_for([MX], ("MX.Example.com",), "alice@example.com")
