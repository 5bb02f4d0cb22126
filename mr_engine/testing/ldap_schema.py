"""LDAP schemas for the test slapd: the attribute and object-class names of Kopano's schema,
and the few attributes of Active Directory that ``ldap_server_type = ad`` reads.

Written for these tests (not Kopano's kopano.schema): the names and their kinds are Kopano's,
the OIDs an arc of their own under 2.25 (a UUID, ITU-T X.667), so that nothing here claims
anyone's registered numbers. Each schema is rendered from a table into slapd.conf's syntax.
"""

from __future__ import annotations

# This file's OID arc: 2.25.<a random UUID as an integer>.
_ARC = "2.25.102820505493115573753017575130334940798"

# Matching rules and syntaxes (RFC 4517) by kind of value.
_KINDS = {
    "integer": "EQUALITY integerMatch ORDERING integerOrderingMatch "
               "SYNTAX 1.3.6.1.4.1.1466.115.121.1.27",
    "string": "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch "
              "SYNTAX 1.3.6.1.4.1.1466.115.121.1.15",
    "address": "EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch "
               "SYNTAX 1.3.6.1.4.1.1466.115.121.1.26",
    "octets": "EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40",
}

# Kopano's attributes: (name, kind, single-valued).
KOPANO_ATTRIBUTES = (
    ("kopanoAccount", "integer", True),
    ("kopanoAdmin", "integer", True),
    ("kopanoSharedStoreOnly", "integer", True),
    ("kopanoResourceType", "string", True),
    ("kopanoResourceCapacity", "integer", True),
    ("kopanoAliases", "address", False),
    ("kopanoSendAsPrivilege", "string", False),
    ("kopanoHidden", "integer", True),
    ("kopanoSecurityGroup", "integer", True),
    ("kopanoQuotaOverride", "integer", True),
    ("kopanoQuotaWarn", "integer", True),
    ("kopanoQuotaSoft", "integer", True),
    ("kopanoQuotaHard", "integer", True),
    ("kopanoEnabledFeatures", "string", False),
    ("kopanoDisabledFeatures", "string", False),
)
_USER_ONLY = {"kopanoSecurityGroup"}
_GROUP_ONLY = {"kopanoAdmin", "kopanoSharedStoreOnly", "kopanoResourceType",
               "kopanoResourceCapacity", "kopanoEnabledFeatures", "kopanoDisabledFeatures"}

# Active Directory's, as far as the tests need them (slapd has no AD schema). AD's own
# otherMailbox cannot stand in: cosine's has no equality rule, so no filter matches it.
AD_ATTRIBUTES = (
    ("objectGUID", "octets", True),
    ("objectSid", "octets", True),
    ("sAMAccountName", "string", True),
    ("groupType", "integer", True),
    ("objectCategory", "string", True),
)


def _attribute(number: str, name: str, kind: str, single: bool) -> str:
    return (f"attributetype ( {_ARC}.{number} NAME '{name}' {_KINDS[kind]}"
            f"{' SINGLE-VALUE' if single else ''} )\n")


def _object_class(number: str, name: str, kind: str, may: list[str],
                  must: str = "") -> str:
    required = f" MUST ( {must} )" if must else ""
    return (f"objectclass ( {_ARC}.{number} NAME '{name}' SUP top {kind}{required}"
            f" MAY ( {' $ '.join(may)} ) )\n")


def kopano_schema() -> str:
    """kopano-user and kopano-group (auxiliary, as Kopano's) and their attributes."""
    names = [name for name, _kind, _single in KOPANO_ATTRIBUTES]
    users = [n for n in names if n not in _USER_ONLY] + ["mail"]
    groups = [n for n in names if n not in _GROUP_ONLY] + ["mail", "member"]
    return ("".join(_attribute(f"1.{i}", *row) for i, row in enumerate(KOPANO_ATTRIBUTES, 1))
            + _object_class("2.1", "kopano-user", "AUXILIARY", users)
            + _object_class("2.2", "kopano-group", "AUXILIARY", groups))


def ad_schema() -> str:
    """AD's user and group classes with the attributes Kopano's AD defaults read."""
    names = [name for name, _kind, _single in AD_ATTRIBUTES]
    common = ["objectGUID", "sAMAccountName", "objectCategory", "mail", "displayName"]
    return ("".join(_attribute(f"3.{i}", *row) for i, row in enumerate(AD_ATTRIBUTES, 1))
            + _object_class("4.1", "user", "STRUCTURAL", common + ["objectSid"], must="cn")
            + _object_class("4.2", "group", "STRUCTURAL",
                            common + [n for n in names if n not in common] + ["member"],
                            must="cn"))
