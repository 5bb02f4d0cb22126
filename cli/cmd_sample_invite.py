"""``mr-engine sample-invite --to ROOM``: print a meeting request as Outlook sends one.

For trying a resource out: pipe it to ``swaks --data -`` (README: Walkthrough) or to
``kopano-mr-accept ROOM``. ROOM is an address, or a name looked up in the directory.
Without ``--start`` the meeting is at 10:00 on the next working day in default_timezone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
from zoneinfo import ZoneInfo

from icalendar import vRecur

from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.core.sample_invite import SampleRequest, coming_start, outlook_request
from mr_engine.store.directories import open_directory

from .common import UsageError, add_config_flags, fail, open_db, settings_from, EXIT_USAGE


def add_parser(sub) -> None:
    parser = sub.add_parser("sample-invite",
                            help="print a sample meeting request (Outlook's dialect)")
    add_config_flags(parser)
    parser.add_argument("--to", required=True, metavar="ROOM",
                        help="the resource: an address, or a name in the directory")
    parser.add_argument("--start", metavar="ISO",
                        help="start, e.g. 2026-05-04T10:00 (in default_timezone unless it "
                             "has an offset); default 10:00 on the next working day")
    parser.add_argument("--duration", type=int, default=60, metavar="MIN",
                        help="length in minutes (default 60)")
    parser.add_argument("--rrule", metavar="RULE",
                        help="a recurrence rule (RFC 5545 §3.3.10), e.g. FREQ=WEEKLY;COUNT=4")
    parser.add_argument("--from", dest="sender", metavar="ADDR",
                        help="the organizer (default organizer@default_domain)")
    parser.set_defaults(func=run)


def _start(text: str | None, zone: ZoneInfo, now: dt.datetime) -> dt.datetime:
    if text is None:
        return coming_start(now, zone)
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"invalid --start {text!r}: expected ISO 8601 such as "
                         "2026-05-04T10:00") from None
    # An offset given is kept as a moment, shown in default_timezone (VTIMEZONE needs a zone).
    return start.replace(tzinfo=zone) if start.tzinfo is None else start.astimezone(zone)


def _rrule(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return vRecur.from_ical(text).to_ical().decode()
    except ValueError as exc:
        raise UsageError(f"invalid --rrule {text!r}: {exc}") from None


def _room(settings: Settings, room: str) -> tuple[str, str]:
    """The address and the display name of ROOM."""
    if "@" in room:
        return room, room.split("@", 1)[0]
    db = open_db(settings)
    try:
        with db.read() as session:
            mailbox = open_directory(settings, session).user(room)
            return mailbox.email, mailbox.fullname or mailbox.name
    finally:
        db.dispose()


def _request(args: argparse.Namespace, settings: Settings) -> SampleRequest:
    if args.duration < 1:
        raise UsageError("--duration must be at least 1 minute")
    now, zone = utcnow(), ZoneInfo(settings.default_timezone)
    address, name = _room(settings, args.to)
    return SampleRequest(
        room=address, room_name=name,
        organizer=args.sender or f"organizer@{settings.default_domain}",
        start=_start(args.start, zone, now), duration=dt.timedelta(minutes=args.duration),
        now=now, token=secrets.token_bytes(16), hostname=settings.hostname,
        rrule=_rrule(args.rrule))


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        request = _request(args, settings)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    sys.stdout.buffer.write(outlook_request(request))
    return 0
