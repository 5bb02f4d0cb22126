"""``mr-engine config``: the effective settings and where each one came from; with
``--sample``, a configuration file listing every setting with its default and help.

The sample is contrib/mr-engine.toml (tests/test_contrib.py keeps it in step). Each setting
is a comment ``# name = default``; one whose value came from the command line, the
environment or a file is written as a line in force with that value, so that the packaged
file can set ``home`` for the service and the administrator's shell alike. A secret is
never written out.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mr_engine.config import SCHEMA, Setting, Settings, describe, parse_duration, parse_size

from .common import add_config_flags, print_json, settings_from

SAMPLE_HEADER = """\
# mr-engine settings: every key with its default and what it is for.
# Read from /etc/mr-engine/mr-engine.toml when present, unless another file is named
# (--config FILE or MR_ENGINE_CONFIG, which then replaces this one). Environment variables
# MR_ENGINE_<KEY> and command-line flags override what is written here.
# Written by `mr-engine config --sample`, with MR_ENGINE_HOME=/var/lib/mr-engine for this copy.
"""
_UNITS = {parse_duration: "seconds, or 30s, 15m, 24h, 5d",
          parse_size: "bytes, or 512k, 50m, 1g"}


def add_parser(sub) -> None:
    parser = sub.add_parser("config", help="print the effective settings and their sources")
    add_config_flags(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="machine-readable output")
    output.add_argument("--sample", action="store_true",
                        help="print a configuration file of every setting and its default")
    parser.set_defaults(func=run)


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, arrays and booleans are TOML's too."""
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _sample_entry(setting: Setting, settings: Settings) -> str:
    hint = _UNITS.get(setting.parse)
    comment = f"# {setting.help}" + (f" ({hint})" if hint else "")
    value = getattr(settings, setting.name)
    given = not settings.sources.get(setting.name, "default").startswith("default")
    if not given or setting.secret:
        value, prefix = setting.default, "# "
    else:
        prefix = ""
    shown = setting.show(value) if setting.show else value
    return f"{comment}\n{prefix}{setting.name} = {_toml(shown)}\n"


def sample(settings: Settings) -> str:
    """The sample configuration file (see the module's doc)."""
    return SAMPLE_HEADER + "".join("\n" + _sample_entry(s, settings) for s in SCHEMA)


def run(args: argparse.Namespace) -> int:
    if args.sample:
        print(sample(settings_from(args)), end="")
        return 0
    rows = describe(settings_from(args))
    if args.json:
        print_json({r["name"]: {"value": r["value"], "source": r["source"]} for r in rows})
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['value']!s:<40}  ({r['source']})")
    return 0
