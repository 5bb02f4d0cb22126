"""Logging set-up shared by the commands and by the ``serve`` supervisor (stderr, one format)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=numeric,
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
                        stream=sys.stderr)
    # aiosmtpd logs every connection and every command at INFO: five lines a message, and
    # under load a tenth of the protocol side's time. Our own lines say what happened to
    # each delivery; the protocol trace is there with log_level DEBUG.
    logging.getLogger("mail.log").setLevel(
        numeric if numeric <= logging.DEBUG else max(numeric, logging.WARNING))
    # alembic announces each of its plugins as it is imported: seven lines at every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(numeric, logging.WARNING))
