"""``kopano-set-oof`` / ``kopano-oof``: show or change a user's out-of-office state.

Kopano's command line: ``-u USER -m 1|0 [-t SUBJECT] [-n FILE|-] [--from "Y-m-d H:M"|infinite]
[--until ...] [--dump-json]``. Times are wall-clock times in ``default_timezone``, stored in
UTC; ``infinite`` clears a bound. Only the options given change anything. The resulting state
is printed as JSON. Without any argument the help is printed and the exit code is 0, as
Kopano's script does (asking for help is not an error).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import zoneinfo
from typing import Any

from mr_engine.clock import utcnow
from mr_engine.store.directories import open_directory
from mr_engine.store.oof_state import OofState, get_oof, set_oof

from .common import (EXIT_USAGE, UsageError, add_config_flags, fail, iso, open_db, print_json,
                     run_guarded, settings_from)

NAMES = ("kopano-set-oof", "kopano-oof")
TIME_FORMAT = "%Y-%m-%d %H:%M"
INFINITE = "infinite"


def build_parser() -> argparse.ArgumentParser:
    # Installed under both of Kopano's names: --version and --help say the one typed.
    invoked = os.path.basename(sys.argv[0])
    parser = argparse.ArgumentParser(prog=invoked if invoked in NAMES else NAMES[0],
                                     description="Show or change a user's out-of-office reply.")
    parser.add_argument("-u", "--user", required=True, help="the user (login name)")
    parser.add_argument("-m", "--mode", type=int, choices=(0, 1),
                        help="1 switches out-of-office on, 0 off")
    parser.add_argument("-t", "--subject", help="subject of the auto-reply")
    parser.add_argument("-n", "--message", metavar="FILE",
                        help="file with the auto-reply's text ('-' reads standard input)")
    parser.add_argument("--from", dest="start", metavar='"YYYY-mm-dd HH:MM"|infinite',
                        help="start of the period, in default_timezone (infinite: no start)")
    parser.add_argument("--until", metavar='"YYYY-mm-dd HH:MM"|infinite',
                        help="end of the period, in default_timezone (infinite: no end)")
    parser.add_argument("--dump-json", action="store_true",
                        help="print the state as JSON (it is printed after any change too)")
    add_config_flags(parser)
    return parser


def parse_time(value: str, zone: str) -> dt.datetime | None:
    """A wall-clock time in ``zone`` as UTC; ``infinite`` is None (an open bound)."""
    if value.strip().lower() == INFINITE:
        return None
    try:
        local = dt.datetime.strptime(value.strip(), TIME_FORMAT)
    except ValueError:
        raise UsageError(f"invalid time {value!r}: expected \"YYYY-mm-dd HH:MM\" or "
                         f"{INFINITE}") from None
    # Ambiguous or skipped wall times (DST changes) resolve with fold=0, the earlier offset.
    return local.replace(tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(dt.timezone.utc)


def _read_body(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the message from {path}: {exc}") from None


def changes_from(args: argparse.Namespace, zone: str) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.mode is not None:
        changes["enabled"] = bool(args.mode)
    if args.subject is not None:
        changes["subject"] = args.subject
    if args.message is not None:
        changes["body"] = _read_body(args.message)
    if args.start is not None:
        changes["start"] = parse_time(args.start, zone)
    if args.until is not None:
        changes["until"] = parse_time(args.until, zone)
    return changes


def state_json(state: OofState, now: dt.datetime) -> dict[str, Any]:
    return {"set": state.enabled, "active": state.active(now), "from": iso(state.start),
            "until": iso(state.until), "subject": state.subject, "message": state.body}


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        changes = changes_from(args, settings.default_timezone)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    db = open_db(settings)
    try:
        with db.write() as session:
            mailbox = open_directory(settings, session).user(args.user)
            state = set_oof(session, mailbox, **changes) if changes else get_oof(session, mailbox)
    finally:
        db.dispose()
    print_json(state_json(state, utcnow()))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    return run_guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
