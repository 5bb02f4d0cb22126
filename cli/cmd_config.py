"""``mr-engine config``: the effective settings and where each one came from."""

from __future__ import annotations

import argparse

from mr_engine.config import describe

from .common import add_config_flags, print_json, settings_from


def add_parser(sub) -> None:
    parser = sub.add_parser("config", help="print the effective settings and their sources")
    add_config_flags(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = describe(settings_from(args))
    if args.json:
        print_json({r["name"]: {"value": r["value"], "source": r["source"]} for r in rows})
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['value']!s:<40}  ({r['source']})")
    return 0
