"""Logging set-up shared by the commands and by the ``serve`` supervisor: format and target.

``log_format`` is ``text`` (one line a record) or ``json`` (one JSON object a line);
``log_target`` is ``stderr`` (what journald collects under systemd) or ``syslog`` (``/dev/log``,
facility mail, ident ``mr-engine[pid]``). Structured lines (one per delivery and recipient,
one per relay attempt and recipient) are logged once through ``log_event``: their fields ride
on the record (``extra``), so the text line and the JSON keys come from the same call.

Log messages carry values from mail (Message-IDs, UIDs, addresses, reasons): both formats
neutralize their control characters, so that one record is one line and never carries ESC.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import logging.handlers
import os
import socket
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Mapping

from mr_engine.core.printable import json_printable, printable, printable_lines

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
# syslog stamps the time and the ident (with the pid) itself.
SYSLOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
SYSLOG_ADDRESS = "/dev/log"
# Keys whose values are mail addresses: shown in angle brackets, as Postfix shows them.
_ADDRESS_KEYS = frozenset({"from", "to"})
_QUOTE_IF = frozenset(' "\\')


@dataclass(frozen=True)
class Event:
    """A structured log line: ``outcome key=value ...`` as text, every field a JSON key.

    ``name`` is the JSON ``event`` (``delivery``, ``relay``) and ``outcome`` the text line's
    first word. A value None is shown as ``-``; one with a space or a quote is quoted.
    """

    name: str
    outcome: str
    fields: Mapping[str, Any]

    def __str__(self) -> str:
        pairs = (f"{_label(key)}={text_value(key, value)}" for key, value in self.fields.items())
        return " ".join([self.outcome, *pairs])

    def keys(self) -> dict[str, Any]:
        """The JSON object's keys beyond time, level, logger and message."""
        return {"event": self.name, "outcome": self.outcome, **self.fields}


@functools.cache
def _label(key: str) -> str:
    return key.replace("_", "-")


def text_value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if type(value) is int:  # the common case: sizes, status codes (not a bool)
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}"
    text = f"<{value}>" if key in _ADDRESS_KEYS else str(value)
    if text and not _QUOTE_IF.intersection(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_event(logger: logging.Logger, event: Event, level: int = logging.INFO) -> None:
    """Log ``event``: its text as the message, its fields on the record for JSON."""
    logger.log(level, "%s", event, extra={"event_fields": event.keys()})


class PrintableFormatter(logging.Formatter):
    """A Formatter whose records cannot forge lines or send terminal controls.

    The message line is escaped whole (a UID with ``\\nforged`` stays on its line);
    tracebacks and stacks keep the newlines between their lines, everything else escaped.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: ExcInfo) -> str:
        return printable_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return printable_lines(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time (UTC, ISO 8601), level, logger, pid, message, the
    event's fields, and exception/stack when there are. Controls in strings are ``\\u``
    escapes (``json_printable``): the line stays one line, the data reads back unchanged."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
                      .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name, "pid": record.process,
            "message": record.getMessage()}
        entry.update(getattr(record, "event_fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json_printable(json.dumps(entry, ensure_ascii=False, default=str))


class _SyslogHandler(logging.handlers.SysLogHandler):
    """SysLogHandler whose ident carries the pid of the process logging (a worker forked
    from the supervisor inherits the handler, and has its own pid)."""

    @property  # type: ignore[override]
    def ident(self) -> str:
        return f"mr-engine[{os.getpid()}]: "


def _formatter(log_format: str, target: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return PrintableFormatter(SYSLOG_FORMAT if target == "syslog" else FORMAT)


def _unreachable(address: str) -> OSError | None:
    """Why the syslog socket cannot be used (None: it can)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
    except OSError as exc:
        return exc
    return None


def log_handler(log_format: str = "text", log_target: str = "stderr",
                syslog_address: str = SYSLOG_ADDRESS) -> tuple[logging.Handler, str | None]:
    """The handler for ``log_format`` and ``log_target``, and why syslog was not used.

    SysLogHandler would drop every record silently if ``/dev/log`` is missing (it retries at
    each record); here that is found out at once and the logs go to stderr instead.
    """
    problem = None
    if log_target == "syslog":
        error = _unreachable(syslog_address)
        if error is None:
            handler: logging.Handler = _SyslogHandler(
                syslog_address, logging.handlers.SysLogHandler.LOG_MAIL, socket.SOCK_DGRAM)
            handler.setFormatter(_formatter(log_format, log_target))
            return handler, None
        problem = (f"log_target syslog: cannot send to {syslog_address} "
                   f"({error.strerror or error}); logging to stderr instead")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(log_format, "stderr"))
    return handler, problem


def setup_logging(level: str, log_format: str = "text", log_target: str = "stderr") -> None:
    """The root logger to ``log_target`` in ``log_format``.

    Called before ``serve``'s supervisor forks, so its worker processes log through the same
    handler (a fork inherits it).
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    # No format of ours shows where a call was made or by which thread: skip looking them
    # up for every record (the logging HOWTO's "Optimization"), a sixth of a delivery line.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler, problem = log_handler(log_format, log_target)
    logging.basicConfig(level=numeric, handlers=[handler])
    if problem:
        logging.getLogger(__name__).error("%s", problem)
    # aiosmtpd logs every connection and every command at INFO: five lines a message, and
    # under load a tenth of the protocol side's time. Our own lines say what happened to
    # each delivery; the protocol trace is there with log_level DEBUG.
    logging.getLogger("mail.log").setLevel(
        numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    # alembic announces each of its plugins as it is imported: seven lines at every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(numeric, logging.WARNING))
