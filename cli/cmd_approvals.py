"""``mr-engine approvals``: the requests waiting for a delegate, and deciding them.

``approvals [--json]`` lists the pending approvals (JSON keys ``id``, ``resource``, ``uid``,
``summary``, ``organizer``, ``start``, ``end``, ``requested_at``, ``expires_at``);
``approvals accept ID [--comment TEXT]`` and ``approvals decline ID [--comment TEXT]``
decide one, with the replies a delegate's decision sends (queued for the relay).
"""

from __future__ import annotations

import argparse
from typing import Any

from mr_engine.clock import utcnow
from mr_engine.core.printable import printable
from mr_engine.services import approvals
from mr_engine.services.meeting_requests import queue_replies
from mr_engine.store import approvals as store
from mr_engine.store.models import Approval

from .common import add_config_flags, fail, iso, open_db, print_json, settings_from


def add_parser(sub) -> None:
    parser = sub.add_parser("approvals", help="requests waiting for approval: list, decide")
    add_config_flags(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    for action, what in (("accept", "approve the request"), ("decline", "decline it")):
        decide = actions.add_parser(action, help=what)
        decide.add_argument("id", type=int, help="the approval, as the list shows it")
        decide.add_argument("--comment", default="", metavar="TEXT",
                            help="passed on to the organizer")
    parser.set_defaults(func=run)


def row_of(a: Approval) -> dict[str, Any]:
    return {"id": a.id, "resource": a.resource.name, "uid": a.uid, "summary": a.summary,
            "organizer": a.organizer, "start": iso(a.start), "end": iso(a.end),
            "requested_at": iso(a.requested_at), "expires_at": iso(a.expires_at)}


def _print_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no approvals pending")
    for r in rows:
        # Summary, organizer and UID come from the invitation: escaped, one line each.
        print(f"{r['id']:>6}  {printable(r['resource'])}  {r['start']}  "
              f"{printable(r['organizer'])}  expires {r['expires_at']}")
        print(f"{'':>8}{printable(r['summary'])}  (UID {printable(r['uid'])})")


def _list(args: argparse.Namespace) -> int:
    with open_db(settings_from(args)).read() as session:
        rows = [row_of(a) for a in store.list_pending(session)]
    if args.json:
        print_json(rows)
    else:
        _print_rows(rows)
    return 0


def _decide(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    now = utcnow()
    try:
        with open_db(settings).write() as session:
            done = approvals.decide(session, args.id, args.action == "accept",
                                    approvals.ADMINISTRATOR, args.comment.strip(), settings, now)
            queue_replies(session, done.replies, now)
    except store.ApprovalError as exc:
        return fail(str(exc))
    count = len(done.replies)
    print(f"approval {done.approval_id} {done.outcome}; {count} "
          f"{'reply' if count == 1 else 'replies'} queued")
    return 0


def run(args: argparse.Namespace) -> int:
    return _list(args) if args.action is None else _decide(args)
