"""Throwaway servers for the scaling tests: a primary and a streaming replica of it.

Both are tests/faults/cluster.py's ThrowawayCluster (initdb/pg_ctl as an unprivileged OS
user, free ports, removed at the end); the replica is a `pg_basebackup -R` copy of the
primary, streaming from it, hot standby.
"""

from __future__ import annotations

import contextlib
import copy
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connections

from tests.faults.cluster import (
    ClusterUnavailable,
    ThrowawayCluster,
    free_port,
    unregister_alias,
)

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def make_replica(primary: ThrowawayCluster) -> ThrowawayCluster:
    """Return a started streaming replica of `primary` (pg_basebackup -R -X stream)."""
    root = Path(tempfile.mkdtemp(prefix="pg-replica-"))
    replica = ThrowawayCluster(
        root=root, port=free_port(primary.port + 1), os_user=primary.os_user, dbname=primary.dbname
    )
    if primary.os_user is not None:
        entry = pwd.getpwnam(primary.os_user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    try:
        replica._run(
            "pg_basebackup",
            "-D",
            str(replica.data),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
        )
        conf = f"\n# tests/scaling\nport = {replica.port}\nunix_socket_directories = '{root}'\n"
        with (replica.data / "postgresql.conf").open("a", encoding="utf-8") as handle:
            handle.write(conf)
        replica.start()
    except BaseException:
        replica.remove()
        raise
    return replica


def wait_replayed(
    primary: ThrowawayCluster, replica: ThrowawayCluster, timeout: float = 10
) -> None:
    """Wait until `replica` has replayed everything `primary` has written so far."""
    with primary.connect() as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    target = row[0] if row else "0/0"
    deadline = time.monotonic() + timeout
    with replica.connect() as conn:
        while True:
            done = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
            ).fetchone()
            if done and done[0]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replica did not replay {target} in {timeout} s")
            time.sleep(0.01)


def point_alias(alias: str, cluster: ThrowawayCluster, **options: Any) -> dict[str, Any] | None:
    """Point `alias` (closing its connections and pool) at `cluster`; return its old
    settings (None: it did not exist). `options` go into OPTIONS."""
    previous = unregister_alias(alias)
    base = copy.deepcopy(previous or connections.databases["default"])
    entry = cluster.django_settings(base)
    entry["OPTIONS"].update(options)
    connections.databases[alias] = entry
    return previous


def restore_alias(alias: str, previous: dict[str, Any] | None) -> None:
    """Undo `point_alias`."""
    unregister_alias(alias)
    if previous is not None:
        connections.databases[alias] = previous


class Bouncer:
    """PgBouncer in transaction mode in front of `cluster`, in the cluster's directory: every
    database name goes to the cluster, `pool_size` server connections per database."""

    def __init__(self, cluster: ThrowawayCluster, pool_size: int = 2) -> None:
        self.cluster = cluster
        self.pool_size = pool_size
        self.root = cluster.root / "pgbouncer"
        self.port = free_port(cluster.port + 100)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir()
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.cluster.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            f"auth_type = trust\nauth_file = {self.root / 'users.txt'}\n"
            f"pool_mode = transaction\ndefault_pool_size = {self.pool_size}\n"
            "max_client_conn = 400\n"
            "admin_users = postgres\n"
            f"logfile = {self.root / 'pgbouncer.log'}\npidfile = {self.root / 'pgbouncer.pid'}\n"
            "ignore_startup_parameters = extra_float_digits\n"
        )
        command = [PGBOUNCER, str(self.root / "pgbouncer.ini")]
        if self.cluster.os_user is not None:
            entry = pwd.getpwnam(self.cluster.os_user)
            for path in [self.root, *self.root.iterdir()]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            command = ["runuser", "-u", self.cluster.os_user, "--", *command]
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg.connect(**self.conninfo(), autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def conninfo(self) -> dict[str, Any]:
        return {**self.cluster.conninfo(), "port": self.port}

    def stop(self) -> None:
        pidfile = self.root / "pgbouncer.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)  # our own pgbouncer
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def stats(self, database: str) -> dict[str, Any]:
        """PgBouncer's `SHOW STATS` row for `database` (its admin console)."""
        with psycopg.connect(
            **{**self.conninfo(), "dbname": "pgbouncer"}, autocommit=True, prepare_threshold=None
        ) as admin:
            cursor = admin.cursor()
            cursor.execute("SHOW STATS")
            columns = [column.name for column in cursor.description or []]
            for row in cursor.fetchall():
                entry = dict(zip(columns, row, strict=True))
                if entry["database"] == database:
                    return entry
        raise LookupError(f"PgBouncer has no stats for {database!r}")


def cluster_for_pgbouncer(dbname: str) -> ThrowawayCluster:
    """A new throwaway cluster to put PgBouncer in front of; skips the test when pgbouncer
    or the PostgreSQL server binaries are missing (an error with SCALING_REQUIRED set, as
    in `make test-scaling`)."""
    required = bool(os.environ.get("SCALING_REQUIRED"))
    if not Path(PGBOUNCER).exists():
        if required:
            raise RuntimeError("pgbouncer not installed (apt-get install pgbouncer)")
        pytest.skip("pgbouncer not installed")
    try:
        return ThrowawayCluster.create(dbname=dbname)
    except ClusterUnavailable as exc:
        if required:
            raise
        pytest.skip(f"no throwaway PostgreSQL cluster on this machine: {exc}")
