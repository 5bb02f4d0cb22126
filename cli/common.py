"""What every command shares: settings from flags/env/file, the database, output and errors."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import sys
from typing import Any, Callable, NoReturn, Sequence

from mr_engine.config import ConfigError, Settings, load_settings
from mr_engine.store.db import Database, open_database
from mr_engine.store.location import is_new_store, store_location
from mr_engine.store.directories import DirectoryError
from mr_engine.core.printable import json_printable, printable
from mr_engine.core.timezones import iso_utc

EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """Flags or option values that do not make a command (exit 2, reported by argparse)."""


def engine_version() -> str:
    """The installed package's version (its metadata: pyproject.toml's, written once)."""
    try:
        return importlib.metadata.version("mr-engine")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


class _Version(argparse.Action):
    """``--version``: ``NAME VERSION``, exit 0; the version is looked up only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None
                 ) -> NoReturn:
        # "mr-engine serve" is the subcommand's prog: the program is its first word.
        print(f"{parser.prog.split()[0]} {engine_version()}")  # stdout, as argparse's own does
        parser.exit()


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="print the program's name and version and exit")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    add_version_flag(parser)
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (MR_ENGINE_CONFIG)")
    parser.add_argument("--database-url", metavar="URL",
                        help="store URL (MR_ENGINE_DATABASE_URL)")


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    flags = {"database_url": getattr(args, "database_url", None), **overrides}
    return load_settings(flags, config_file=getattr(args, "config", None))


def announce_new_store(settings: Settings) -> None:
    """Say so on stderr when this command is about to create the store: settings that point
    somewhere new must not go unnoticed (the store is searched for nowhere else)."""
    if is_new_store(settings.database_url):
        where = store_location(settings.database_url)
        print(f"mr-engine: creating a new, empty store at {printable(where)} "
              "(no store found there)", file=sys.stderr)


def open_db(settings: Settings) -> Database:
    announce_new_store(settings)
    return open_database(settings.database_url, pool_size=2, store_group=settings.store_group)



def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (null stays null)."""
    return None if value is None else iso_utc(value)


def print_json(value: Any) -> None:
    """Indented JSON, non-ASCII text as it is; no control character reaches the terminal."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write(json_printable(text) + "\n")


def fail(message: str, code: int = EXIT_ERROR) -> int:
    # Messages quote names and values that may come from mail: one line, no terminal controls.
    print(f"error: {printable(message)}", file=sys.stderr)
    return code


def run_guarded(func: Callable[[], int]) -> int:
    """Turn the expected errors into a message and an exit code instead of a traceback."""
    try:
        return func()
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    except DirectoryError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
