"""``mr-engine db upgrade|current``: schema migrations of the store."""

from __future__ import annotations

import argparse

from mr_engine.store.db import current_revision, make_engine, upgrade

from .common import add_config_flags, announce_new_store, settings_from


def add_parser(sub) -> None:
    parser = sub.add_parser("db", help="schema migrations")
    add_config_flags(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("upgrade", help="bring the schema to the newest revision")
    actions.add_parser("current", help="print the schema revision")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    announce_new_store(settings)
    engine = make_engine(settings.database_url, pool_size=1, store_group=settings.store_group)
    try:
        if args.action == "upgrade":
            upgrade(engine)
            print(f"store at revision {current_revision(engine)}: {settings.database_url}")
        else:
            print(current_revision(engine) or "(empty)")
    finally:
        engine.dispose()
    return 0
