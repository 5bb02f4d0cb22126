"""LDAP entries read as the directory's people and groups (Kopano's ldap user plugin rules).

Pure functions of an entry (its DN and attributes, names lower-cased) and of ``LdapSchema``,
the attribute names the ldap_* settings give: whether an entry is a user or a group, what
``Person`` or ``LdapGroup`` it is, and the search filters (RFC 4515) that find them. The
store's LDAP source (``store.directories.ldap``) does the network and the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Union

Value = Union[str, bytes]
Attributes = Mapping[str, Sequence[Value]]  # names lower-cased

RESOURCE_TYPES = ("room", "equipment")
# Active Directory's groupType flag of a security group (MS-ADTS 2.2.12).
ADS_GROUP_TYPE_SECURITY_ENABLED = 0x80000000


@dataclass(frozen=True)
class LdapSchema:
    """The attribute names and kinds Kopano's ldap.cfg settings choose; built from the
    settings (``directories.ldap.schema_of``), whose defaults are written once, there."""

    object_type: str
    user_type: str
    group_type: str
    user_filter: str
    group_filter: str
    user_unique: str
    user_unique_binary: bool
    group_unique: str
    group_unique_binary: bool
    login: str
    fullname: str
    email: str
    aliases: str
    admin: str
    nonactive: str
    resource_type: str
    resource_capacity: str
    group_name: str
    members: str
    members_are_dns: bool
    members_relation: str  # empty: the unique attribute
    security: str
    security_is_ads: bool
    sendas: str
    sendas_are_dns: bool
    sendas_relation: str  # empty: the unique attribute
    hidden: str
    quota_override: str
    quota_warn: str
    quota_soft: str
    quota_hard: str
    quota_multiplier: int
    enabled_features: str
    disabled_features: str

    def user_attributes(self) -> list[str]:
        """What a user's search asks for (relations too: a member or send-as value may
        name the user by them)."""
        names = [self.user_unique, self.login, self.fullname, self.email, self.aliases,
                 self.admin, self.nonactive, self.resource_type, self.resource_capacity,
                 self.sendas, self.hidden, self.quota_override, self.quota_warn,
                 self.quota_soft, self.quota_hard, self.enabled_features,
                 self.disabled_features, self.object_type, self.members_relation,
                 self.sendas_relation]
        return sorted({n for n in names if n})

    def group_attributes(self) -> list[str]:
        names = [self.group_unique, self.group_name, self.email, self.aliases, self.members,
                 self.security, self.sendas, self.hidden, self.object_type,
                 self.sendas_relation]
        return sorted({n for n in names if n})


@dataclass(frozen=True)
class Quotas:
    """A user's own quotas in bytes (0: none), replacing the defaults."""

    warning: int
    soft: int
    hard: int


@dataclass(frozen=True)
class Person:
    """A user or resource entry, as the engine mirrors it into its ``Mailbox`` row."""

    dn: str
    external_id: str
    name: str
    email: str
    aliases: tuple[str, ...] = ()
    fullname: str = ""
    admin_level: int = 0
    active: bool = True
    resource_type: str = "none"
    capacity: int | None = None
    hidden: bool = False
    quotas: Quotas | None = None  # None: the server's defaults
    enabled_features: tuple[str, ...] = ()
    disabled_features: tuple[str, ...] = ()
    sendas: tuple[str, ...] = ()  # DNs or relation values, as the entry has them
    relation: tuple[str, ...] = ()  # the values text member lists name it by

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.email.lower(), *(a.lower() for a in self.aliases))


@dataclass(frozen=True)
class LdapGroup:
    """A group entry: a security group, or a distribution group (mail only)."""

    dn: str
    external_id: str
    name: str
    email: str | None
    aliases: tuple[str, ...] = ()
    security: bool = True
    hidden: bool = False
    members: tuple[str, ...] = ()  # DNs or relation values, as the entry has them
    sendas: tuple[str, ...] = ()
    relation: tuple[str, ...] = ()


Entry = Union[Person, LdapGroup]


# --- values ----------------------------------------------------------------------------------

def _values(attributes: Attributes, name: str) -> list[Value]:
    return list(attributes.get(name.lower(), ())) if name else []


def _texts(attributes: Attributes, name: str) -> tuple[str, ...]:
    return tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                 for v in _values(attributes, name))


def _first(attributes: Attributes, name: str) -> str:
    texts = _texts(attributes, name)
    return texts[0].strip() if texts else ""


def flag(raw: str) -> bool:
    """Kopano's booleans: absent, 0 and false (any case) are no, anything else yes."""
    return raw.strip().lower() not in ("", "0", "false")


