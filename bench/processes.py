"""The servers the benchmark talks to, each a subprocess on loopback it starts and stops.

* ``Engine``: ``mr-engine serve`` exactly as in production (its settings from the
  environment, durability untouched); its log goes to a file, its peak memory is read from
  /proc, and so is its threads' CPU time (``cpu_split``), with its stage counters from
  its /metrics.
* ``Dovecot``: Debian's ``dovecot-lmtpd`` with a generated minimal configuration (Maildir,
  static userdb/passdb, fsync at Dovecot's defaults), as root or as the invoking user.
* ``Sink``: ``python -m bench.sink``, an aiosmtpd LMTP or SMTP server that stores nothing.

Load 5's peer, Radicale, is started by ``bench/radicale.py`` with these helpers.
"""

from __future__ import annotations

import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping

from mr_engine.testing.processes import children, engine_command, free_port

from .cpu_split import EngineCpu

START_TIMEOUT = 60.0
DOVECOT_HINT = ("Dovecot's LMTP server is not installed; install it with\n"
                "    apt-get install dovecot-lmtpd\n"
                "(the benchmark installs nothing itself)")


class StartError(RuntimeError):
    pass


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartError(f"exited with {proc.returncode}; see {log}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"not listening on 127.0.0.1:{port} after {timeout:.0f}s; see {log}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a live process, in KiB."""
    return _proc_kb(f"/proc/{pid}/status", "VmHWM:")


def pss_kb(pid: int) -> int | None:
    """Proportional set size of a live process, in KiB: each resident page counted once,
    split evenly among the processes that share it (after ``fork``, most pages)."""
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def _proc_kb(path: str, key: str) -> int | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class MemoryWatch:
    """The largest total PSS of a process and its children, sampled in a thread."""

    # Seconds. Reading smaps_rollup walks a process's page tables: at 0.1 s the sampler
    # took about a tenth of a core from the engine it measured (load 2 ran 2-3% slower).
    INTERVAL = 0.5

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            sizes = [pss_kb(pid) for pid in [self.pid, *children(self.pid)]]
            total = sum(kb for kb in sizes if kb is not None)
            if total and (self.peak_kb is None or total > self.peak_kb):
                self.peak_kb = total

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join()
        return self.peak_kb


def stop_process(proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


_OURS = ("MR_ENGINE_DATABASE_URL", "MR_ENGINE_LMTP_LISTEN", "MR_ENGINE_SMARTHOST",
         "MR_ENGINE_HTTP_LISTEN")


class Engine:
    """``mr-engine serve`` on 127.0.0.1 with the given store and smarthost."""

    def __init__(self, database_url: str, smarthost: str, workdir: Path,
                 label: str = "mr-engine", watch_memory: bool = True,
                 settings: Mapping[str, str] | None = None) -> None:
        """``settings``: MR_ENGINE_* variables of this engine alone (load 1's LDAP run)."""
        self.log = workdir / f"{label}.log"
        env = dict(os.environ)
        self.port = free_port()
        self.http_port = free_port()
        env.update({"MR_ENGINE_DATABASE_URL": database_url,
                    "MR_ENGINE_LMTP_LISTEN": f"127.0.0.1:{self.port}",
                    "MR_ENGINE_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
                    "MR_ENGINE_SMARTHOST": smarthost, **(settings or {})})
        # The "ready" line is logged at INFO; with a quieter log level, probe the port.
        self._quiet = env.get("MR_ENGINE_LOG_LEVEL", "INFO").upper() not in ("INFO", "DEBUG")
        # Any other MR_ENGINE_* setting of the caller's environment reaches the engine too;
        # the report lists them, so a tuned run cannot pass for a default one.
        self.inherited = {k: v for k, v in os.environ.items()
                          if k.startswith("MR_ENGINE_") and k not in _OURS}
        self.command = engine_command()
        self._logfile = open(self.log, "wb")
        self.proc = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._logfile, stderr=subprocess.STDOUT,
                                     cwd=workdir)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.memory = MemoryWatch(self.proc.pid) if watch_memory else None

    def _wait_ready(self) -> None:
        """Until ``mr-engine serve`` logs its ``ready`` line with our listen address."""
        if self._quiet:
            wait_for_port(self.port, self.proc, START_TIMEOUT, self.log)
            return
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StartError(f"mr-engine serve exited with {self.proc.returncode}:\n"
                                 f"{_tail(self.log)}")
            if re.search(rf"ready.*127\.0\.0\.1:{self.port}\b",
                         self.log.read_text(errors="replace")):
                return
            time.sleep(0.05)
        raise StartError(f"mr-engine serve did not log 'ready' within {START_TIMEOUT:.0f}s")

    def vm_hwm_kb(self) -> int | None:
        """Peak memory of ``serve`` and its worker processes: the sum of each one's VmHWM.

        A sum of peaks, and pages shared after ``fork`` counted once per process: never
        less than the true peak of the whole.
        """
        peaks = [vm_hwm_kb(pid) for pid in [self.proc.pid, *children(self.proc.pid)]]
        known = [kb for kb in peaks if kb is not None]
        return sum(known) if known else None

    def peak_pss_kb(self) -> int | None:
        """The largest total PSS of ``serve`` and its workers seen so far (pages shared
        after ``fork`` counted once, unlike a sum of VmHWM)."""
        return self.memory.stop() if self.memory is not None else None

    def worker_pids(self) -> list[int]:
        """The processes that serve: the workers, or ``serve`` itself when it has none."""
        return children(self.proc.pid) or [self.proc.pid]

    def cpu(self) -> EngineCpu:
        """Its workers' threads and its /metrics, for ``cpu_split.Meter``."""
        return EngineCpu(self.worker_pids, f"http://127.0.0.1:{self.http_port}/metrics")

    def stop(self) -> int:
        if getattr(self, "memory", None) is not None:
            self.memory.stop()
        code = stop_process(self.proc, 70.0)
        self._logfile.close()
        return code


class Sink:
    """``python -m bench.sink PROTO PORT``: accepts everything, stores nothing."""

    def __init__(self, protocol: str, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / f"sink-{protocol}.log"
        self._logfile = open(self.log, "wb")
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.sink", protocol,
                                      str(self.port)], env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._logfile, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.proc, START_TIMEOUT, self.log)
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc, 10.0)
        self._logfile.close()


