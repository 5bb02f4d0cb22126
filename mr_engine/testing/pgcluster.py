"""A throwaway PostgreSQL 15 cluster, started with initdb/pg_ctl, for a benchmark or test run.

For the benchmark (``--postgres``) it is durable as shipped: fsync, synchronous_commit and
full_page_writes on. The test suite asks for ``durable=False`` (fsync off): tests check
behaviour, the benchmark measures durable commits. It listens on 127.0.0.1 only, on a free
port, and runs as the ``postgres`` user when run as root (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from .processes import free_port

PG_BIN = Path(os.environ.get("MR_ENGINE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def binaries_missing() -> str | None:
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return (f"PostgreSQL binaries not found ({PG_BIN / tool} is missing); install "
                    "postgresql-15, or name a server (bench: --database-url; tests: "
                    "MR_ENGINE_TEST_PG_URL)")
    return None


class Cluster:
    """A cluster in a fresh temporary directory: ``start()``, then ``url``; ``stop()`` removes
    it again."""

    def __init__(self, durable: bool = True) -> None:
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="mr-engine-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: object) -> None:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", *(() if self.durable else ("--no-sync",)))
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.root} -c max_connections=200"
                + ("" if self.durable else " -c fsync=off"))
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", opts, "-l", self.root / "log",
                  "-w", "start")

    def stop(self) -> None:
        try:
            self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"
