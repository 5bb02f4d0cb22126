"""``kopano-mr-accept USER``: process one message from stdin as delivery to USER would.

Books (or declines, updates, cancels) and queues the reply in one transaction, then prints
the outcome: ``accepted``, ``declined: <reasons>``, ``ignored: <reason>`` or ``cancelled``.
Exit 0 when processed, 1 when the message is not a meeting request for USER.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import sys

from delivery.meeting import book_and_queue
from mr_engine import booking
from mr_engine.clock import utcnow
from mr_engine.directory import get_user
from mr_engine.itip import invitation_in, read_calendar

from .common import add_config_flags, open_db, run_guarded, settings_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kopano-mr-accept", description=__doc__.splitlines()[0])
    add_config_flags(parser)
    parser.add_argument("user", help="the resource (or user) the message is for")
    args = parser.parse_args(argv)
    return run_guarded(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    raw = sys.stdin.buffer.read()
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    message_id = (message.get("Message-ID") or "").strip() or None
    calendar = read_calendar(message)  # parsed before the write lock is taken
    now = utcnow()
    db = open_db(settings)
    with db.write() as session:
        resource = get_user(session, args.user)
        if not resource.mr_accept:
            print(f"{args.user}: auto-accept of meeting requests is off", file=sys.stderr)
            return 1
        req = booking.read_request(resource, lambda zone: invitation_in(calendar, zone),
                                   message_id, settings, now)
        if req is None:
            print(f"not a meeting request for {args.user}", file=sys.stderr)
            return 1
        result = book_and_queue(session, req, now)
    if result.outcome in ("declined", "ignored"):
        print(result.describe())
    else:
        # "accepted" (a partially declined series too) and "cancelled" stand alone on
        # stdout; what else happened goes to stderr.
        print(result.outcome)
        if result.reasons:
            print(result.describe(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