def dovecot_binary() -> str | None:
    """The dovecot master, if Dovecot's LMTP server is installed too."""
    for candidate in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and Path(candidate).exists():
            libexec = Path("/usr/lib/dovecot")
            if (libexec / "lmtp").exists() or not libexec.exists():
                return candidate
    return None


class Dovecot:
    """A private Dovecot LMTP server on 127.0.0.1 storing Maildirs under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise StartError(DOVECOT_HINT)
        self.root = workdir / "dovecot"
        self.port = free_port()
        self.root.mkdir(mode=0o755)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(mode=0o755)
        mail_user, mail_group, internal_user, login_user, settings = self._users()
        if os.geteuid() == 0:
            os.chmod(workdir, 0o755)  # the mail user must reach its Maildirs
            shutil.chown(self.root / "mail", mail_user, mail_group)
        self.log = self.root / "dovecot.log"
        config = self.root / "dovecot.conf"
        config.write_text(_DOVECOT_CONF.format(
            root=self.root, port=self.port, mail_user=mail_user, mail_group=mail_group,
            internal_user=internal_user, login_user=login_user, extra=settings))
        self._stderr = open(self.root / "dovecot.stderr", "wb")
        self.proc = subprocess.Popen([binary, "-F", "-c", str(config)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr)
        try:
            wait_for_port(self.port, self.proc, START_TIMEOUT, self.log)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _users() -> tuple[str, str, str, str, str]:
        if os.geteuid() == 0:
            # Mail is written as an unprivileged uid; Dovecot's own users run its services.
            nobody = pwd.getpwnam("nobody")
            group = grp.getgrgid(nobody.pw_gid).gr_name
            internal = "dovecot" if _has_user("dovecot") else "nobody"
            login = "dovenull" if _has_user("dovenull") else "nobody"
            return "nobody", group, internal, login, ""
        me = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(me.pw_gid).gr_name
        extra = (f"default_internal_group = {group}\n"
                 f"first_valid_uid = {me.pw_uid}\nfirst_valid_gid = {me.pw_gid}\n")
        return me.pw_name, group, me.pw_name, me.pw_name, extra

    def stop(self) -> None:
        stop_process(self.proc, 30.0)
        self._stderr.close()


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


# Minimal: LMTP only, Maildir per user, every address accepted (static userdb/passdb).
# mail_fsync and fsync_disable are not set: Dovecot's defaults apply (fsync on delivery).
_DOVECOT_CONF = """\
protocols = lmtp
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
default_internal_user = {internal_user}
default_login_user = {login_user}
{extra}
mail_location = maildir:~/Maildir
mail_home = {root}/mail/%n
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} allow_all_users=yes
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""
