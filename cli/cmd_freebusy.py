"""``mr-engine freebusy ADDRESS|NAME``: a resource's (or a pool's) free/busy periods, as
HTTP serves them.

The same range rules as ``GET /freebusy/...`` (``core.freebusy.requested_range``: by
default now - 7 days to now + 60 days, at most 366 days) and the same periods: BUSY where
the whole capacity is booked, BUSY-TENTATIVE where it is only with pending bookings; a
pool is busy where no member is free.
"""

from __future__ import annotations

import argparse
import datetime as dt

from mr_engine.clock import utcnow
from mr_engine.core.freebusy import Period, RangeError, parse_instant, requested_range
from mr_engine.services import availability

from .common import EXIT_USAGE, add_config_flags, fail, iso, open_db, print_json, settings_from


def _instant(text: str) -> dt.datetime:
    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or date-time: {text!r}") \
            from None


def add_parser(sub) -> None:
    parser = sub.add_parser("freebusy", help="print a resource's busy periods (UTC)")
    add_config_flags(parser)
    parser.add_argument("resource", metavar="ADDRESS|NAME")
    parser.add_argument("--start", type=_instant, help="ISO 8601 (default: now - 7 days)")
    parser.add_argument("--end", type=_instant, help="ISO 8601 (default: now + 60 days)")
    parser.add_argument("--json", action="store_true",
                        help='a list of {"start", "end", "type"} in UTC')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        span = requested_range(args.start, args.end, utcnow())
    except RangeError as exc:
        return fail(str(exc), EXIT_USAGE)
    settings = settings_from(args)
    with open_db(settings).read() as session:
        owner = availability.published_owner(session, args.resource)
        pool = availability.published_pool(session, args.resource) if owner is None else None
        if owner is None and pool is None:
            return fail(f"no resource {args.resource!r}")
        periods = availability.freebusy_periods(session, owner, span) if owner is not None \
            else availability.pool_periods(session, pool, span)
    _print(periods, args.json)
    return 0


def _print(periods: list[Period], as_json: bool) -> None:
    rows = [{"start": iso(p.start), "end": iso(p.end), "type": p.kind} for p in periods]
    if as_json:
        print_json(rows)
        return
    if not rows:
        print("free for the whole range")
    for row in rows:
        print(f"{row['start']}  {row['end']}  {row['type']}")
