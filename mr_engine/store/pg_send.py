"""The two libpq calls that send on ``pg_wire``'s pipeline, made without holding the GIL.

psycopg's C wrappers (``psycopg_binary``, ``psycopg_c``) keep the GIL through
``PQpipelineSync`` and ``PQflush``. Each is a ``send`` on the socket, which wakes the
server's backend; on a busy machine the kernel often gives the core to that backend there
and then, and the sending thread waits for it with the GIL in hand, so the process's event
loop waits too. Measured under the benchmark's load 2 on PostgreSQL (2 cores): 26 µs of CPU
a sync, but 185 to 335 µs of wall time on average (p99 1.8 to 2.2 ms), held.

ctypes lets go of the GIL for the length of a foreign call, so these two go through ctypes
to the very libpq psycopg runs on: the one library of that name mapped into the process
(``/proc/self/maps``). Where that cannot be told (none or several found, not Linux) or
psycopg itself calls libpq through ctypes (``pq.__impl__ == "python"``, already without
the GIL), psycopg's own methods are used: the same calls, the GIL held.
"""

from __future__ import annotations

import ctypes
import functools
import re

import psycopg
from psycopg import pq

_LIBPQ = re.compile(r"/libpq[-.][^/]*\.so[.\d]*$")


@functools.cache
def _libpq() -> ctypes.CDLL | None:
    """psycopg's libpq, with the argument types of the calls made here; None if unsure."""
    if pq.__impl__ == "python":
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if _LIBPQ.search(line.rstrip())}
    except OSError:
        return None
    if len(paths) != 1:
        return None
    lib = ctypes.CDLL(paths.pop())
    for call in (lib.PQpipelineSync, lib.PQflush):
        call.argtypes, call.restype = [ctypes.c_void_p], ctypes.c_int
    return lib


def pipeline_sync(pg: pq.abc.PGconn) -> None:
    """``PQpipelineSync``: the Sync queued and the pipeline sent (as far as it goes)."""
    lib = _libpq()
    if lib is None:
        pg.pipeline_sync()
    elif lib.PQpipelineSync(pg.pgconn_ptr) != 1:
        raise psycopg.OperationalError(
            f"sending the pipeline's sync failed: {pq.error_message(pg)}")


def flush(pg: pq.abc.PGconn) -> bool:
    """``PQflush``: True while output is left to send."""
    lib = _libpq()
    if lib is None:
        return bool(pg.flush())
    left = lib.PQflush(pg.pgconn_ptr)
    if left < 0:
        raise psycopg.OperationalError(f"sending to the server failed: {pq.error_message(pg)}")
    return left == 1
