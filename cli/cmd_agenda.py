"""``mr-engine agenda USER``: the occurrences booked in a resource's calendar."""

from __future__ import annotations

import argparse
import datetime as dt

from mr_engine.store.calendar_store import agenda
from mr_engine.clock import utcnow
from mr_engine.store.directories import open_directory
from mr_engine.core.printable import printable

from .common import add_config_flags, iso, open_db, print_json, settings_from


def _instant(text: str) -> dt.datetime:
    """ISO 8601; a time without an offset is taken as UTC."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date/time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def add_parser(sub) -> None:
    parser = sub.add_parser("agenda", help="list a resource's booked occurrences")
    add_config_flags(parser)
    parser.add_argument("user")
    parser.add_argument("--start", type=_instant, help="ISO 8601 (default: now)")
    parser.add_argument("--end", type=_instant, help="ISO 8601 (default: start + 30 days)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    start = args.start or utcnow()
    end = args.end or start + dt.timedelta(days=30)
    settings = settings_from(args)
    db = open_db(settings)
    with db.read() as session:
        resource = open_directory(settings, session).user(args.user)
        entries = agenda(session, resource, start, end)
    rows = [{"uid": e.uid, "recurrence_id": iso(e.recurrence_id), "summary": e.summary,
             "start": iso(e.start), "end": iso(e.end), "organizer": e.organizer,
             "status": e.status} for e in entries]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no bookings")
    for r in rows:
        # The organizer and the summary are the invitation's text: escaped, one row each.
        print(f"{r['start']}  {r['end']}  {r['status']:<9} {printable(r['organizer']):<30} "
              f"{printable(r['summary'])}")
    return 0
