"""Out-of-office state, the per-sender reply log, and the delivery step, on both databases."""

from __future__ import annotations

import datetime as dt
import email
import threading

import pytest
from sqlalchemy import select

from mr_engine.delivery.context import Batch, Delivery, Envelope
from mr_engine.delivery.oof import out_of_office
from mr_engine.config import Settings
from mr_engine.store.db import open_database
from mr_engine.store.directory import DirectoryError, create_user
from mr_engine.store.mailbox_rows import MailboxRow
from mr_engine.store.models import OutOfOfficeLog
from mr_engine.store.oof_state import OofState, claim_reply, get_oof, set_oof
from mr_engine.store.stores import create_store
from mr_engine.testing.store_views import outbox_rows

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("state, active", [
    (OofState(enabled=False), False),
    (OofState(enabled=True), True),
    (OofState(enabled=True, start=T0), True),  # bounds are inclusive
    (OofState(enabled=True, until=T0), True),
    (OofState(enabled=True, start=T0 + HOUR), False),
    (OofState(enabled=True, until=T0 - HOUR), False),
    (OofState(enabled=True, start=T0 - DAY, until=T0 + DAY), True),
    (OofState(enabled=False, start=T0 - DAY, until=T0 + DAY), False),
])
def test_active_means_enabled_and_inside_the_period(state, active):
    assert state.active(T0) == active


@pytest.fixture
def alice(db, now):
    with db.write() as session:
        mailbox = create_user(session, name="alice", email="Alice@Example.com",
                              fullname="Alice Liddell", now=now)
        create_store(session, mailbox, now)
    return mailbox


def test_state_defaults_and_partial_changes(db, alice, now):
    with db.write() as session:
        assert get_oof(session, alice) == OofState()
        set_oof(session, alice, enabled=True, subject="Away", body="Back soon",
                start=now, until=now + DAY)
    with db.write() as session:
        state = set_oof(session, alice, until=None)
    with db.read() as session:
        assert get_oof(session, alice) == state == OofState(True, "Away", "Back soon", now, None)


def test_invalid_changes_are_refused(db, alice, now):
    with db.write() as session:
        with pytest.raises(DirectoryError):
            set_oof(session, alice, start=now, until=now - HOUR)
        with pytest.raises(ValueError):
            set_oof(session, alice, start=dt.datetime(2026, 1, 1))
        with pytest.raises(ValueError):
            set_oof(session, alice, colour="red")


def test_reply_log_is_per_mailbox_case_insensitive_and_ages_out(db, alice, now):
    with db.write() as session:
        bob = create_user(session, name="bob", email="bob@example.com", now=now)
        assert claim_reply(session, alice, "Carol@Example.org", now, DAY)
    with db.write() as session:
        assert not claim_reply(session, alice, "carol@example.ORG", now + DAY - HOUR, DAY)
        assert claim_reply(session, bob, "carol@example.org", now, DAY)  # per mailbox
        assert claim_reply(session, alice, "CAROL@example.org", now + 2 * DAY, 86400)  # upsert
    with db.read() as session:
        sent = {row.mailbox_id: row.last_sent_at for row in session.scalars(select(OutOfOfficeLog))}
        assert sent == {alice.id: now + 2 * DAY, bob.id: now}


def test_claim_reply_checks_and_records_in_one_step(db, alice, now):
    with db.write() as session:
        assert claim_reply(session, alice, "carol@example.org", now, DAY)
        assert not claim_reply(session, alice, "Carol@example.org", now + HOUR, DAY)
        assert claim_reply(session, alice, "carol@example.org", now + DAY, DAY)
        assert not claim_reply(session, alice, "carol@example.org", now + DAY, DAY)


def test_concurrent_claims_let_only_one_delivery_reply(db_url, alice, now):
    other = open_database(db_url)
    results: list[bool] = []
    try:
        with other.write() as first:
            results.append(claim_reply(first, alice, "carol@example.org", now, DAY))
            # The second delivery waits for the first's lock, then sees its record.
            second = threading.Thread(target=lambda: results.append(_claim(db_url, alice, now)))
            second.start()
            second.join(0.5)
            assert second.is_alive()
        second.join(30)
    finally:
        other.dispose()
    assert results == [True, False]


