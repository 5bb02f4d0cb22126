"""Where users' mail goes (mail_store = maildir | lmtp), read back from a real Dovecot over
IMAP; downstream answers passed on; a crash between the Maildir file and the commit."""

from __future__ import annotations

import email
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from sqlalchemy import create_engine, select, text

from mr_engine.core.maildir_names import encode_mutf7, expand_path, folder_dir, size_in_name
from mr_engine.store.db import Database
from mr_engine.store.directory import get_user
from mr_engine.store.maildir import Maildir
from mr_engine.store.models import Booking
from mr_engine.store.oof_state import set_oof
from mr_engine.testing import dovecot as dovecot_harness
from mr_engine.testing.accounts import ROOM, add_resource, add_users
from mr_engine.testing.invites import invite
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.servers import ServeProcess, serve_env, server_at
from mr_engine.testing.smarthost import Sink
from mr_engine.testing.store_views import messages_of, outbox_rows
from mr_engine.testing.processes import free_port
from mr_engine.testing.times import HOUR, NOW, T9

from .peers import need

SENDER = "sender@remote.example"


@pytest.fixture
def dovecot():
    need(dovecot_harness.missing(), "MR_ENGINE_TEST_REQUIRE_DOVECOT")
    users = {"alice": None, "bob": None, "room": None, "dave": None, "full": "1K"}
    with dovecot_harness.Dovecot(users) as server:
        yield server


def _lmtp(port: int, recipients: list[str], message: bytes) -> list[str]:
    """Per-recipient answers of one LMTP transaction (RCPT refusals, else DATA's)."""
    client = RawClient(port)
    try:
        client.reply()  # the greeting
        rcpt, data = send_message(client, SENDER, recipients, message)
    finally:
        client.close()
    answers = iter(data)
    return [r if not r.startswith("250") else next(answers) for r in rcpt]


def _imap_messages(server, user: str, folder: str = "INBOX") -> list[email.message.Message]:
    imap = server.imap(user)
    try:
        status, _ = imap.select(f'"{folder}"', readonly=True)
        assert status == "OK", folder
        _, ids = imap.search(None, "ALL")
        found = []
        for num in ids[0].split():
            _, data = imap.fetch(num, "(RFC822)")
            found.append(email.message_from_bytes(data[0][1]))
        return found
    finally:
        imap.logout()


def _booked(db: Database, name: str) -> list[str]:
    """UIDs of the meetings booked for ``name`` (the agenda without a CLI start-up)."""
    with db.read() as session:
        resource = get_user(session, name)
        return list(session.scalars(select(Booking.uid).where(Booking.resource_id == resource.id)))


def _folders(server, user: str) -> list[str]:
    imap = server.imap(user)
    try:
        _, listing = imap.list()
        return sorted(line.decode().rsplit(' "." ', 1)[1].strip('"') for line in listing)
    finally:
        imap.logout()


# --- names -----------------------------------------------------------------------------

def test_folder_names_are_maildir_plus_plus_in_modified_utf7():
    assert folder_dir("Inbox") == folder_dir("INBOX") == ""
    assert folder_dir("Processed Requests") == ".Processed Requests"
    assert folder_dir("Räume/Sub") == ".R&AOQ-ume.Sub"
    assert encode_mutf7("a&b") == "a&-b"
    assert encode_mutf7("日本") == "&ZeVnLA-"
    with pytest.raises(ValueError):
        folder_dir("a/../b")


def test_path_template_and_sizes_in_names():
    assert expand_path("/m/%d/%u/Maildir%%", "alice", "example.com") == "/m/example.com/alice/Maildir%"
    for bad in ("../etc", "a/b", ""):
        with pytest.raises(ValueError):
            expand_path("/m/%u", bad, "example.com")
    assert size_in_name("1.M2P3Q4.host,S=1234:2,S") == 1234
    assert size_in_name("1.M2P3.host") is None


# --- maildir ---------------------------------------------------------------------------

