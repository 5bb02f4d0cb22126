"""Kopano's LDAP rules as pure functions (``core.ldap_entries``), the answers cache with an
explicit clock (``ldap_cache``) and where the TLS CA file is found: no server, no database."""

from __future__ import annotations

import dataclasses

import pytest

from mr_engine.config import LDAP_AD_DEFAULTS, load_settings
from mr_engine.core import ldap_entries as entries
from mr_engine.core.ldap_entries import Person, Quotas
from mr_engine.store.directories.ldap import schema_of
from mr_engine.store.directories.ldap_cache import NEGATIVE_TTL, AnswerCache
from mr_engine.store.directories.ldap_connection import ca_file, complete_entry, ranged

OPENLDAP = schema_of(load_settings({}, environ={}))
AD = schema_of(load_settings({"ldap_server_type": "ad"}, environ={}))


def _user(**attributes) -> dict[str, list]:
    base = {"objectclass": [b"posixAccount"], "uidnumber": [b"1001"], "uid": [b"alice"],
            "mail": [b"Alice@Example.com"], "cn": [b"Alice Archer"]}
    return {**base, **{k.lower(): v for k, v in attributes.items()}}


@pytest.mark.parametrize("attributes, expected", [
    ({}, {"resource_type": "none", "active": True, "capacity": None}),
    # Kopano: only a non-active entry is a resource; any other word is a plain user.
    ({"kopanoSharedStoreOnly": [b"1"], "kopanoResourceType": [b"Room"],
      "kopanoResourceCapacity": [b"8"]},
     {"resource_type": "room", "active": False, "capacity": 8}),
    ({"kopanoResourceType": [b"room"]}, {"resource_type": "none", "active": True}),
    ({"kopanoSharedStoreOnly": [b"1"], "kopanoResourceType": [b"lamp"]},
     {"resource_type": "none", "active": False}),
    ({"kopanoSharedStoreOnly": [b"FALSE"]}, {"active": True}),
    ({"kopanoAdmin": [b"1"]}, {"admin_level": 1}),
    ({"kopanoAdmin": [b"2"]}, {"admin_level": 2}),
    ({"kopanoAdmin": [b"yes"]}, {"admin_level": 1}),
    ({"kopanoAdmin": [b"0"]}, {"admin_level": 0}),
    ({"kopanoHidden": [b"1"]}, {"hidden": True}),
    ({"kopanoAliases": [b"ali@example.com"]}, {"aliases": ("ali@example.com",)}),
    ({"kopanoEnabledFeatures": [b"IMAP", b"pop3"], "kopanoDisabledFeatures": [b"mobile"]},
     {"enabled_features": ("imap", "pop3"), "disabled_features": ("mobile",)}),
    ({"kopanoQuotaWarn": [b"10"]}, {"quotas": None}),  # no override: the defaults
    ({"kopanoQuotaOverride": [b"1"], "kopanoQuotaWarn": [b"10"], "kopanoQuotaHard": [b"30"]},
     {"quotas": Quotas(10, 0, 30)}),
])
def test_a_user_entry_reads_as_kopano_reads_it(attributes, expected):
    person = entries.read_person(OPENLDAP, "uid=alice,dc=x", _user(**attributes))
    assert person is not None and person.external_id == "1001" and person.name == "alice"
    assert {key: getattr(person, key) for key in expected} == expected


def test_quotas_are_multiplied_and_entries_without_a_name_are_no_users():
    schema = dataclasses.replace(OPENLDAP, quota_multiplier=1048576)
    person = entries.read_person(schema, "uid=a", _user(kopanoQuotaOverride=[b"1"],
                                                        kopanoQuotaSoft=[b"2"]))
    assert person.quotas == Quotas(0, 2 * 1048576, 0)
    for missing in ("uid", "mail", "uidnumber"):
        assert entries.read_person(OPENLDAP, "uid=a", _user(**{missing: []})) is None


def test_an_ad_user_is_named_by_its_binary_guid_in_hex():
    guid = bytes(range(16))
    person = entries.read_person(AD, "cn=Erin", {
        "objectclass": [b"user"], "objectguid": [guid], "samaccountname": [b"erin"],
        "mail": [b"erin@ad.example"]})
    assert person.external_id == guid.hex() and person.name == "erin"
    assert entries.unique_value(person.external_id, True) == guid


@pytest.mark.parametrize("schema, raw, security", [
    (OPENLDAP, "1", True), (OPENLDAP, "0", False), (OPENLDAP, "", False),
    (OPENLDAP, "false", False),
    (AD, str(-0x80000000 + 2), True),  # a global security group
    (AD, "2", False), (AD, "", False), (AD, "garbage", False),
])
def test_security_groups_by_flag_or_by_ads_group_type_bit(schema, raw, security):
    assert entries.is_security_group(schema, raw) is security


