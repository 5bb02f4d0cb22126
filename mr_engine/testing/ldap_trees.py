"""The directory trees the test slapd starts with: an OpenLDAP one with Kopano's schema and
an Active Directory shaped one, as entries (DN, attributes) rendered to LDIF (RFC 2849).

OpenLDAP (``dc=example,dc=com``, mail at example.com), posix users and groups as Kopano's
openldap defaults read them (``uid``, ``uidNumber``, ``memberUid``); every group lists its
members both as ``memberUid`` and as ``member`` DNs, so a test picks either with
``ldap_groupmembers_attribute_type``:

- alice (admin, alias ali@), bob (his own quotas; alice may send as him), carol (hidden),
  dave (the group staff may send as him), shared (non-active), room1 (a room, capacity 8),
  beamer (equipment, two of them: two bookings at once);
- staff (security: alice, bob), news (distribution: carol, dave), all (security: the
  group staff, nested, and dave).

Active Directory (``dc=ad,dc=example``, mail at ad.example): ``user`` and ``group`` entries
with a binary ``objectGUID`` / ``objectSid``, ``sAMAccountName``, ``member`` DNs and
``groupType`` (bit 0x80000000: security): erin, frank (erin may send as him, by DN),
boardroom (a room for 12); sales (security: erin, frank), announce (distribution: the
group sales, nested).
"""

from __future__ import annotations

import base64
from typing import Union

Value = Union[str, bytes]
Entry = tuple[str, dict[str, list[Value]]]

BASE = "dc=example,dc=com"
PEOPLE = f"ou=People,{BASE}"
GROUPS = f"ou=Groups,{BASE}"
AD_BASE = "dc=ad,dc=example"
AD_STAFF = f"ou=Staff,{AD_BASE}"

# AD's groupType: a global group, with the security bit (0x80000000, as a signed 32-bit
# number) or without it (a distribution group).
AD_SECURITY_GROUP = str(-0x80000000 + 2)
AD_DISTRIBUTION_GROUP = "2"


def guid(n: int) -> bytes:
    """A 16-byte objectGUID of AD's form, distinct per ``n`` (and not valid UTF-8)."""
    return bytes([0xFF, 0xFE, n]) + bytes(13)


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def ad_dn(cn: str) -> str:
    return f"cn={cn},{AD_STAFF}"


def _container(dn: str, **attributes: list[Value]) -> Entry:
    return dn, attributes


def posix_user(uid: str, number: int, fullname: str, **kopano: list[Value]) -> Entry:
    """An inetOrgPerson, posixAccount and kopano-user: Kopano's usual OpenLDAP user."""
    return user_dn(uid), {
        "objectClass": ["inetOrgPerson", "posixAccount", "kopano-user"],
        "uid": [uid], "cn": [fullname], "sn": [fullname.split()[-1]],
        "uidNumber": [str(number)], "gidNumber": ["100"], "homeDirectory": [f"/home/{uid}"],
        "mail": [f"{uid}@example.com"], "kopanoAccount": ["1"], **kopano}


def posix_group(name: str, number: int, users: list[str], groups: tuple[str, ...] = (),
                **kopano: list[Value]) -> Entry:
    """A posixGroup and kopano-group, members as memberUid and as member DNs."""
    members = [user_dn(u) for u in users] + [group_dn(g) for g in groups]
    return group_dn(name), {
        "objectClass": ["posixGroup", "kopano-group"], "cn": [name],
        "gidNumber": [str(number)], "mail": [f"{name}@example.com"],
        "memberUid": [*users, *groups], "member": members, "kopanoAccount": ["1"], **kopano}