def test_maildir_mail_is_served_by_dovecot(db, db_url, dovecot):
    add_users(db, "alice")
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW, mail_store="maildir",
                   maildir_path=dovecot.maildir_path) as server:
        assert _lmtp(server.port, ["alice@example.com"], msg("Hello IMAP"))[0].startswith("250")
        # The same Message-ID again: the database still deduplicates, no second file.
        assert "duplicate" in _lmtp(server.port, ["alice@example.com"], msg("Hello IMAP"))[0]
        answer = _lmtp(server.port, [ROOM], invite("u1", T9, T9 + HOUR, ROOM,
                                                   message_id="<i1@remote>"))
        assert answer[0].startswith("250")
    [mail] = _imap_messages(dovecot, "alice")
    assert mail["Subject"] == "Hello IMAP"
    assert mail["Return-Path"] == f"<{SENDER}>" and mail["Delivered-To"] == "alice@example.com"
    assert "by mx.test (mr-engine) with LMTP" in mail["Received"]
    assert messages_of(db, "alice") == []  # the Maildir is the store of record
    assert "Processed Requests" in _folders(dovecot, "room")
    [request] = _imap_messages(dovecot, "room", "Processed Requests")
    assert request["Subject"] == "Invitation: Planning"
    assert _imap_messages(dovecot, "room") == []
    assert _booked(db, "room") == ["u1"]


def test_folder_created_by_the_engine_is_named_as_dovecot_names_it(dovecot):
    root = Path(dovecot.maildir_path.replace("%u", "bob"))
    Maildir(root).deliver("Räume/Sub", msg("nested"))
    assert "R&AOQ-ume.Sub" in _folders(dovecot, "bob")  # Räume/Sub, as IMAP names it
    imap = dovecot.imap("bob")
    try:
        assert imap.select('"R&AOQ-ume.Sub"')[1] == [b"1"]
    finally:
        imap.logout()


def test_maildir_quota_counts_the_maildir(db, db_url, dovecot):
    add_users(db, "alice", quota_hard=1500)
    with server_at(db_url, NOW, mail_store="maildir",
                   maildir_path=dovecot.maildir_path) as server:
        big = "x" * 900 + "\r\n"
        assert _lmtp(server.port, ["alice@example.com"], msg("one", "<q1@x>", big))[0][:3] == "250"
        assert _lmtp(server.port, ["alice@example.com"],
                     msg("two", "<q2@x>", big))[0].startswith("552 5.2.2")
        imap = dovecot.imap("alice")  # the user deletes the first one over IMAP
        imap.select("INBOX")
        imap.store("1", "+FLAGS", r"\Deleted")
        imap.expunge()
        imap.logout()
        assert _lmtp(server.port, ["alice@example.com"], msg("two", "<q2@x>", big))[0][:3] == "250"
    assert [m["Subject"] for m in _imap_messages(dovecot, "alice")] == ["two"]


def test_maildir_failure_is_temporary_and_leaves_nothing(db, db_url, tmp_path):
    add_users(db, "alice", "bob")
    blocked = tmp_path / "mail"
    blocked.mkdir()
    (blocked / "alice").write_text("not a directory")  # alice's Maildir cannot be made
    with server_at(db_url, NOW, mail_store="maildir",
                   maildir_path=f"{blocked}/%u/Maildir") as server:
        alice, bob = _lmtp(server.port, ["alice@example.com", "bob@example.com"], msg())
    assert alice.startswith("451 4.3.0") and bob.startswith("250")
    assert len(list((blocked / "bob" / "Maildir" / "new").iterdir())) == 1
    # alice's Message-ID claim was rolled back: the MTA's retry is not a "duplicate".
    with server_at(db_url, NOW, mail_store="maildir",
                   maildir_path=f"{tmp_path}/other/%u/Maildir") as server:
        assert _lmtp(server.port, ["alice@example.com"], msg())[0] == "250 2.0.0 Ok: delivered"


# --- lmtp ------------------------------------------------------------------------------

