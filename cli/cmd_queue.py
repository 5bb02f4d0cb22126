"""``mr-engine queue``: list, retry, delete and flush the outbound queue.

``queue [--all] [--json]`` lists the queued and failed messages (``--all`` adds the sent ones
the hourly upkeep has not pruned yet, see ``queue_keep_sent``; ``--json`` lists every row
kept); ``queue retry ID|--all`` makes failed or queued messages due now; ``queue delete ID``
drops one; ``queue flush`` makes one relay pass right away, without a running server, after
making every queued message due (as Postfix's ``postqueue -f`` does), and prints what
happened to each.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

from mr_engine.store import outbox
from mr_engine.store.outbox import AttemptResult, QueueEntry, QueueError
from mr_engine.delivery.relay import Relay
from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.store.db import Database
from mr_engine.core.printable import printable

from .common import add_config_flags, fail, iso, open_db, print_json, settings_from


def add_parser(sub) -> None:
    parser = sub.add_parser("queue", help="the outbound queue: list, retry, delete, flush")
    add_config_flags(parser)
    _listing_flags(parser, False)  # ``queue --all`` as ``queue list --all``
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    _listing_flags(actions.add_parser("list", help="list the queue (the default)"),
                   argparse.SUPPRESS)
    retry = actions.add_parser("retry", help="make failed or queued messages due now")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=int, help="the message")
    which.add_argument("--all", action="store_true", help="every failed or queued message")
    delete = actions.add_parser("delete", help="remove a message from the queue")
    delete.add_argument("id", type=int)
    actions.add_parser("flush", help="send what is queued now, without a running server")
    parser.set_defaults(func=run)


def _listing_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    # SUPPRESS on ``list``: a flag given before it is kept, not reset by its default.
    parser.add_argument("--json", action="store_true", default=default,
                        help="machine-readable output: every message kept, sent ones too")
    parser.add_argument("--all", action="store_true", default=default,
                        help="the sent messages too (kept for queue_keep_sent)")


def entry_json(e: QueueEntry) -> dict[str, Any]:
    return {"id": e.id, "sender": e.sender, "recipients": e.recipients, "subject": e.subject,
            "status": e.status, "attempts": e.attempts, "next_attempt_at": iso(e.next_attempt_at),
            "last_error": e.last_error}


def _print_list(entries: list[QueueEntry], as_json: bool, show_sent: bool) -> None:
    if as_json:
        print_json([entry_json(e) for e in entries])
        return
    shown = [e for e in entries if show_sent or e.status != outbox.SENT]
    hidden = len(entries) - len(shown)
    if shown:
        _print_rows(shown)
    elif not hidden:
        print("the queue is empty")
    if hidden:
        print(f"{hidden} sent message(s) not shown: --all lists them")


def _print_rows(entries: list[QueueEntry]) -> None:
    print(f"{'ID':>6}  {'Status':<7} {'Tries':>5}  {'Next attempt':<20}  Sender -> Recipients")
    for e in entries:
        # Only a queued message has a next attempt: a sent or failed one is done.
        due = iso(e.next_attempt_at) if e.status == outbox.QUEUED else ""
        # Subjects, addresses and the smarthost's answer are the mail's and the peer's text.
        print(f"{e.id:>6}  {e.status:<7} {e.attempts:>5}  {due:<20}  "
              f"{printable(e.sender or '<>')} -> {_addresses(e.recipients)}")
        print(f"{'':>8}Subject: {printable(e.subject)}")
        if e.last_error:
            print(f"{'':>8}Error: {printable(e.last_error)}")


def _addresses(recipients: Sequence[str]) -> str:
    return printable(", ".join(recipients))


def _print_flush(attempts: list[list[AttemptResult]], as_json: bool) -> None:
    results = [r for rows in attempts for r in rows]
    if as_json:
        print_json([{"id": r.id, "status": r.status, "recipients": list(r.recipients),
                     "error": r.error} for r in results])
        return
    if not results:
        print("nothing to send")
    for r in results:
        error = f": {printable(r.error)}" if r.error else ""
        print(f"message {r.id} to {_addresses(r.recipients)}: {r.status}{error}")


def _flush(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    with db.write() as session:
        outbox.make_all_due(session, utcnow())
    relay, attempts = Relay(db, settings), []
    while True:  # one pass, continued if it stopped at its time budget
        done = relay.run_pass(utcnow())
        attempts += done.attempts
        if done.complete:
            break
    _print_flush(attempts, args.json)
    return 0


def _change(args: argparse.Namespace, db: Database) -> int:
    now = utcnow()
    with db.write() as session:
        if args.action == "delete":
            outbox.delete(session, args.id)
            message = f"message {args.id} deleted"
        elif args.all:
            message = f"{outbox.retry_all(session, now)} message(s) queued for retry"
        else:
            outbox.retry(session, args.id, now)
            message = f"message {args.id} queued for retry"
    print(message)
    return 0


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_db(settings)
    try:
        if args.action in (None, "list"):
            with db.read() as session:
                _print_list(outbox.list_queue(session), args.json, args.all)
            return 0
        if args.action == "flush":
            return _flush(args, settings, db)
        return _change(args, db)
    except QueueError as exc:
        return fail(str(exc))
    finally:
        db.dispose()