def _number(raw: str) -> int | None:
    try:
        return int(raw.strip())
    except ValueError:
        return None


def unique_id(attributes: Attributes, name: str, binary: bool) -> str:
    """The unique attribute as the ``external_id`` column keeps it: text as it is, a
    binary one (AD's objectGUID) in hex."""
    values = _values(attributes, name)
    if not values:
        return ""
    value = values[0]
    if binary:
        return value.hex() if isinstance(value, bytes) else value.encode().hex()
    return value.decode() if isinstance(value, bytes) else str(value)


def is_of_type(attributes: Attributes, schema: LdapSchema, type_value: str) -> bool:
    return type_value.lower() in {t.lower() for t in _texts(attributes, schema.object_type)}


# --- entries ---------------------------------------------------------------------------------

def read_entry(schema: LdapSchema, dn: str, attributes: Attributes) -> Entry | None:
    """The person or group an entry is, or None (another kind, or one lacking its name
    or unique attribute)."""
    if is_of_type(attributes, schema, schema.group_type):
        return read_group(schema, dn, attributes)
    if is_of_type(attributes, schema, schema.user_type):
        return read_person(schema, dn, attributes)
    return None


def read_person(schema: LdapSchema, dn: str, attributes: Attributes) -> Person | None:
    """A user or resource; None without a login name, an address or a unique id."""
    external_id = unique_id(attributes, schema.user_unique, schema.user_unique_binary)
    name, email = _first(attributes, schema.login), _first(attributes, schema.email)
    if not (external_id and name and email):
        return None
    nonactive = flag(_first(attributes, schema.nonactive))
    kind = _first(attributes, schema.resource_type).lower()
    return Person(
        dn=dn, external_id=external_id, name=name, email=email,
        aliases=_texts(attributes, schema.aliases),
        fullname=_first(attributes, schema.fullname),
        admin_level=_admin_level(_first(attributes, schema.admin)),
        active=not nonactive,
        # Kopano: only a non-active entry is a resource; another word is a plain user.
        resource_type=kind if nonactive and kind in RESOURCE_TYPES else "none",
        capacity=_number(_first(attributes, schema.resource_capacity)),
        hidden=flag(_first(attributes, schema.hidden)),
        quotas=read_quotas(schema, attributes),
        enabled_features=_features(attributes, schema.enabled_features),
        disabled_features=_features(attributes, schema.disabled_features),
        sendas=_texts(attributes, schema.sendas),
        relation=_relation(attributes, schema.members_relation, schema.user_unique,
                           schema.user_unique_binary))


def read_group(schema: LdapSchema, dn: str, attributes: Attributes) -> LdapGroup | None:
    external_id = unique_id(attributes, schema.group_unique, schema.group_unique_binary)
    name = _first(attributes, schema.group_name)
    if not (external_id and name):
        return None
    return LdapGroup(
        dn=dn, external_id=external_id, name=name,
        email=_first(attributes, schema.email) or None,
        aliases=_texts(attributes, schema.aliases),
        security=is_security_group(schema, _first(attributes, schema.security)),
        hidden=flag(_first(attributes, schema.hidden)),
        members=_texts(attributes, schema.members), sendas=_texts(attributes, schema.sendas),
        # A group in a text member list is named by its name (a user by the relation).
        relation=(name,))


def is_security_group(schema: LdapSchema, raw: str) -> bool:
    """``boolean``: the attribute set and not 0/false. ``ads``: groupType's security bit
    (absent: a distribution group)."""
    if not schema.security_is_ads:
        return flag(raw)
    number = _number(raw)
    return number is not None and bool(number & ADS_GROUP_TYPE_SECURITY_ENABLED)


def read_quotas(schema: LdapSchema, attributes: Attributes) -> Quotas | None:
    """The entry's own quotas when its override attribute says so, times the multiplier."""
    if not flag(_first(attributes, schema.quota_override)):
        return None
    def size(name: str) -> int:
        return max(0, _number(_first(attributes, name)) or 0) * schema.quota_multiplier
    return Quotas(size(schema.quota_warn), size(schema.quota_soft), size(schema.quota_hard))


def _admin_level(raw: str) -> int:
    """kopanoAdmin: 1 an admin, 2 a system admin (Kopano's levels); other true values 1."""
    number = _number(raw)
    if number is not None:
        return max(0, min(number, 2))
    return 1 if flag(raw) else 0


def _features(attributes: Attributes, name: str) -> tuple[str, ...]:
    return tuple(sorted({t.strip().lower() for t in _texts(attributes, name) if t.strip()}))


