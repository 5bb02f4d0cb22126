"""Load 1 with ``user_plugin = ldap`` (``--ldap``): the same client, shapes and users as the
db plugin's load 1, the users now entries of a throwaway OpenLDAP slapd on loopback
(``mr_engine.testing.slapd``) and a fresh store without them, so that every user is created
just in time by the first delivery to it (during the warm-up), and from then on resolved
as the cache allows (``ldap_cache_timeout``, 300 s by default: longer than a load).
The issue's target: at least 0.9x the db plugin's deliveries/s in the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mr_engine.testing import slapd as harness
from mr_engine.testing.ldap_trees import Entry, posix_user

from . import loads
from . import store as bstore
from .processes import Engine, Sink

TARGET = "mr-engine (ldap)"
UID_BASE = 5000  # uidNumbers of the benchmark's users, clear of the test tree's


def bench_users(count: int) -> list[Entry]:
    """The db plugin's users (``user000@bench.example`` ...) as LDAP entries."""
    return [posix_user(f"user{i:03d}", UID_BASE + i, f"Bench User {i}",
                       mail=[bstore.user_address(i)]) for i in range(count)]


def engine_settings(server: harness.Slapd) -> dict[str, str]:
    """The engine's MR_ENGINE_* variables that read ``server``."""
    values = server.settings()
    return {f"MR_ENGINE_{key.upper()}": " ".join(value) if isinstance(value, tuple)
            else str(value) for key, value in values.items()}


def run(limits: loads.Limits, users: int, shapes: tuple[int, ...], message_size: int,
        base_url: str | None, workdir: Path, failures: list[str]) -> list[dict[str, Any]]:
    """Load 1's results of the LDAP engine, one per shape; none (and a failure naming
    why) when slapd is not installed."""
    missing = harness.missing()
    if missing:
        failures.append(f"load 1 with user_plugin = ldap not run: {missing}")
        return []
    with harness.Slapd("openldap", extra=bench_users(users)) as server:
        store = bstore.FreshStore.create(base_url, workdir, "ldap")
        try:
            return _loads(server, store, limits, users, shapes, message_size, workdir,
                          failures)
        finally:
            store.drop()


def _loads(server: harness.Slapd, store: bstore.FreshStore, limits: loads.Limits,
           users: int, shapes: tuple[int, ...], message_size: int, workdir: Path,
           failures: list[str]) -> list[dict[str, Any]]:
    addresses = [bstore.user_address(i) for i in range(users)]
    smarthost = Sink("smtp", workdir)
    try:
        # Watched as the db plugin's engine is (load 4), so both share the cores alike.
        engine = Engine(store.url, smarthost.address, workdir, label="mr-engine-ldap",
                        settings=engine_settings(server))
        try:
            return loads.load1(TARGET, engine.port, addresses, shapes, limits, message_size,
                               failures)
        finally:
            if (code := engine.stop()) != 0:
                failures.append(f"{TARGET} serve exited with {code} (log: {engine.log})")
    finally:
        smarthost.stop()
