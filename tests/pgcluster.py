"""A throwaway PostgreSQL 15 cluster for the test run, started with initdb/pg_ctl.

PostgreSQL refuses to run as root, so when the tests run as root (CI does) the cluster is
owned by and run as the ``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("MR_ENGINE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def binaries_missing() -> str | None:
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            return f"PostgreSQL binaries not found: {PG_BIN / tool} is missing"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mr-engine-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--no-sync")
        # fsync off only for the throwaway test cluster: the tests check behaviour, and the
        # benchmark (not the tests) measures durable commits.
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync=off "
                f"-c unix_socket_directories={self.root} -c max_connections=200")
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", opts, "-l", self.root / "log",
                  "-w", "start")

    def stop(self) -> None:
        try:
            self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"
