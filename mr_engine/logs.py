"""Logging set-up shared by the commands and by the ``serve`` supervisor (stderr, one format).

Log messages carry values from mail (Message-IDs, UIDs, addresses, reasons): the formatter
neutralizes their control characters, so that one record is one line and never carries ESC.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType

from mr_engine.core.printable import printable, printable_lines

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


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


def stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(FORMAT))
    return handler


def setup_logging(level: str) -> None:
    """The root logger to stderr through ``PrintableFormatter``.

    Called before ``serve``'s supervisor forks, so its worker processes log through the same
    handler (a fork inherits it).
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric, handlers=[stderr_handler()])
    # aiosmtpd logs every connection and every command at INFO: five lines a message, and
    # under load a tenth of the protocol side's time. Our own lines say what happened to
    # each delivery; the protocol trace is there with log_level DEBUG.
    logging.getLogger("mail.log").setLevel(
        numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    # alembic announces each of its plugins as it is imported: seven lines at every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(numeric, logging.WARNING))
