"""Radicale 3 (the PyPI package) as load 5's peer: a private server on loopback.

The bench writes the calendar collection itself, as Radicale's ``multifilesystem`` storage
lays it out (``collection-root/<user>/<collection>/`` with a ``.Radicale.props`` naming it a
calendar, one ``.ics`` calendar object a series); Radicale builds its item cache on the
first read, which load 5 leaves out of the measurement as warm-up. The configuration is
Radicale's defaults but for what a private server on a temporary directory needs: the
listen address, the storage folder, no web interface, any login accepted (``auth type =
none``; the owner's own calendar is still checked by ``owner_only`` rights) and warnings
only in its log.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from mr_engine.testing.processes import free_port

from . import ical
from .http_client import Request
from .processes import START_TIMEOUT, StartError, stop_process, wait_for_port
from .store import Planned

USER = "bench"
COLLECTION = "equipment"
HINT = "Radicale 3 is not installed; install it with\n    .venv/bin/pip install 'radicale>=3,<4'"

_CONFIG = """\
[server]
hosts = 127.0.0.1:{port}
[auth]
type = none
[rights]
type = owner_only
[storage]
filesystem_folder = {folder}
[web]
type = none
[logging]
level = warning
"""

# RFC 4791 §7.10: the CALDAV:free-busy-query REPORT, a time-range in UTC.
_QUERY = ('<?xml version="1.0" encoding="utf-8" ?>\n'
          '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">\n'
          '  <C:time-range start="{start}" end="{end}"/>\n'
          '</C:free-busy-query>\n')


def installed() -> bool:
    return importlib.util.find_spec("radicale") is not None


def version() -> str | None:
    try:
        from importlib.metadata import version as dist_version
        return dist_version("radicale")
    except Exception:  # not installed, or no metadata: the report says "unknown"
        return None


def write_collection(folder: Path, series: list[Planned], now: dt.datetime) -> Path:
    """The calendar collection with one calendar object a series; returns its folder."""
    collection = folder / "collection-root" / USER / COLLECTION
    collection.mkdir(parents=True)
    props = {"tag": "VCALENDAR", "C:supported-calendar-component-set": "VEVENT",
             "D:displayname": "Benchmark equipment"}
    (collection / ".Radicale.props").write_text(json.dumps(props))
    for n, (uid, slots, rule) in enumerate(series):
        event = ical.vevent(uid, slots[0][1], slots[0][2], rule, now)
        (collection / f"series-{n}.ics").write_text(ical.calendar_object(event), newline="")
    return collection


def free_busy_query(start: dt.datetime, end: dt.datetime) -> Request:
    """The REPORT on the collection, as a CalDAV client sends it (Depth: 1, §7.10)."""
    body = _QUERY.format(start=ical.stamp(start), end=ical.stamp(end)).encode()
    login = base64.b64encode(f"{USER}:{USER}".encode()).decode()
    return Request("REPORT", f"/{USER}/{COLLECTION}/",
                   (("Depth", "1"), ("Content-Type", "application/xml; charset=utf-8"),
                    ("Authorization", f"Basic {login}")), body)


class Radicale:
    """``python -m radicale`` on 127.0.0.1 with storage under ``root``."""

    def __init__(self, root: Path) -> None:
        if not installed():
            raise StartError(HINT)
        self.port = free_port()
        self.log = root / "radicale.log"
        config = root / "radicale.conf"
        config.write_text(_CONFIG.format(port=self.port, folder=root / "collections"))
        self._logfile = open(self.log, "wb")
        self.command = [sys.executable, "-m", "radicale", "--config", str(config)]
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                     stdout=self._logfile, stderr=subprocess.STDOUT, cwd=root)
        try:
            wait_for_port(self.port, self.proc, START_TIMEOUT, self.log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc, 10.0)
        self._logfile.close()
