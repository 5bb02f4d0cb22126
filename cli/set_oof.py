"""``kopano-set-oof`` / ``kopano-oof``: show or change a user's out-of-office state.

Kopano's command line: ``-u USER [-m 1|0|-] [-t SUBJECT] [-n FILE|-] [--from "Y-m-d H:M"|
infinite] [--until ...] [--dump-json]``. Times are wall-clock times in the user's zone
(kopano-cli ``--timezone``, else ``default_timezone``), stored in UTC; ``infinite`` clears a
bound; ``-m -`` keeps the mode. Only the options given change anything. The state is
printed afterwards: as the real tool's JSON under ``--dump-json`` (times in the user's zone,
``infinite`` for an open bound), as ISO 8601 in UTC under ``--json`` and without either
(what scripts written against earlier versions read). Without ``-u`` the command says "No
username specified." and prints its usage, exit 1, as Kopano's does. The real tool's
server options (``-h``/``--host``, ``-s``, ``-p``, ``-P``, ``-x``) are accepted and ignored:
there is no separate server to contact.
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

from .common import (EXIT_ERROR, EXIT_USAGE, UsageError, add_config_flags, fail, iso, open_db,
                     print_json, run_guarded, settings_from)
from .oof_input import dump_time, parse_time, read_message, user_zone

NAMES = ("kopano-set-oof", "kopano-oof")
TIME = '"YYYY-mm-dd HH:MM"|infinite'
# The real tools' connection options: (flags, takes a value).
SERVER_OPTIONS = ((("-h", "--host"), True), (("-s", "--sslkey-file"), True),
                  (("-p", "--sslkey-pass"), True), (("-P",), False), (("-x",), False))


def _mode(text: str) -> bool | None:
    """``1`` on, ``0`` off, ``-`` keeps the mode (None)."""
    choice = {"1": True, "0": False, "-": None}
    if text.strip() not in choice:
        raise argparse.ArgumentTypeError(f"expected 1, 0 or -, got {text!r}")
    return choice[text.strip()]


def _ignored(flags: tuple[str, ...]) -> str:
    return "ignored_" + flags[-1].lstrip("-").replace("-", "_")


def _server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("accepted for Kopano's scripts and ignored")
    for flags, takes_value in SERVER_OPTIONS:
        kind = {"metavar": "VALUE"} if takes_value else {"action": "store_true"}
        group.add_argument(*flags, dest=_ignored(flags),
                           help="ignored: there is no separate server to contact", **kind)


def build_parser() -> argparse.ArgumentParser:
    # Installed under both of Kopano's names: --version and --help say the one typed.
    invoked = os.path.basename(sys.argv[0])
    # No -h for help: it is Kopano's --host.
    parser = argparse.ArgumentParser(prog=invoked if invoked in NAMES else NAMES[0],
                                     description="Show or change a user's out-of-office reply.",
                                     add_help=False)
    parser.add_argument("--help", action="help", help="show this help message and exit")
    parser.add_argument("-u", "--user", help="the user (login name)")
    parser.add_argument("-m", "--mode", type=_mode, metavar="1|0|-",
                        help="1 switches out-of-office on, 0 off, - keeps it as it is")
    parser.add_argument("-t", "--subject", help="subject of the auto-reply")
    parser.add_argument("-n", "--message", metavar="FILE",
                        help="file with the auto-reply's text ('-' reads standard input)")
    parser.add_argument("--from", dest="start", metavar=TIME,
                        help="start of the period, in the user's time zone (infinite: no start)")
    parser.add_argument("--until", metavar=TIME,
                        help="end of the period, in the user's time zone (infinite: no end)")
    parser.add_argument("--dump-json", action="store_true",
                        help="print the state as Kopano's tool does (times in the user's zone)")
    parser.add_argument("--json", action="store_true",
                        help="print the state with ISO 8601 times in UTC (also without either)")
    add_config_flags(parser)
    _server_options(parser)
    return parser


def changes_from(args: argparse.Namespace, zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.mode is not None:
        changes["enabled"] = args.mode
    if args.subject is not None:
        changes["subject"] = args.subject
    if args.message is not None:
        changes["body"] = read_message(args.message)
    if args.start is not None:
        changes["start"] = parse_time(args.start, zone)
    if args.until is not None:
        changes["until"] = parse_time(args.until, zone)
    return changes


def state_json(state: OofState, now: dt.datetime) -> dict[str, Any]:
    return {"set": state.enabled, "active": state.active(now), "from": iso(state.start),
            "until": iso(state.until), "subject": state.subject, "message": state.body}


def dump_json(state: OofState, now: dt.datetime, zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """The real tool's ``--dump-json``: its keys, its time form."""
    return {"set": state.enabled, "from": dump_time(state.start, zone),
            "until": dump_time(state.until, zone), "active": state.active(now),
            "subject": state.subject, "message": state.body}


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_db(settings)
    try:
        with db.write() as session:
            mailbox = open_directory(settings, session).user(args.user)
            zone = user_zone(mailbox, settings)
            changes = changes_from(args, zone)
            state = set_oof(session, mailbox, **changes) if changes else get_oof(session, mailbox)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    finally:
        db.dispose()
    now = utcnow()
    print_json(dump_json(state, now, zone) if args.dump_json else state_json(state, now))
    return 0


def _note_ignored(args: argparse.Namespace) -> None:
    given = [flags[0] for flags, _ in SERVER_OPTIONS if getattr(args, _ignored(flags))]
    if given:
        print(f"note: {', '.join(given)} ignored: mr-engine has no separate server to contact",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not args.user:
        print("No username specified.", file=sys.stderr)
        parser.print_usage(sys.stderr)
        return EXIT_ERROR
    _note_ignored(args)
    return run_guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
