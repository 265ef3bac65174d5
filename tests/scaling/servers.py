"""Throwaway servers for the scaling tests: a primary and a streaming replica of it.

Both are tests/faults/cluster.py's ThrowawayCluster (initdb/pg_ctl as an unprivileged OS
user, free ports, removed at the end); the replica is a `pg_basebackup -R` copy of the
primary, streaming from it, hot standby.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

from django.db import connections

from tests.faults.cluster import ThrowawayCluster, free_port


def make_replica(primary: ThrowawayCluster) -> ThrowawayCluster:
    """Return a started streaming replica of `primary` (pg_basebackup -R -X stream)."""
    root = Path(tempfile.mkdtemp(prefix="pg-replica-"))
    replica = ThrowawayCluster(
        root=root, port=free_port(primary.port + 1), os_user=primary.os_user, dbname=primary.dbname
    )
    if primary.os_user is not None:
        import os
        import pwd

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
    previous = drop_alias(alias)
    base = copy.deepcopy(previous or connections.databases["default"])
    entry = cluster.django_settings(base)
    entry["OPTIONS"].update(options)
    connections.databases[alias] = entry
    return previous


def drop_alias(alias: str) -> dict[str, Any] | None:
    """Close `alias`'s connections and pool and forget it; return its settings."""
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


def restore_alias(alias: str, previous: dict[str, Any] | None) -> None:
    """Undo `point_alias`."""
    drop_alias(alias)
    if previous is not None:
        connections.databases[alias] = previous