@pytest.mark.parametrize("value, escaped", [
    ("a*b(c)d\\e", "a\\2ab\\28c\\29d\\5ce"), ("plain@x.org", "plain@x.org"),
    (b"\x00\xff(", "\\00\\ff\\28"),
])
def test_filter_values_are_escaped_as_rfc_4515_says(value, escaped):
    assert entries.escape(value) == escaped


def test_filters_combine_the_type_the_configured_filter_and_the_condition():
    assert entries.address_filter(AD, "x@y") == (
        "(|(&(objectClass=user)(objectCategory=Person)(|(mail=x@y)(otherMailbox=x@y)))"
        "(&(objectClass=group)(objectCategory=Group)(|(mail=x@y)(otherMailbox=x@y))))")
    assert entries.users_filter(dataclasses.replace(OPENLDAP, user_filter="kopanoAccount=1")) == \
        "(&(objectClass=posixAccount)(kopanoAccount=1))"
    assert entries.group_by(OPENLDAP, "cn", []) == entries.groups_filter(
        OPENLDAP, entries.NOTHING)


def test_text_members_name_users_by_the_relation_and_groups_by_name():
    person = Person(dn="uid=a", external_id="1001", name="a", email="a@x", relation=("a",))
    assert entries.member_of_filter(OPENLDAP, person) == \
        "(&(objectClass=posixGroup)(memberUid=a))"
    assert entries.related_filter(OPENLDAP, "uid", ["a"]) == (
        "(|(&(objectClass=posixGroup)(cn=a))(&(objectClass=posixAccount)(uid=a))"
        "(&(objectClass=posixGroup)(uid=a)))")


def test_ad_defaults_are_the_ones_the_ad_schema_reads():
    assert (AD.user_unique, AD.members, AD.members_are_dns, AD.security_is_ads) == \
        (LDAP_AD_DEFAULTS["ldap_user_unique_attribute"], "member", True, True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_answers_are_kept_for_the_cache_time_and_nothing_found_for_a_minute_at_most():
    clock, asked = Clock(), []
    cache = AnswerCache(300, clock)
    def ask(answer):
        return lambda: asked.append(answer) or answer
    assert cache.get("found", ask(["x"])) == ["x"] and cache.get("none", ask([])) == []
    clock.now += NEGATIVE_TTL + 1
    assert cache.get("found", ask(["y"])) == ["x"]  # still kept
    assert cache.get("none", ask(["new"])) == ["new"]  # asked again
    clock.now += 300
    assert cache.get("found", ask(["y"])) == ["y"]
    assert asked == [["x"], [], ["new"], ["y"]]


@pytest.mark.parametrize("environ, conf, expected", [
    ({"LDAPTLS_CACERT": "/env/ca.pem"}, "TLS_CACERT /conf/ca.pem\n", "/env/ca.pem"),
    ({}, "# a comment\nBASE dc=x\ntls_cacert\t/conf/ca.pem\n", "/conf/ca.pem"),
    ({}, "BASE dc=x\n", None),
    ({}, None, None),
])
def test_the_ca_file_is_found_as_libldap_finds_it(tmp_path, monkeypatch, environ, conf,
                                                  expected):
    monkeypatch.delenv("LDAPTLS_CACERT", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "ldap.conf"
    if conf is not None:
        path.write_text(conf)
    assert ca_file(str(path)) == expected


@pytest.mark.parametrize("raw, values, more", [
    ({"member": [b"a"], "CN": [b"g"]}, {"member": [b"a"], "cn": [b"g"]}, {}),
    ({"member;range=0-1": [b"a", b"b"]}, {"member": [b"a", b"b"]}, {"member": 2}),
    ({"member;Range=2-*": [b"c"]}, {"member": [b"c"]}, {}),
])
def test_ad_value_ranges_are_merged_and_the_next_range_named(raw, values, more):
    assert ranged(raw) == (values, more)


class RangedGroup:
    """A connection to AD holding a group of five members, sent two values a range."""

    MEMBERS = [f"cn=m{i}".encode() for i in range(5)]

    def __init__(self) -> None:
        self.response: list[dict] = []

    def search(self, dn, query, search_scope, attributes):
        start = int(attributes[0].split("=")[1].split("-")[0])
        high = "*" if start + 2 >= 5 else str(start + 1)
        self.response = [{"type": "searchResEntry", "dn": dn, "raw_attributes": {
            f"member;range={start}-{high}": self.MEMBERS[start:start + 2]}}]


def test_a_large_ad_groups_members_are_read_range_by_range():
    item = {"dn": "cn=big", "raw_attributes": {"member;range=0-1": RangedGroup.MEMBERS[:2],
                                               "cn": [b"big"]}}
    dn, values = complete_entry(RangedGroup(), item)
    assert (dn, values["member"], values["cn"]) == ("cn=big", RangedGroup.MEMBERS, [b"big"])
