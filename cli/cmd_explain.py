"""``mr-engine explain USER < message [--json]``: the decision delivery would make for a
meeting request to USER (a resource's or a pool's name or address), booking nothing.

Each booking rule with its result, the bookings in conflict, the alternatives a decline
offers and the member a pool would pick (``cli.dry_run``, ``services.explain``). Exit 0;
1 when the message is not a meeting request for USER, or USER is no resource or pool.
"""

from __future__ import annotations

import argparse

from . import dry_run
from .common import add_config_flags, settings_from


def add_parser(sub) -> None:
    parser = sub.add_parser("explain", help="explain the decision on a meeting request "
                            "(stdin) for a resource or pool, booking nothing")
    add_config_flags(parser)
    parser.add_argument("user", metavar="USER", help="a resource's or a pool's name or address")
    parser.add_argument("--json", action="store_true",
                        help='one object: {"outcome", "reasons", "rules", "conflicts", '
                             '"alternatives", "member"}')
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return dry_run.run(settings_from(args), args.user, args.json, "mr-engine explain")