def _claim(db_url: str, mailbox, now: dt.datetime) -> bool:
    db = open_database(db_url, auto_upgrade=False)
    try:
        with db.write() as session:
            return claim_reply(session, mailbox, "carol@example.org", now + HOUR, DAY)
    finally:
        db.dispose()


# --- the pipeline step with a real Delivery ----------------------------------------------------

SETTINGS = Settings().replace(hostname="mr.test", oof_interval=86400)


def deliver(db, mailbox, now, *extra: str, sender: str = "bob@example.org",
            meeting_request: bool = False, raw: bytes | None = None) -> Delivery:
    content = raw or "\r\n".join(["From: Bob <bob@example.org>", "To: alice@example.com",
                                  "Subject: Lunch?", "Message-ID: <m1@example.org>", *extra,
                                  "", "hello", ""]).encode()
    msg = email.message_from_bytes(content)
    envelope = Envelope(sender=sender, content=content, message=msg,
                        message_id=msg.get("Message-ID"))
    with db.write() as session:
        mailbox = session.merge(mailbox)
        d = Delivery(session=session, settings=SETTINGS, now=now, envelope=envelope,
                     recipient="alice@example.com", row=MailboxRow.of(mailbox),
                     batch=Batch.load(session, [mailbox.id]), meeting_request=meeting_request)
        out_of_office(d)
    return d


@pytest.fixture
def away(db, alice, now):
    with db.write() as session:
        set_oof(session, alice, enabled=True, subject="Away", body="Back on Monday",
                start=now - DAY, until=now + 7 * DAY)
    return alice


def test_step_queues_one_null_sender_reply_per_interval(db, away, now):
    d = deliver(db, away, now)
    assert d.queued == 1 and d.notes == ["oof reply queued to bob@example.org"]
    [row] = outbox_rows(db)
    assert (row.sender, row.recipients, row.status, row.subject) == (
        "", "bob@example.org", "queued", "Away [Lunch?]")
    reply = email.message_from_bytes(row.content)
    assert reply["From"] == "Alice Liddell <Alice@Example.com>"
    assert reply["In-Reply-To"] == "<m1@example.org>"
    d = deliver(db, away, now + HOUR, sender="BOB@example.org")
    assert d.queued == 0 and d.notes == ["no oof reply: already replied within oof_interval"]
    assert deliver(db, away, now + DAY).queued == 1
    assert len(outbox_rows(db)) == 2


@pytest.mark.parametrize("changes", [{"enabled": False}, {"until": T0 - HOUR},
                                     {"start": T0 + HOUR}])
def test_step_does_nothing_outside_the_period(db, away, now, changes):
    with db.write() as session:
        set_oof(session, away, **changes)
    d = deliver(db, away, now)
    assert (d.queued, d.notes, outbox_rows(db)) == (0, [], [])


@pytest.mark.parametrize("kwargs, note", [
    ({"meeting_request": True}, "no oof reply: meeting request"),
    ({"sender": ""}, "no oof reply: null envelope sender"),
    ({"sender": "owner-list@example.org"}, "no oof reply: system or list sender owner-list"),
])
def test_step_respects_the_rules(db, away, now, kwargs, note):
    d = deliver(db, away, now, **kwargs)
    assert (d.queued, d.notes, outbox_rows(db)) == (0, [note], [])
    with db.read() as session:
        assert session.scalars(select(OutOfOfficeLog)).all() == []


def test_step_skips_unusable_headers_without_failing(db, away, now, caplog):
    raw = (b"From: \xff\r\nTo: alice@example.com\r\nSubject: \xe9\xff\r\n"
           b"Message-ID: <\xff@x>\r\n\r\nhi\r\n")
    # An address the reply could not be sent to is refused by the rules, without a traceback.
    d = deliver(db, away, now, raw=raw, sender='a"b@example.org')
    assert d.queued == 0 and d.notes == ["no oof reply: invalid envelope sender"]
    assert "Traceback" not in caplog.text
    assert deliver(db, away, now, raw=raw).queued == 1  # 8-bit junk alone is no obstacle