def openldap_tree() -> list[Entry]:
    return [
        _container(BASE, objectClass=["dcObject", "organization"], dc=["example"],
                   o=["Example"]),
        _container(PEOPLE, objectClass=["organizationalUnit"], ou=["People"]),
        _container(GROUPS, objectClass=["organizationalUnit"], ou=["Groups"]),
        posix_user("alice", 1001, "Alice Archer", kopanoAdmin=["1"],
                   kopanoAliases=["ali@example.com"], kopanoEnabledFeatures=["imap"]),
        posix_user("bob", 1002, "Bob Baker", kopanoSendAsPrivilege=["1001"],
                   kopanoQuotaOverride=["1"], kopanoQuotaWarn=["1000"],
                   kopanoQuotaSoft=["2000"], kopanoQuotaHard=["3000"],
                   kopanoDisabledFeatures=["mobile"]),
        posix_user("carol", 1003, "Carol Cook", kopanoHidden=["1"]),
        posix_user("dave", 1004, "Dave Dunn", kopanoSendAsPrivilege=["2001"]),
        posix_user("shared", 1005, "Shared Box", kopanoSharedStoreOnly=["1"]),
        posix_user("room1", 1006, "Room One", kopanoSharedStoreOnly=["1"],
                   kopanoResourceType=["room"], kopanoResourceCapacity=["8"]),
        posix_user("beamer", 1007, "Beamer", kopanoSharedStoreOnly=["1"],
                   kopanoResourceType=["equipment"], kopanoResourceCapacity=["2"]),
        posix_group("staff", 2001, ["alice", "bob"], kopanoSecurityGroup=["1"]),
        posix_group("news", 2002, ["carol", "dave"]),
        posix_group("all", 2003, ["dave"], ("staff",), kopanoSecurityGroup=["1"]),
    ]


def ad_user(cn: str, login: str, number: int, **kopano: list[Value]) -> Entry:
    return ad_dn(cn), {
        "objectClass": ["user", "kopano-user"], "cn": [cn], "sAMAccountName": [login],
        "objectGUID": [guid(number)], "objectCategory": ["Person"],
        "mail": [f"{login}@ad.example"], **kopano}


def ad_group(cn: str, number: int, group_type: str, members: list[str]) -> Entry:
    return ad_dn(cn), {
        "objectClass": ["group"], "cn": [cn], "sAMAccountName": [cn],
        "objectGUID": [guid(number)], "objectSid": [guid(number)[::-1]],
        "objectCategory": ["Group"], "groupType": [group_type],
        "mail": [f"{cn}@ad.example"], "member": [ad_dn(m) for m in members]}


def ad_tree() -> list[Entry]:
    return [
        _container(AD_BASE, objectClass=["dcObject", "organization"], dc=["ad"], o=["AD"]),
        _container(AD_STAFF, objectClass=["organizationalUnit"], ou=["Staff"]),
        ad_user("Erin Evans", "erin", 1, kopanoAliases=["e.evans@ad.example"]),
        ad_user("Frank Fox", "frank", 2, kopanoSendAsPrivilege=[ad_dn("Erin Evans")]),
        ad_user("Boardroom", "boardroom", 3, kopanoSharedStoreOnly=["1"],
                kopanoResourceType=["room"], kopanoResourceCapacity=["12"]),
        ad_group("sales", 10, AD_SECURITY_GROUP, ["Erin Evans", "Frank Fox"]),
        ad_group("announce", 11, AD_DISTRIBUTION_GROUP, ["sales"]),
    ]


def ldif(entries: list[Entry]) -> str:
    """The entries as LDIF; bytes values base64 (``attr:: ...``), as RFC 2849 says."""
    return "\n".join(_ldif_entry(dn, attributes) for dn, attributes in entries)


def _ldif_entry(dn: str, attributes: dict[str, list[Value]]) -> str:
    lines = [f"dn: {dn}"]
    for name, values in attributes.items():
        lines += [_ldif_line(name, value) for value in values]
    return "\n".join(lines) + "\n"


def _ldif_line(name: str, value: Value) -> str:
    if isinstance(value, bytes):
        return f"{name}:: {base64.b64encode(value).decode()}"
    return f"{name}: {value}"
