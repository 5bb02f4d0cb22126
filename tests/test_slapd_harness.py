"""The test slapd itself: Kopano's schema and both trees load, and the server stops, starts
again with its data and takes changes (what the LDAP directory tests rely on)."""

from __future__ import annotations

import ldap3

from mr_engine.testing import ldap_trees
from mr_engine.testing.slapd import PASSWORD


def _search(server, query: str, *attributes: str) -> list[ldap3.abstract.entry.Entry]:
    with ldap3.Connection(server.uri, server.admin, PASSWORD, auto_bind=True) as connection:
        connection.search(server.base, query, attributes=list(attributes) or ["*"])
        return list(connection.entries)


def test_the_openldap_tree_has_kopanos_attributes(slapd):
    [room] = _search(slapd, "(&(kopanoResourceType=room)(kopanoSharedStoreOnly=1))")
    assert room.uid.value == "room1" and room.kopanoResourceCapacity.value == 8
    assert len(_search(slapd, "(objectClass=posixGroup)")) == 3


def test_the_ad_tree_has_binary_guids_and_group_types(ad_slapd):
    [erin] = _search(ad_slapd, "(sAMAccountName=erin)", "objectGUID")
    assert erin.objectGUID.raw_values == [ldap_trees.guid(1)]
    security = _search(ad_slapd, "(groupType:1.2.840.113556.1.4.803:=2147483648)")
    assert [g.entry_dn for g in security] == [ldap_trees.ad_dn("sales")]


def test_a_server_restarts_with_its_data_and_takes_changes(fresh_slapd):
    server = fresh_slapd
    server.stop()
    assert not server.running
    server.start()
    server.modify(ldap_trees.user_dn("dave"), mail=["david@example.com"])
    server.rename(ldap_trees.user_dn("carol"), "uid=caroline")
    server.delete(ldap_trees.user_dn("shared"))
    assert _search(server, "(mail=david@example.com)")[0].uid.value == "dave"
    assert _search(server, "(uid=caroline)") and not _search(server, "(uid=shared)")
