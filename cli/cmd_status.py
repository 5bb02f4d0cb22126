"""``mr-engine status [--json]``: is the engine working? The store, its queue, the server.

Exit 0 when the database answers, 1 otherwise (the reason on stderr, in one line). The
JSON keys are listed in the README (Operations: status).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.core.printable import printable
from mr_engine.delivery import server_state
from mr_engine.store import overview
from mr_engine.store.location import masked_url

from .common import EXIT_ERROR, add_config_flags, engine_version, fail, print_json, settings_from


def add_parser(sub) -> None:
    parser = sub.add_parser("status", help="the store, the outbound queue and the server")
    add_config_flags(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def report(settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """Everything status says, under the names of its JSON output."""
    store = overview.probe(settings.database_url, settings.store_group)
    head = overview.head_revision()
    queue = store.queue
    server = server_state.running(settings)
    return {
        "version": engine_version(),
        "database_url": masked_url(settings.database_url),
        "database_answers": store.answers,
        "database_error": store.error,
        "schema_revision": store.revision,
        "schema_head": head,
        "schema_up_to_date": store.answers and store.revision == head,
        "mailbox_count": store.mailboxes,
        "resource_count": store.resources,
        "queue": dict(queue.by_status) if queue else None,
        "oldest_queued_age_seconds": _age(queue.oldest_queued, now) if queue else None,
        "last_relay_error": queue.last_error if queue else None,
        "pending_approvals": store.pending_approvals,
        "server_running": server is not None,
        "server_pid": server.pid if server else None,
        "server_listeners": {k: list(v) for k, v in server.listeners.items()} if server else {},
    }


def _age(since: dt.datetime | None, now: dt.datetime) -> int | None:
    return None if since is None else max(0, int((now - since).total_seconds()))


def _duration(seconds: int) -> str:
    """``2d 3h``, ``5m 10s``: the two largest units, enough to judge a queue by."""
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"),
             (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def _store_lines(r: dict[str, Any]) -> list[str]:
    if not r["database_answers"]:
        return [f"database:  does not answer ({r['database_error']})"]
    if r["schema_revision"] is None:
        return [f"database:  answers; empty (no schema; newest is {r['schema_head']})"]
    behind = "" if r["schema_up_to_date"] else " (behind: mr-engine db upgrade)"
    return [f"database:  answers; schema {r['schema_revision']}, newest {r['schema_head']}"
            f"{behind}",
            f"mailboxes: {r['mailbox_count']}, of which {r['resource_count']} resources"]


def _queue_lines(r: dict[str, Any]) -> list[str]:
    if r["queue"] is None:
        return []
    counts = ", ".join(f"{n} {status}" for status, n in r["queue"].items())
    age = r["oldest_queued_age_seconds"]
    oldest = f"; oldest queued {_duration(age)} ago" if age is not None else ""
    lines = [f"queue:     {counts}{oldest}"]
    if r["last_relay_error"]:
        lines.append(f"last relay error: {r['last_relay_error']}")
    return lines


def _server_line(r: dict[str, Any]) -> str:
    if not r["server_running"]:
        return "server:    not running"
    listening = "; ".join(f"{name.upper()} on {', '.join(addresses)}"
                          for name, addresses in r["server_listeners"].items())
    return f"server:    running, pid {r['server_pid']}; {listening}"


def render(r: dict[str, Any]) -> str:
    approvals = r["pending_approvals"]
    lines = [f"mr-engine {r['version']}", f"store:     {r['database_url']}",
             *_store_lines(r), *_queue_lines(r),
             *([f"approvals: {approvals} pending"] if approvals is not None else []),
             _server_line(r)]
    # The relay error is the smarthost's text, and the URL the settings': no controls.
    return "\n".join(printable(line) for line in lines)


def run(args: argparse.Namespace) -> int:
    r = report(settings_from(args), utcnow())
    if args.json:
        print_json(r)
    else:
        print(render(r))
    if not r["database_answers"]:
        return fail(f"the database does not answer: {r['database_error']}", EXIT_ERROR)
    return 0
