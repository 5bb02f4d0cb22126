"""A server process's threads share at most two glibc malloc arenas, unless the administrator
set ``MALLOC_ARENA_MAX`` (``workers.few_malloc_arenas``).

Counted by glibc itself: ``malloc_info`` writes one ``<heap nr=...>`` element per arena. Eight
threads that each allocate would have an arena each (glibc allows eight a core).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_ARENAS = r"""
import ctypes, sys, tempfile, threading
from mr_engine.delivery.workers import few_malloc_arenas
if sys.argv[1] == "bounded":
    few_malloc_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
together = threading.Barrier(8)
def allocate():
    together.wait()  # every thread allocates while the others are alive
    [libc.malloc(1000) for _ in range(100)]
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile("r") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(out.read().count("<heap nr="))
"""


def _arenas(mode: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True,
                          text=True, env={**environ, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.fixture(autouse=True)
def _glibc() -> None:
    if not os.confstr("CS_GNU_LIBC_VERSION"):
        pytest.skip("not glibc")


def test_threads_share_two_arenas_once_bounded():
    assert _arenas("free") > 4  # what the bound is for
    assert _arenas("bounded") <= 2


def test_an_administrators_malloc_arena_max_is_kept():
    assert _arenas("bounded", MALLOC_ARENA_MAX="4") == 4
