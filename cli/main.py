"""``mr-engine``: the engine's own command with its subcommands.

Each subcommand lives in a module of its own that exposes ``add_parser(subparsers)``; this
file only collects them.
"""

from __future__ import annotations

import argparse
import sys

from . import (cmd_agenda, cmd_approvals, cmd_config, cmd_db, cmd_explain, cmd_freebusy,
               cmd_mailbox, cmd_queue, cmd_sample_invite, cmd_serve, cmd_status)
from .common import EXIT_USAGE, add_version_flag, run_guarded

COMMANDS = [cmd_config, cmd_db, cmd_serve, cmd_status, cmd_mailbox, cmd_agenda, cmd_freebusy,
            cmd_explain, cmd_queue, cmd_approvals, cmd_sample_invite]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mr-engine", description=__doc__.splitlines()[0])
    add_version_flag(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    return run_guarded(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
