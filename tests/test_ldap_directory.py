"""``user_plugin = ldap`` against a real slapd (``mr_engine.testing.slapd``) on both
databases: recipients created just in time over LMTP (and HTTP), aliases, groups (nested;
by memberUid and by DN), equipment booked with its LDAP capacity, a server stopped (451
4.4.3) and back, a hung one, failover between URIs, StartTLS, entries renamed, re-addressed
and deleted as the cache expires, and an Active Directory shaped tree."""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from mr_engine.store.db import open_database
from mr_engine.store.directories import EVERYONE, DirectoryUnavailable, NotFound
from mr_engine.config import Settings
from mr_engine.store.directories.ldap import LdapDirectory, LdapState
from mr_engine.store.directories.ldap_connection import LdapServers
from mr_engine.store.models import Mailbox
from mr_engine.testing import commands
from mr_engine.testing import ldap_trees
from mr_engine.testing.accounts import add_users
from mr_engine.testing.http import get
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import RawClient, deliver, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import RunningServer, make_settings
from mr_engine.testing.slapd import Slapd
from mr_engine.testing.store_views import agenda, messages_of
from mr_engine.testing.times import HOUR, NOW, T9


class Clock:
    """The cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _settings(db_url, server: Slapd, **changes):
    return make_settings(db_url, **server.settings(**changes))


def _source(session, settings, clock=None) -> LdapDirectory:
    return LdapDirectory(session, LdapState(settings, clock or Clock()))


def _names(mailboxes) -> list[str]:
    return [m.name for m in mailboxes]


_MESSAGE_IDS = itertools.count(1)


def _rcpt(port: int, *recipients: str) -> tuple[list[str], list[str]]:
    """A new message (its own Message-ID) to ``recipients``: the RCPT and DATA replies."""
    client = RawClient(port)
    client.reply()
    try:
        message = msg(message_id=f"<m{next(_MESSAGE_IDS)}@remote.example>")
        return send_message(client, "s@remote.example", list(recipients), message)
    finally:
        client.close()


# --- over LMTP ---------------------------------------------------------------------------

def test_users_aliases_and_groups_are_delivered_to_just_in_time(db, db_url, slapd):
    with RunningServer(_settings(db_url, slapd)) as server:
        rcpt, data = _rcpt(server.port, "alice@example.com", "ali+news@example.com",
                           "all@example.com", "carol@example.com", "nobody@example.com")
    assert rcpt[:4] == ["250 2.1.5 Ok"] * 4 and rcpt[4].startswith("550 5.1.1")
    # One copy each: alice directly, by alias and through all > staff; carol is hidden.
    assert [d[:9] for d in data] == ["250 2.0.0"] * 4
    assert [len(messages_of(db, n)) for n in ("alice", "bob", "dave", "carol")] == [1] * 4
    with db.read() as session:
        alice = session.scalar(select(Mailbox).where(Mailbox.name == "alice"))
        carol = session.scalar(select(Mailbox).where(Mailbox.name == "carol"))
    assert (alice.external_id, alice.email, alice.fullname, alice.admin_level) == \
        ("1001", "alice@example.com", "Alice Archer", 1)
    assert carol.hidden


def test_equipment_is_booked_with_its_ldap_capacity_and_keeps_its_local_settings(
        db, db_url, slapd):
    settings = _settings(db_url, slapd)
    with db.write() as session:  # as kopano-cli --user beamer --mr-accept yes does
        beamer = _source(session, settings).user("beamer")
        beamer.mr_accept = beamer.mr_decline_conflict = True
    with RunningServer(settings, clock=lambda: NOW) as server:
        for uid in ("a", "b", "c"):  # overlapping: LDAP says two at once (locally 1)
            deliver(server.port, invite(uid, T9, T9 + HOUR, "beamer@example.com"),
                    to="beamer@example.com")
    assert [e["uid"] for e in agenda(db_url, "beamer")] == ["a", "b"]
    with db.write() as session:
        source = _source(session, settings)  # read again: LDAP's type and capacity, our rest
        beamer, room = source.user("beamer"), source.user("room1")
        assert (beamer.resource_type, beamer.resource_capacity, beamer.mr_accept) == \
            ("equipment", 2, True)
        assert (room.resource_type, room.resource_capacity, room.active) == ("room", 8, False)


def test_a_stopped_server_answers_451_4_4_3_and_delivery_resumes(db, db_url, fresh_slapd):
    with RunningServer(_settings(db_url, fresh_slapd)) as server:
        assert _rcpt(server.port, "dave@example.com")[0] == ["250 2.1.5 Ok"]
        fresh_slapd.stop()
        rcpt, data = _rcpt(server.port, "carol@example.com", "dave@example.com")
        # carol was never looked up: maybe she exists. dave is known: still delivered.
        assert rcpt == ["451 4.4.3 directory unavailable", "250 2.1.5 Ok"]
        fresh_slapd.start()
        assert _rcpt(server.port, "carol@example.com")[0] == ["250 2.1.5 Ok"]
    assert len(messages_of(db, "dave")) == 2 and len(messages_of(db, "carol")) == 1


def test_a_hung_server_times_out_without_holding_up_other_sessions(db, db_url, fresh_slapd):
    settings = _settings(db_url, fresh_slapd, ldap_network_timeout=1)
    with RunningServer(settings) as server:
        assert _rcpt(server.port, "dave@example.com")[0] == ["250 2.1.5 Ok"]
        fresh_slapd.pause()
        try:
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(_rcpt, server.port, "carol@example.com")
                time.sleep(0.2)  # carol's lookup is waiting on LDAP now
                started = time.monotonic()
                assert _rcpt(server.port, "dave@example.com")[0] == ["250 2.1.5 Ok"]
                assert time.monotonic() - started < 1  # the event loop went on
                assert not waiting.done()
                assert waiting.result(30)[0] == ["451 4.4.3 directory unavailable"]
        finally:
            fresh_slapd.resume()


def test_an_ldap_rooms_calendar_and_free_busy_and_503_while_ldap_is_down(db_url, fresh_slapd):
    settings = _settings(db_url, fresh_slapd, http_listen=("127.0.0.1:0",))
    with RunningServer(settings, clock=lambda: NOW) as server:
        feed = get(server.http_port, "/calendars/room1@example.com.ics")  # mirrors room1
        # Free/busy reads the store's own rows (store.calendar_owners): room1's now.
        busy = get(server.http_port, "/freebusy/room1@example.com.vfb")
        user = get(server.http_port, "/calendars/dave.ics")
        fresh_slapd.stop()
        down = get(server.http_port, "/calendars/beamer.ics")
    assert (feed.status, busy.status, user.status) == (200, 200, 404)
    assert "BEGIN:VCALENDAR" in feed.body and "BEGIN:VFREEBUSY" in busy.body
    assert (down.status, down.body) == (503, "the directory is unavailable, try again later\n")


def test_commands_exit_1_with_a_one_line_reason_when_ldap_is_unreachable(tmp_path, slapd):
    env = {"MR_ENGINE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db", "PATH": str(BIN),
           "MR_ENGINE_USER_PLUGIN": "ldap", "MR_ENGINE_LDAP_SEARCH_BASE": slapd.base,
           "MR_ENGINE_LDAP_URI": "ldap://127.0.0.1:9", "MR_ENGINE_LDAP_NETWORK_TIMEOUT": "2"}
    done = commands.run([str(BIN / "mr-engine"), "mailbox", "alice"], env=env,
                        capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "directory unavailable: ldap://127.0.0.1:9: " in done.stderr.splitlines()[-1]


# --- the connection alone (no database) -------------------------------------------------

def _fullname(servers: LdapServers, uid: str) -> str:
    [(_dn, attributes)] = servers.search(f"(uid={uid})", ["cn"])
    return attributes["cn"][0].decode()


def test_the_next_uri_answers_when_the_first_fails_and_is_then_asked_first(fresh_slapd):
    with Slapd() as second:
        second.modify(ldap_trees.user_dn("dave"), cn=["Dave on the second"])
        servers = LdapServers(Settings().replace(
            **fresh_slapd.settings(ldap_uri=(fresh_slapd.uri, second.uri))))
        fresh_slapd.stop()
        assert _fullname(servers, "dave") == "Dave on the second"
        fresh_slapd.start()  # back, but the second answers first now
        assert _fullname(servers, "dave") == "Dave on the second"
        second.stop()
        assert _fullname(servers, "dave") == "Dave Dunn"
        fresh_slapd.stop()
        with pytest.raises(DirectoryUnavailable, match=f"{fresh_slapd.uri}: .*; {second.uri}"):
            servers.search("(uid=dave)", ["cn"])


def test_searches_read_every_page(slapd):
    servers = LdapServers(Settings().replace(**slapd.settings(ldap_page_size=2)))
    found = servers.search("(objectClass=posixAccount)", ["uid"])
    assert sorted(attributes["uid"][0].decode() for _dn, attributes in found) == \
        ["alice", "beamer", "bob", "carol", "dave", "room1", "shared"]


def test_starttls_checks_the_servers_certificate_against_libldaps_ca_file(monkeypatch):
    with Slapd(tls=True) as server:
        servers = LdapServers(Settings().replace(**server.settings(ldap_starttls=True)))
        monkeypatch.delenv("LDAPTLS_CACERT", raising=False)  # ldap.conf's CAs, or the system's
        with pytest.raises(DirectoryUnavailable, match="certificate|CA public key"):
            _fullname(servers, "alice")
        monkeypatch.setenv("LDAPTLS_CACERT", server.ca_file)
        assert _fullname(servers, "alice") == "Alice Archer"


# --- in one session, with the cache's clock --------------------------------------------

@pytest.mark.parametrize("members", [
    {}, {"ldap_groupmembers_attribute": "member", "ldap_groupmembers_attribute_type": "dn"}],
    ids=["memberUid", "member DNs"])
def test_groups_nest_and_distribution_groups_are_no_security_groups(db_url, slapd, members):
    settings = _settings(db_url, slapd, **members)
    database = open_database(db_url)
    try:
        with database.read() as session:
            source = _source(session, settings)
            assert _names(source.resolve("all@example.com")) == ["alice", "bob", "dave"]
            assert _names(source.resolve("news@example.com")) == ["carol", "dave"]
            assert source.groups_of("dave@example.com") == [EVERYONE, "all", "news"]
            assert source.memberships("bob@example.com") == [EVERYONE, "all", "staff"]
            assert source.memberships("carol@example.com") == [EVERYONE]  # news: mail only
            assert source.group("all").groups == ["staff"]
            # Send-as: alice by uidNumber for bob; the group staff (gidNumber) for dave.
            assert source.sendas_of("bob@example.com") == ["alice"]
            assert source.sendas_of("dave@example.com") == ["alice", "bob"]
            assert source.has_domain("EXAMPLE.com") and not source.has_domain("other.org")
    finally:
        database.dispose()


def test_renames_new_addresses_and_deletions_take_effect_when_the_cache_expires(
        db, db_url, fresh_slapd):
    settings, clock = _settings(db_url, fresh_slapd), Clock()
    state = LdapState(settings, clock)
    with db.read() as session:
        [dave] = LdapDirectory(session, state).resolve("dave@example.com")
        assert LdapDirectory(session, state).resolve("eve@example.com") == []
    fresh_slapd.rename(ldap_trees.user_dn("dave"), "uid=david")
    fresh_slapd.modify(ldap_trees.user_dn("david"), mail=["david@example.com"])
    fresh_slapd.delete(ldap_trees.user_dn("carol"))
    fresh_slapd.add(ldap_trees.user_dn("eve"), ldap_trees.posix_user("eve", 1010, "Eve")[1])
    with db.read() as session:
        source = LdapDirectory(session, state)
        assert _names(source.resolve("dave@example.com")) == ["dave"]  # cached
        assert source.resolve("eve@example.com") == []  # "nothing there", for a minute
        clock.now += 61
        assert _names(source.resolve("eve@example.com")) == ["eve"]
        clock.now += settings.ldap_cache_timeout
        assert source.resolve("dave@example.com") == []
        [david] = source.resolve("david@example.com")
        assert (david.id, david.name, david.email) == (dave.id, "david", "david@example.com")
        assert source.resolve("carol@example.com") == []
        with pytest.raises(NotFound):
            source.user("carol")


def test_a_user_recreated_under_the_same_name_gets_a_new_mailbox(db, fresh_slapd):
    settings = make_settings(db.engine.url.render_as_string(False), **fresh_slapd.settings())
    clock = Clock()
    state = LdapState(settings, clock)
    with db.read() as session:
        [old] = LdapDirectory(session, state).resolve("dave@example.com")
    fresh_slapd.delete(ldap_trees.user_dn("dave"))
    fresh_slapd.add(*ldap_trees.posix_user("dave", 1020, "Another Dave"))
    clock.now += settings.ldap_cache_timeout + 1
    with db.read() as session:
        [new] = LdapDirectory(session, state).resolve("dave@example.com")
        gone = session.get(Mailbox, old.id)
        assert (new.id != old.id, new.external_id, new.fullname) == (True, "1020", "Another Dave")
        # The old row keeps its link (and store) and gives the name and address up.
        assert (gone.name, gone.external_id) == (f"dave~{old.id}", "1004")


def test_a_db_plugin_user_is_adopted_with_its_store_when_ldap_takes_over(db, slapd):
    add_users(db, "bob")  # bob@example.com, kept by the db plugin until now
    with RunningServer(make_settings(db.engine.url.render_as_string(False))) as server:
        deliver(server.port, msg(message_id="<before@remote.example>"), to="bob@example.com")
    settings = make_settings(db.engine.url.render_as_string(False), **slapd.settings())
    with db.write() as session:
        bob = _source(session, settings).user("bob")
        assert (bob.external_id, bob.fullname, bob.quota_hard) == ("1002", "Bob Baker", 3000)
    assert [m.message_id for m in messages_of(db, "bob")] == ["<before@remote.example>"]


def test_an_active_directory_tree_with_binary_guids_member_dns_and_group_types(db, ad_slapd):
    settings = make_settings(db.engine.url.render_as_string(False), **ad_slapd.settings())
    with db.read() as session:
        source = _source(session, settings)
        [erin] = source.resolve("E.Evans@ad.example")
        assert (erin.name, erin.external_id) == ("erin", ldap_trees.guid(1).hex())
        assert _names(source.resolve("announce@ad.example")) == ["erin", "frank"]
        assert source.memberships("erin@ad.example") == [EVERYONE, "sales"]
        assert source.groups_of("frank@ad.example") == [EVERYONE, "sales"]
        assert source.sendas_of("frank@ad.example") == ["erin"]
        room = source.user("boardroom")
        assert (room.resource_type, room.resource_capacity, room.active) == ("room", 12, False)
        assert _names(source.users()) == ["boardroom", "erin", "frank"]
