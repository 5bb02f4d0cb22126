"""LMTP delivery over real sockets (RFC 2033), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import smtplib
import subprocess
import threading
import time

import pytest
from sqlalchemy import select, text

from mr_engine.delivery import pipeline
from mr_engine.delivery.context import Delivery
from mr_engine.store.db import open_database
from mr_engine.store.directory import add_member, create_group, get_user
from mr_engine.store.models import Message
from mr_engine.store.stores import store_of

from mr_engine.testing import commands
from mr_engine.testing.accounts import add_users
from mr_engine.testing.lmtp_client import RawClient, send_message
from mr_engine.testing.mail import msg
from mr_engine.testing.paths import BIN
from mr_engine.testing.servers import RunningServer, make_settings
from mr_engine.testing.store_views import messages_of


@pytest.fixture
def server(db, db_url):
    with RunningServer(make_settings(db_url)) as running:
        yield running


def test_lhlo_advertises_rfc2033_extensions_and_refuses_helo(server):
    client = RawClient(server.port)
    assert client.reply()[0].startswith("220 ")
    lines = client.command("LHLO client.example")
    assert lines[-1].startswith("250 ") and all(l.startswith("250-") for l in lines[:-1])
    extensions = {line[4:] for line in lines[1:]}
    assert {"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
            f"SIZE {50 * 1024 * 1024}"} <= extensions
    assert client.command("HELO client.example")[0].startswith("500 5.5.1")
    assert client.command("EHLO client.example")[0].startswith("500 5.5.1")
    client.close()


def test_delivery_stores_trace_headers_before_the_intact_original(server, db):
    add_users(db, "alice")
    original = msg(extra="X-Odd: \xe9t\xe9\r\n").replace(b"\xc3\xa9", b"\xe9")
    client = RawClient(server.port)
    client.reply()
    rcpt, data = send_message(client, "sender@remote.example", ["alice@example.com"], original)
    assert rcpt == ["250 2.1.5 Ok"] and data[0].startswith("250 2.0.0")
    with db.read() as session:
        stored = session.scalar(select(Message.content))
    head, _, rest = stored.partition(b"From: Sender")
    assert head.startswith(b"Return-Path: <sender@remote.example>\r\n"
                           b"Delivered-To: alice@example.com\r\nReceived: from test.example")
    assert b"by mx.test (mr-engine) with LMTP" in head
    assert b"From: Sender" + rest == original
    [info] = messages_of(db, "alice", "Inbox")
    assert info.subject == "Hello" and info.size == len(stored)


def test_per_recipient_replies_in_rcpt_order_with_partial_failure(server, db):
    add_users(db, "alice", "carol")
    add_users(db, "bob", quota_hard=100)  # any message is over this hard quota
    client = RawClient(server.port)
    client.reply()
    rcpt, data = send_message(client, "s@remote.example",
                              ["alice@example.com", "nobody@example.com", "bob@example.com",
                               "carol@example.com"], msg())
    assert rcpt[1].startswith("550 5.1.1")
    assert [d[:9] for d in data] == ["250 2.0.0", "552 5.2.2", "250 2.0.0"]
    assert len(messages_of(db, "alice")) == 1 and len(messages_of(db, "carol")) == 1
    with db.read() as session:  # the refused delivery left nothing, not even a first store
        assert store_of(session, get_user(session, "bob")) is None


def test_replies_to_pipelined_commands_go_out_together_and_never_wait(server, db):
    # RFC 2920 §3.2: held while the next command is already received, sent before waiting.
    add_users(db, "alice")
    client = RawClient(server.port)
    client.reply()
    client.command("LHLO client.example")
    client.send("MAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.com>\r\n"
                "RCPT TO:<nobody@example.com>\r\nDATA\r\n")
    first = client.sock.recv(65536)  # all four in one write: the first read has them
    assert [line.split(" ")[0] for line in first.decode().split("\r\n")[:-1]] == \
        ["250", "250", "550", "354"]
    client.send(b"Subject: x\r\n\r\nhi\r\n.\r\nRSET\r\nMAIL FROM:<s@remote.example>\r\nRC")
    # The last line is not complete: the client may be waiting, so nothing is held.
    assert [client.reply()[0][:3] for _ in range(3)] == ["250", "250", "250"]
    assert client.command("PT TO:<alice@example.com>") == ["250 2.1.5 Ok"]
    client.close()


def test_group_address_delivers_once_to_each_member(server, db):
    add_users(db, "alice", "bob")
    with db.write() as session:
        group = create_group(session, "team", "team@example.com")
        add_member(session, group, get_user(session, "alice"))
        add_member(session, group, get_user(session, "bob"))
    client = RawClient(server.port)
    client.reply()
    rcpt, data = send_message(client, "s@remote.example",
                              ["TEAM@example.com", "alice@example.com"], msg(message_id=None))
    assert rcpt == ["250 2.1.5 Ok", "250 2.1.5 Ok"]
    assert [d[:3] for d in data] == ["250", "250"]
    assert len(messages_of(db, "alice")) == 1 and len(messages_of(db, "bob")) == 1


def test_plus_addressing_and_case_insensitive_recipients(server, db):
    add_users(db, "alice")
    with smtplib.LMTP("127.0.0.1", server.port) as client:
        refused = client.sendmail("s@remote.example", ["Alice+Lists@EXAMPLE.com"], msg())
    assert refused == {}
    [info] = messages_of(db, "alice")
    assert info.message_id == "<m1@example.com>"


def test_redelivery_of_same_message_id_is_stored_once(server, db):
    add_users(db, "alice", "bob")
    for recipients in (["alice@example.com"], ["alice@example.com", "bob@example.com"]):
        client = RawClient(server.port)
        client.reply()
        _, data = send_message(client, "s@remote.example", recipients, msg())
        assert all(d.startswith("250 2.0.0") for d in data)
        client.close()
    assert len(messages_of(db, "alice")) == 1 and len(messages_of(db, "bob")) == 1


def test_dedupe_window_zero_stores_every_copy(db, db_url):
    add_users(db, "alice")
    with RunningServer(make_settings(db_url, dedupe_window=0)) as running:
        for _ in range(2):
            with smtplib.LMTP("127.0.0.1", running.port) as client:
                client.sendmail("s@remote.example", ["alice@example.com"], msg())
    assert len(messages_of(db, "alice")) == 2


def test_oversized_message_gets_552_5_3_4_for_each_recipient(db, db_url):
    add_users(db, "alice", "bob")
    with RunningServer(make_settings(db_url, max_message_size=2000)) as running:
        client = RawClient(running.port)
        client.reply()
        assert "250-SIZE 2000" in client.command("LHLO x")
        big = msg(body="x" * 70 + "\r\n") * 40
        _, data = send_message(client, "s@r.example", ["alice@example.com", "bob@example.com"],
                               big, lhlo=False)
        assert data == ["552 5.3.4 Message size exceeds fixed maximum message size"] * 2
        # The session goes on: a declared SIZE over the limit is refused at MAIL.
        assert client.command("MAIL FROM:<s@r.example> SIZE=5000")[0].startswith("552 5.3.4")
        assert client.command("MAIL FROM:<s@r.example> SIZE=500")[0].startswith("250")
    assert messages_of(db, "alice") == []


def test_data_read_in_bulk_keeps_dots_and_refuses_an_endless_line(server, db):
    add_users(db, "alice", "bob")
    both = ["alice@example.com", "bob@example.com"]
    client = RawClient(server.port)
    client.reply()
    dotted = msg(body=".\r\n..two dots\r\n.one dot\r\n")  # the client stuffs them
    rcpt, data = send_message(client, "s@r.example", both, dotted)
    assert data[0].startswith("250 2.0.0") and len(data) == 2
    with db.read() as session:
        assert session.scalar(select(Message.content)).endswith(dotted)
    # A line over the line limit (1 MB) is read to the end and refused for each recipient;
    # the session goes on.
    endless = msg(body="y" * (1024 * 1024 + 10) + "\r\n")
    _, data = send_message(client, "s@r.example", both, endless, lhlo=False)
    assert data == ["500 5.5.2 Line too long"] * 2
    assert client.command("NOOP")[0].startswith("250")
    # A client that hangs up inside the data takes nothing with it.
    client.send("MAIL FROM:<s@r.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    assert [client.reply()[0][:3] for _ in range(3)] == ["250", "250", "354"]
    client.send(b"Subject: cut off\r\n\r\nhalf a bo")
    client.close()
    again = RawClient(server.port)
    again.reply()
    assert again.command("LHLO x")[-1].startswith("250 ")
    again.close()
    assert len(messages_of(db, "alice")) == 1


def test_messages_without_message_id_or_with_broken_mime_are_stored_as_received(server, db):
    add_users(db, "alice")
    broken = (b"From: x\r\nSubject: =?utf-8?q?broken\r\nContent-Type: multipart/mixed; "
              b"boundary=\"nope\"\r\n\r\n--other\r\ngarbage \xff\xfe\r\n")
    for body in (msg(message_id=None), broken):
        with smtplib.LMTP("127.0.0.1", server.port) as client:
            assert client.sendmail("s@r.example", ["alice@example.com"], body) == {}
    stored = messages_of(db, "alice")
    assert len(stored) == 2 and stored[0].message_id is None


def test_store_fault_answers_451_4_3_0(server, db):
    add_users(db, "alice")
    with db.write() as session:
        session.execute(text("ALTER TABLE messages RENAME TO messages_gone"))
    client = RawClient(server.port)
    client.reply()
    _, data = send_message(client, "s@r.example", ["alice@example.com"], msg())
    assert data[0].startswith("451 4.3.0")


def test_directory_fault_at_rcpt_answers_451_never_5xx(server, db):
    with db.write() as session:
        session.execute(text("ALTER TABLE mailboxes RENAME TO mailboxes_gone"))
    client = RawClient(server.port)
    client.reply()
    client.command("LHLO x")
    client.command("MAIL FROM:<s@r.example>")
    assert client.command("RCPT TO:<alice@example.com>")[0].startswith("451 4.3.0")


def test_unix_socket_listener(db, db_url, tmp_path):
    add_users(db, "alice")
    path = tmp_path / "lmtp.sock"
    with RunningServer(make_settings(db_url, lmtp_listen=(f"unix:{path}",))):
        client = RawClient(0, unix_path=str(path))
        client.reply()
        _, data = send_message(client, "s@r.example", ["alice@example.com"], msg())
        assert data[0].startswith("250 2.0.0")
    assert len(messages_of(db, "alice")) == 1


def _slow_step(d: Delivery):
    time.sleep(1.0)
    return None


def test_shutdown_finishes_a_delivery_in_flight(db, db_url, monkeypatch):
    add_users(db, "alice")
    monkeypatch.setattr(pipeline, "STEPS", [_slow_step, *pipeline.STEPS])
    running = RunningServer(make_settings(db_url)).__enter__()
    client = RawClient(running.port)
    client.reply()
    result = {}
    sender = threading.Thread(target=lambda: result.update(
        r=send_message(client, "s@r.example", ["alice@example.com"], msg())))
    sender.start()
    time.sleep(0.5)  # the delivery is now inside the slow step
    running.stop()
    sender.join(10)
    assert result["r"][1][0].startswith("250 2.0.0")
    assert len(messages_of(db, "alice")) == 1


def test_serve_logs_ready_and_exits_0_on_sigterm(db, db_url, tmp_path):
    add_users(db, "alice")
    env = {"MR_ENGINE_DATABASE_URL": db_url, "MR_ENGINE_LMTP_LISTEN": "127.0.0.1:0",
           "MR_ENGINE_SMARTHOST": "127.0.0.1:9", "MR_ENGINE_HTTP_LISTEN": "", "PATH": str(BIN)}
    proc = subprocess.Popen([str(BIN / "mr-engine"), "serve"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.time() + 30
        while "ready" not in line and time.time() < deadline:
            line = proc.stderr.readline()
        assert "ready" in line and "127.0.0.1:" in line
        port = int(line.rsplit("127.0.0.1:", 1)[1].split()[0].strip(","))
        with smtplib.LMTP("127.0.0.1", port) as client:
            assert client.sendmail("s@r.example", ["alice@example.com"], msg()) == {}
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    out = commands.run([str(BIN / "mr-engine"), "mailbox", "alice", "--json"], env=env,
                       capture_output=True, text=True, check=True).stdout
    [entry] = json.loads(out)
    assert set(entry) == {"id", "folder", "message_id", "subject", "from", "size", "received_at"}
    assert entry["folder"] == "Inbox" and entry["received_at"].endswith("Z")
    stored = commands.run([str(BIN / "mr-engine"), "message", "alice", str(entry["id"])],
                          env=env, capture_output=True, check=True).stdout
    assert stored.endswith(msg())


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_speaks_lmtp_to_us(server, db):
    add_users(db, "alice")
    result = subprocess.run(
        ["swaks", "--protocol", "LMTP", "--server", "127.0.0.1", "--port", str(server.port),
         "--from", "s@r.example", "--to", "alice@example.com,nobody@example.com",
         "--header", "Subject: via swaks"],
        capture_output=True, text=True, timeout=60)
    assert "550 5.1.1" in result.stdout and "250 2.0.0" in result.stdout
    [info] = messages_of(db, "alice")
    assert info.subject == "via swaks"


def test_a_second_process_sees_committed_deliveries(server, db, db_url):
    add_users(db, "alice")
    with smtplib.LMTP("127.0.0.1", server.port) as client:
        client.sendmail("s@r.example", ["alice@example.com"], msg())
    other = open_database(db_url)
    try:
        with other.read() as session:
            assert session.scalar(select(Message.subject)) == "Hello"
    finally:
        other.dispose()


def test_sessions_are_bounded_and_idle_sessions_time_out(db, db_url):
    with RunningServer(make_settings(db_url, max_sessions=2, session_timeout=1)) as running:
        first, second = RawClient(running.port), RawClient(running.port)
        assert first.reply()[0].startswith("220") and second.reply()[0].startswith("220")
        third = RawClient(running.port)
        assert third.reply()[0].startswith("421 4.3.2")
        time.sleep(1.5)  # both idle past the timeout: the server says so and hangs up
        for client in (first, second):
            assert client.reply()[0].startswith("421 4.4.2")
            with pytest.raises((ConnectionError, OSError)):
                client.command("NOOP")
                client.command("NOOP")
        fourth = RawClient(running.port)
        assert fourth.reply()[0].startswith("220")


def test_shutdown_waits_for_a_message_still_being_received(db, db_url):
    add_users(db, "alice")
    running = RunningServer(make_settings(db_url)).__enter__()
    client = RawClient(running.port)
    client.reply()
    client.command("LHLO x")
    client.command("MAIL FROM:<s@r.example>")
    client.command("RCPT TO:<alice@example.com>")
    assert client.command("DATA")[0].startswith("354")
    client.send(b"Subject: half\r\n\r\nfirst half\r\n")
    stopper = threading.Thread(target=running.stop)
    stopper.start()
    time.sleep(0.3)
    client.send(b"second half\r\n.\r\n")
    assert client.reply()[0].startswith("250 2.0.0")
    stopper.join(30)
    assert [m.subject for m in messages_of(db, "alice")] == ["half"]


def test_eight_bit_headers_are_listed_readably(server, db):
    add_users(db, "alice")
    raw = "Subject: Grüße aus Köln\r\nFrom: Jörg <j@ext.org>\r\n\r\nHallo\r\n".encode()
    client = RawClient(server.port)
    client.reply()
    _, data = send_message(client, "j@ext.org", ["alice@example.com"], raw)
    assert data[0].startswith("250")
    [info] = messages_of(db, "alice")
    assert (info.subject, info.from_) == ("Grüße aus Köln", "Jörg <j@ext.org>")


def test_pathological_mime_and_bare_cr_in_lhlo_are_stored_safely(server, db):
    add_users(db, "alice", "bob")
    nested = b"Subject: deep\r\nMessage-ID: <" + b"x" * 1200 + b"@y>\r\n" + b"".join(
        b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(3000)) + b"end\r\n"
    client = RawClient(server.port)
    client.reply()
    assert client.command("LHLO evil\rX-Injected: yes")[0].startswith("250")
    _, data = send_message(client, "s@r.example", ["alice@example.com", "bob@example.com"],
                           nested, lhlo=False)
    assert [d[:9] for d in data] == ["250 2.0.0", "250 2.0.0"]
    with db.read() as session:
        stored = session.scalars(select(Message.content)).all()
    assert len(stored) == 2 and all(b"\rX-Injected" not in s for s in stored)
    assert all(s.endswith(b"end\r\n") for s in stored)


def test_a_bare_local_part_is_in_the_default_domain(db, db_url):
    add_users(db, "alice")
    with RunningServer(make_settings(db_url, default_domain="example.com")) as running:
        with smtplib.LMTP("127.0.0.1", running.port) as client:
            assert client.sendmail("s@r.example", ["alice"], msg()) == {}
    assert len(messages_of(db, "alice")) == 1


def test_a_large_message_is_delivered_intact(server, db):
    add_users(db, "alice")
    big = msg(subject="big", body=("y" * 998 + "\r\n") * 1600)  # ~1.6 MB, parsed in a thread
    with smtplib.LMTP("127.0.0.1", server.port) as client:
        assert client.sendmail("s@r.example", ["alice@example.com"], big) == {}
    with db.read() as session:
        assert session.scalar(select(Message.content)).endswith(big)
