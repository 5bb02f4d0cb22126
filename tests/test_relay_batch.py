"""The relay's batched side, on both backends: outbox.record_all gives every message of a
batch the fate ``record`` gives it alone (fully accepted, partly refused, lease lost), and
the server's relay keeps its SMTP connection from pass to pass."""

from __future__ import annotations

import datetime as dt

from mr_engine.delivery.relay import Relay, SmtpLink
from mr_engine.store import outbox
from mr_engine.store.outbox import SENT, QUEUED, FAILED, AttemptResult, SendOutcome
from mr_engine.testing.smarthost import relay_settings
from mr_engine.testing.store_views import outbox_rows

LEASE, LIFETIME = dt.timedelta(minutes=5), dt.timedelta(days=5)


def queue(db, now, recipients_per_message):
    with db.write() as session:
        for i, rcpts in enumerate(recipients_per_message):
            outbox.enqueue(session, sender="res@example.org", recipients=list(rcpts),
                           content=f"Subject: m{i}\n\nbody\n".encode(), subject=f"m{i}",
                           now=now)


def test_a_batch_is_recorded_as_each_message_alone(db, now):
    queue(db, now, [["a@example.org"], ["b@example.org", "c@example.org"],
                    ["d@example.org"], ["e@example.org"]])
    with db.write() as session:
        jobs = outbox.claim(session, "me", now, LEASE, 10)
    assert [j.attempts for j in jobs] == [1, 1, 1, 1]
    with db.write() as session:  # the fourth's lease went to another worker meanwhile
        [taken] = outbox.claim(session, "other", now + 2 * LEASE, LEASE, 1)
    assert taken.id == jobs[0].id
    outcomes = [
        SendOutcome(("a@example.org",), reply="250 ok"),
        SendOutcome(("b@example.org",), temporary={"c@example.org": "451 later"}),
        SendOutcome(permanent={"d@example.org": "550 no"}),
        SendOutcome(("e@example.org",), reply="250 ok")]
    with db.write() as session:
        results = outbox.record_all(session, list(zip(jobs, outcomes)), "me", now, LIFETIME)
    assert results[0] == []  # lost lease: the other worker records it
    assert [r.status for r in results[1]] == [SENT, QUEUED]
    assert results[2] == [AttemptResult(jobs[2].id, FAILED, ("d@example.org",), "550 no")]
    assert results[3] == [AttemptResult(jobs[3].id, SENT, ("e@example.org",))]
    rows = {r.id: r for r in outbox_rows(db)}
    assert (rows[jobs[0].id].status, rows[jobs[0].id].lease_owner) == (QUEUED, "other")
    assert rows[jobs[0].id].attempts == 2
    done = rows[jobs[3].id]
    assert (done.status, done.lease_owner, done.lease_until, done.last_error,
            done.recipients, done.attempts) == (SENT, None, None, "", "e@example.org", 1)


def test_claim_reads_the_envelope_and_stamps_the_lease(db, now):
    queue(db, now, [["x@example.org", "y@example.org"]])
    with db.write() as session:
        [job] = outbox.claim(session, "me", now, LEASE, 5)
    assert (job.sender, job.recipients, job.content) == (
        "res@example.org", ("x@example.org", "y@example.org"), b"Subject: m0\n\nbody\n")
    [row] = outbox_rows(db)
    assert (row.lease_owner, row.lease_until, row.attempts) == ("me", now + LEASE, 1)
    with db.write() as session:
        assert outbox.claim(session, "you", now, LEASE, 5) == []


def test_release_gives_back_only_the_owners_claims_uncounted(db, now):
    queue(db, now, [["a@example.org"], ["b@example.org"], ["c@example.org"]])
    with db.write() as session:
        mine = outbox.claim(session, "me", now, LEASE, 3)
    with db.write() as session:  # the first's lease expired and another worker took it
        [taken] = outbox.claim(session, "other", now + 2 * LEASE, LEASE, 1)
    assert taken.id == mine[0].id
    with db.write() as session:
        outbox.release(session, [job.id for job in mine], "me")
        outbox.release(session, [], "me")
    rows = {r.id: r for r in outbox_rows(db)}
    assert (rows[taken.id].lease_owner, rows[taken.id].attempts) == ("other", 2)
    for job in mine[1:]:
        assert (rows[job.id].status, rows[job.id].lease_owner, rows[job.id].lease_until,
                rows[job.id].attempts) == (QUEUED, None, None, 0)
    with db.write() as session:  # due again at once, for anyone
        assert [j.id for j in outbox.claim(session, "you", now, LEASE, 5)] == \
            [job.id for job in mine[1:]]


# --- the server's relay keeps its SMTP connection from pass to pass ---------------------------

def queue_one(db, now, rcpt="bob@example.org"):
    with db.write() as session:
        outbox.enqueue(session, sender="", recipients=[rcpt], content=b"Subject: x\r\n\r\nx\r\n",
                       subject="x", now=now)


def test_a_kept_connection_serves_the_next_pass_and_an_idle_pass_closes_it(db, now, smarthost):
    relay = Relay(db, relay_settings(smarthost.port))
    link = SmtpLink(relay.settings)
    queue_one(db, now)
    assert len(relay.run_pass(now, link).attempts) == 1
    kept = link._smtp
    assert kept is not None
    queue_one(db, now)
    assert len(relay.run_pass(now, link).attempts) == 1
    assert link._smtp is kept
    assert relay.run_pass(now, link).attempts == []
    assert link._smtp is None
    assert [r.status for r in outbox_rows(db)] == [SENT, SENT]


def test_a_kept_connection_the_smarthost_dropped_is_replaced_not_deferred(db, now, smarthost):
    relay = Relay(db, relay_settings(smarthost.port))
    link = SmtpLink(relay.settings)
    queue_one(db, now)
    relay.run_pass(now, link)
    dropped = link._smtp
    smarthost.stop()  # drops the session the link holds
    smarthost.start()
    queue_one(db, now, "carol@example.org")
    [[result]] = relay.run_pass(now, link).attempts
    assert (result.status, result.recipients) == (SENT, ("carol@example.org",))
    assert [r.rcpt_tos for r in smarthost.sink.received] == [["bob@example.org"],
                                                             ["carol@example.org"]]
    assert link._smtp is not dropped
    link.close()
