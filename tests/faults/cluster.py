"""A throwaway PostgreSQL cluster for fault injection: initdb, start, crash, restart, remove.

The cluster runs as an unprivileged OS user (PostgreSQL refuses root): the `postgres`
user when the tests run as root, the current user otherwise. It lives in a temporary
directory that user owns, listens on 127.0.0.1 on a free port from 55432 up, trusts
local connections, and keeps PostgreSQL's durability defaults (fsync and
synchronous_commit on): an acknowledged commit is on disk.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.db import connections

PG_BIN = Path(os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
FIRST_PORT = 55432
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "60",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] '",
    # Durability as shipped: an acknowledged COMMIT is flushed to the WAL.
    "fsync": "on",
    "synchronous_commit": "on",
}


class ClusterUnavailable(RuntimeError):
    """The machine cannot run a throwaway cluster (no server binaries, no unprivileged user)."""


def free_port(first: int = FIRST_PORT, tries: int = 200) -> int:
    """Return the first port from `first` nobody listens on (TCP, 127.0.0.1)."""
    for port in range(first, first + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterUnavailable(f"no free port in {first}..{first + tries - 1}")


@dataclass
class ThrowawayCluster:
    """One PostgreSQL cluster in a temporary directory; `remove()` stops it and deletes it."""

    root: Path
    port: int
    os_user: str | None  # the user to run as (`runuser -u`), None: the current user
    dbname: str = "faults"
    log: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, dbname: str = "faults") -> ThrowawayCluster:
        """initdb a new cluster, start it, create database `dbname`."""
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not (PG_BIN / tool).exists():
                raise ClusterUnavailable(f"{PG_BIN / tool} not found (set FAULTS_PG_BIN)")
        os_user = None
        if os.geteuid() == 0:
            os_user = os.environ.get("FAULTS_PG_OS_USER", "postgres")
            try:
                entry = pwd.getpwnam(os_user)
            except KeyError as exc:
                raise ClusterUnavailable(f"no OS user {os_user!r} to run PostgreSQL as") from exc
            if shutil.which("runuser") is None:
                raise ClusterUnavailable("runuser not found")
        root = Path(tempfile.mkdtemp(prefix="pg-faults-"))
        if os_user is not None:
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = cls(root=root, port=free_port(), os_user=os_user, dbname=dbname)
        try:
            cluster._initdb()
            cluster.start()
            with cluster.connect("postgres") as conn:
                conn.execute(f'CREATE DATABASE "{dbname}"')
        except BaseException:
            cluster.remove()
            raise
        return cluster

    # --- processes -------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logfile(self) -> Path:
        return self.root / "server.log"

    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.log.append(
            f"{' '.join(args[:3])}: rc={done.returncode} {time.monotonic() - started:.2f}s"
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
                f"\n--- server log ---\n{self.server_log()}"
            )
        return done.stdout + done.stderr

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        settings = {**SERVER_SETTINGS, "port": str(self.port)}
        settings["unix_socket_directories"] = f"'{self.root}'"
        conf = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as handle:
            handle.write("\n# tests/faults\n" + conf)

    def start(self) -> float:
        """Start the server and wait until it accepts connections; return the seconds taken
        (after a crash this includes crash recovery: WAL replay)."""
        started = time.monotonic()
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60", "start"
        )
        return time.monotonic() - started

    def crash(self) -> None:
        """Stop the server like a power cut for its processes: `pg_ctl -m immediate stop`
        (SIGQUIT: no checkpoint, no clean shutdown; recovery replays the WAL)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        """Stop the server (immediate) if it runs and delete the directory. Idempotent."""
        if self.data.exists() and self.is_running():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self._kill_leftover_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftover_postmaster(self) -> None:
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # only our own postmaster, by its pid file

    def server_log(self, tail: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-tail:])
        return ""

    # --- connections -----------------------------------------------------------------------
    def conninfo(self, dbname: str | None = None) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "postgres",
            "dbname": dbname or self.dbname,
            "connect_timeout": 5,
        }

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        """A fresh autocommit superuser connection (the observer and the killer)."""
        return psycopg.connect(**self.conninfo(dbname), autocommit=True)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def django_settings(self, base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        """Return a DATABASES entry: `base` (the project's default: pool, timeouts, ...)
        pointed at this cluster."""
        entry = {
            **base,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "NAME": self.dbname,
            "USER": "postgres",
            "PASSWORD": "",
            "TEST": {"NAME": self.dbname},
        }
        entry["OPTIONS"] = dict(base.get("OPTIONS") or {})
        entry.update(overrides)
        return entry


# --- Django aliases on the cluster ---------------------------------------------------------
def unregister_alias(alias: str) -> dict[str, Any] | None:
    """Close the alias's connections and pool and forget it; return its settings (None: it
    did not exist)."""
    if alias not in connections.databases:
        return None
    conn = connections[alias]
    try:
        conn.close()
    finally:
        close_pool = getattr(conn, "close_pool", None)
        if close_pool is not None:
            close_pool()
        del connections[alias]
    return connections.databases.pop(alias)


def register_alias(cluster: ThrowawayCluster, alias: str, **overrides: Any) -> str:
    """Add a DATABASES alias for `cluster`: the project's default settings (Django's psycopg
    pool included) pointed at the throwaway server."""
    base = copy.deepcopy(connections.databases["default"])
    connections.databases[alias] = cluster.django_settings(base, **overrides)
    return alias
