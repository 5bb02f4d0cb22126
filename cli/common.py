"""What every command shares: settings from flags/env/file, the database, output and errors."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any, Callable

from mr_engine.config import ConfigError, Settings, load_settings
from mr_engine.store.db import Database, open_database
from mr_engine.store.directories import DirectoryError
from mr_engine.core.printable import json_printable, printable

EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(ValueError):
    """Flags or option values that do not make a command (exit 2, reported by argparse)."""


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML settings file (MR_ENGINE_CONFIG)")
    parser.add_argument("--database-url", metavar="URL",
                        help="store URL (MR_ENGINE_DATABASE_URL)")


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    flags = {"database_url": getattr(args, "database_url", None), **overrides}
    return load_settings(flags, config_file=getattr(args, "config", None))


def open_db(settings: Settings) -> Database:
    return open_database(settings.database_url, pool_size=2, store_group=settings.store_group)



def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (null stays null)."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