def test_lmtp_mail_is_stored_by_dovecot_and_answers_passed_on(db, db_url, dovecot):
    add_users(db, "alice", "carol", "full")  # carol is unknown to Dovecot
    add_resource(db, "room", ROOM)
    with server_at(db_url, NOW, mail_store="lmtp", store_lmtp=dovecot.lmtp_address) as server:
        answers = _lmtp(server.port, ["alice@example.com", "carol@example.com",
                                      "full@example.com"], msg("Hi", body="y" * 3000))
        assert answers[0].startswith("250 2.0.0 <alice@example.com>")
        assert answers[1].startswith("550 5.1.1 <carol@example.com> User doesn't exist")
        assert answers[2].startswith("552 5.2.2 <full@example.com> Quota exceeded")
        booked = _lmtp(server.port, [ROOM], invite("u1", T9, T9 + HOUR, ROOM))
        assert booked[0] == "250 2.0.0 Ok: delivered"
    [mail] = _imap_messages(dovecot, "alice")  # once, though the batch ran twice
    assert mail["Subject"] == "Hi"
    # Dovecot, the final delivery, writes Return-Path; the engine adds its Received.
    assert mail.get_all("Return-Path") == [f"<{SENDER}>"]
    assert any("(mr-engine) with LMTP" in r for r in mail.get_all("Received"))
    assert _imap_messages(dovecot, "full") == []
    # The resource's processed request stays in the engine's store, beside its booking.
    assert [m.folder for m in messages_of(db, "room")] == ["Processed Requests"]
    assert _imap_messages(dovecot, "room") == []


def test_lmtp_over_a_unix_socket_reuses_one_connection(db, db_url, dovecot):
    add_users(db, "alice", "bob")
    with server_at(db_url, NOW, mail_store="lmtp", store_lmtp=dovecot.lmtp_socket) as server:
        for n in range(3):
            answers = _lmtp(server.port, ["alice@example.com", "bob@example.com"],
                            msg(f"m{n}", f"<u{n}@x>"))
            assert all(a.startswith("250 2.0.0") for a in answers), answers
    assert [m["Subject"] for m in _imap_messages(dovecot, "bob")] == ["m0", "m1", "m2"]
    # Six deliveries, one connection on the socket (LHLO once).
    assert dovecot.log.read_text().count("Info: Connect from local") == 1


class _LmtpStub(Controller):
    """An aiosmtpd LMTP server answering what its Sink is told to."""

    def factory(self):
        return LMTP(self.handler)