def _relation(attributes: Attributes, relation: str, unique: str,
              binary: bool) -> tuple[str, ...]:
    """The values text member lists name an entry by: its ``relation`` attribute's, or
    (no relation set) its unique id."""
    if relation:
        return _texts(attributes, relation)
    external_id = unique_id(attributes, unique, binary)
    return (external_id,) if external_id else ()


# --- filters (RFC 4515) ----------------------------------------------------------------------

def escape(value: Value) -> str:
    """A filter's assertion value: RFC 4515 §3 escapes ``* ( ) \\`` and NUL; bytes (a
    binary attribute) are escaped whole, every octet as ``\\xx``."""
    if isinstance(value, bytes):
        return "".join(f"\\{b:02x}" for b in value)
    special = {"*": "\\2a", "(": "\\28", ")": "\\29", "\\": "\\5c", "\0": "\\00"}
    return "".join(special.get(c, c) for c in value)


def _equals(name: str, value: Value) -> str:
    return f"({name}={escape(value)})"


NOTHING = "(!(objectClass=*))"  # a filter no entry matches


def _any_of(parts: Sequence[str]) -> str:
    if not parts:
        return NOTHING
    return parts[0] if len(parts) == 1 else f"(|{''.join(parts)})"


def _wrapped(extra: str) -> str:
    """A configured filter as a filter component: ``uid=x`` too gets its parentheses."""
    extra = extra.strip()
    return "" if not extra else extra if extra.startswith("(") else f"({extra})"


def users_filter(schema: LdapSchema, condition: str = "") -> str:
    return (f"(&{_equals(schema.object_type, schema.user_type)}"
            f"{_wrapped(schema.user_filter)}{condition})")


def groups_filter(schema: LdapSchema, condition: str = "") -> str:
    return (f"(&{_equals(schema.object_type, schema.group_type)}"
            f"{_wrapped(schema.group_filter)}{condition})")


def address_filter(schema: LdapSchema, address: str) -> str:
    """Users and groups with ``address`` as their address or an alias."""
    at = _any_of([_equals(schema.email, address)]
                 + ([_equals(schema.aliases, address)] if schema.aliases else []))
    return f"(|{users_filter(schema, at)}{groups_filter(schema, at)})"


def domain_filter(schema: LdapSchema, domain: str) -> str:
    """Users and groups with an address (or alias) at ``domain``."""
    suffix = f"*@{escape(domain)}"
    names = [schema.email] + ([schema.aliases] if schema.aliases else [])
    at = _any_of([f"({name}={suffix})" for name in names])
    return f"(|{users_filter(schema, at)}{groups_filter(schema, at)})"


def unique_value(external_id: str, binary: bool) -> Value:
    """The assertion value of an ``external_id`` (hex back to bytes when binary)."""
    return bytes.fromhex(external_id) if binary else external_id


def user_by(schema: LdapSchema, attribute: str, values: Sequence[Value]) -> str:
    return users_filter(schema, _any_of([_equals(attribute, v) for v in values]))


def group_by(schema: LdapSchema, attribute: str, values: Sequence[Value]) -> str:
    return groups_filter(schema, _any_of([_equals(attribute, v) for v in values]))


def related_filter(schema: LdapSchema, relation: str, values: Sequence[str]) -> str:
    """Users and groups that text values of a member or send-as list name: users by
    ``relation`` (empty: the unique attribute), groups by their name or by ``relation``
    (empty: their unique attribute)."""
    parts = [group_by(schema, schema.group_name, values)]
    for attribute, binary, by in (
            (relation or schema.user_unique, not relation and schema.user_unique_binary,
             user_by),
            (relation or schema.group_unique, not relation and schema.group_unique_binary,
             group_by)):
        assertions = _assertions(values, binary)
        if assertions:
            parts.append(by(schema, attribute, assertions))
    return _any_of(parts)


def _assertions(values: Sequence[str], binary: bool) -> list[Value]:
    """Text values as assertions; for a binary attribute those that are hex (the form
    ``external_id`` keeps), as bytes."""
    if not binary:
        return list(values)
    return [bytes.fromhex(v) for v in values if _is_hex(v)]


def _is_hex(value: str) -> bool:
    return len(value) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value)


def member_of_filter(schema: LdapSchema, entry: Entry) -> str:
    """Groups that list ``entry`` as a member: by its DN, or by the value text member
    lists name it by (``Person.relation``, ``LdapGroup.relation``)."""
    values = [entry.dn] if schema.members_are_dns else list(entry.relation)
    return group_by(schema, schema.members, values)