@pytest.fixture
def stub():
    sink = Sink()
    controller = _LmtpStub(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.mark.parametrize("rcpt, data, answer", [
    ("452 4.2.2 Mailbox over quota", None, "452 4.2.2 Mailbox over quota"),
    (None, "554 5.6.0 Content rejected", "554 5.6.0 Content rejected"),
    ("450 try again later", None, "450 4.0.0 try again later"),  # no enhanced code given
])
def test_downstream_answers_are_passed_on(db, db_url, stub, rcpt, data, answer):
    add_users(db, "alice", "bob")
    if rcpt:
        stub.handler.rcpt_replies["bob@example.com"] = rcpt
    stub.handler.data_reply = data
    with server_at(db_url, NOW, mail_store="lmtp",
                   store_lmtp=f"127.0.0.1:{stub.port}") as server:
        assert _lmtp(server.port, ["bob@example.com"], msg())[0] == answer


def test_downstream_down_is_451_and_rolls_back_booking_and_replies(db, db_url, dovecot):
    add_users(db, "alice")
    add_resource(db, "dave", "dave@example.com", resource_type="none")  # auto-accepts
    with db.write() as session:
        set_oof(session, get_user(session, "alice"), enabled=True, subject="Away",
                body="Back soon")
    request = invite("u1", T9, T9 + HOUR, "dave@example.com", message_id="<i1@remote>")
    down = f"127.0.0.1:{free_port()}"
    with server_at(db_url, NOW, mail_store="lmtp", store_lmtp=down) as server:
        assert _lmtp(server.port, ["alice@example.com"], msg())[0].startswith("451 4.4.1")
        assert _lmtp(server.port, ["dave@example.com"], request)[0].startswith("451 4.4.1")
    assert _booked(db, "dave") == [] and outbox_rows(db) == []
    # The MTA retries once the downstream server is back: everything happens once.
    with server_at(db_url, NOW, mail_store="lmtp", store_lmtp=dovecot.lmtp_address) as server:
        assert _lmtp(server.port, ["alice@example.com"], msg())[0].startswith("250")
        assert _lmtp(server.port, ["dave@example.com"], request)[0].startswith("250")
    assert _booked(db, "dave") == ["u1"]
    assert sorted(r.subject for r in outbox_rows(db)) == ["Accepted: Planning", "Away [Hello]"]
    assert [m["Subject"] for m in _imap_messages(dovecot, "dave")] == ["Invitation: Planning"]


def test_lmtp_mode_needs_store_lmtp(tmp_path):
    env = serve_env(f"sqlite:///{tmp_path}/store.db", mail_store="lmtp")
    with ServeProcess(env, wait=False) as serve:
        assert serve.proc.wait(60) != 0
        serve.wait_for("store_lmtp")


# --- a crash between the Maildir file and the commit ------------------------------------

def _maildir_copies(root: Path, user: str) -> dict[str, int]:
    """Message-ID -> copies in the user's Maildir (new/ and cur/)."""
    copies: dict[str, int] = {}
    for sub in ("new", "cur"):
        directory = root / user / "Maildir" / sub
        for path in directory.iterdir() if directory.is_dir() else []:
            mid = email.message_from_bytes(path.read_bytes())["Message-ID"]
            copies[mid] = copies.get(mid, 0) + 1
    return copies


def test_kill_between_file_and_commit_leaves_a_duplicate_not_a_loss(db, db_url, tmp_path):
    """Deterministic on PostgreSQL: bob's delivery waits on a row lock this test holds, so
    the batch has written alice's file and not committed when the server is killed."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a row lock holds the batch between file and commit on PostgreSQL only")
    add_users(db, "alice", "bob")  # alice first: her delivery runs first in the batch
    mail = tmp_path / "mail"
    env = serve_env(db_url, mail_store="maildir", maildir_path=f"{mail}/%u/Maildir",
                    workers="1")
    locker = create_engine(db_url)
    try:
        with locker.connect() as conn, ServeProcess(env) as serve:
            conn.execute(text("SELECT id FROM mailboxes WHERE name = 'bob' FOR UPDATE"))
            answers: list[str] = []
            sending = threading.Thread(target=lambda: answers.extend(_try_lmtp(
                serve.port, ["alice@example.com", "bob@example.com"], msg())))
            sending.start()
            _wait_for(lambda: _maildir_copies(mail, "alice"))
            os.kill(serve.proc.pid, signal.SIGKILL)
            serve.proc.wait(10)
            sending.join(30)
            conn.rollback()
        assert not any(a.startswith("250") for a in answers)  # no 250 before the commit
        assert _maildir_copies(mail, "alice") == {"<m1@example.com>": 1}
        with ServeProcess(env) as serve:  # the MTA delivers again
            assert [a[:3] for a in _lmtp(serve.port, ["alice@example.com", "bob@example.com"],
                                         msg())] == ["250", "250"]
    finally:
        locker.dispose()
    assert _maildir_copies(mail, "alice") == {"<m1@example.com>": 2}  # the documented duplicate
    assert _maildir_copies(mail, "bob") == {"<m1@example.com>": 1}


def test_every_acknowledged_message_survives_kill_9_under_load(db, db_url, tmp_path):
    add_users(db, "alice", "bob")
    mail = tmp_path / "mail"
    env = serve_env(db_url, mail_store="maildir", maildir_path=f"{mail}/%u/Maildir",
                    workers="1")
    acknowledged: set[str] = set()
    with ServeProcess(env) as serve:
        senders = [threading.Thread(target=_send_until_refused,
                                    args=(serve.port, f"s{i}", acknowledged))
                   for i in range(4)]
        for sender in senders:
            sender.start()
        _wait_for(lambda: len(acknowledged) >= 60)
        os.kill(serve.proc.pid, signal.SIGKILL)
        serve.proc.wait(10)
        for sender in senders:
            sender.join(60)
    for user in ("alice", "bob"):  # before any retry: every 250 is on disk already
        copies = _maildir_copies(mail, user)
        assert acknowledged <= set(copies)
        assert all(count == 1 for count in copies.values())


def _send_until_refused(port: int, tag: str, acknowledged: set[str]) -> None:
    """Messages to alice and bob until the server is gone; the Message-IDs both got 250 for."""
    for n in range(10_000):
        mid = f"<{tag}.{n}@load>"
        answers = _try_lmtp(port, ["alice@example.com", "bob@example.com"], msg(message_id=mid))
        if len(answers) < 2 or not all(a.startswith("250") for a in answers):
            return
        acknowledged.add(mid)


def _try_lmtp(port: int, recipients: list[str], message: bytes) -> list[str]:
    try:
        return _lmtp(port, recipients, message)
    except (OSError, StopIteration, AssertionError):
        return []  # killed mid-transaction: the MTA has no answer


def _wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
