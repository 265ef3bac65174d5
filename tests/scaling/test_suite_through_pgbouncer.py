"""The repository test suite, run whole through PgBouncer in transaction mode.

A throwaway cluster with Debian's PgBouncer in front of it (tests/scaling/servers.py);
pytest runs the repository suite (tests/repositories) in a child process (two xdist workers) with
DATABASE_URL on PgBouncer and DB_TRANSACTION_POOLING=1 (the layer's TRANSACTION_POOLING
check on, server-side cursors off), once with Django's pool and once without. The test
databases are created, migrated and dropped on a direct connection to the cluster
(PgBouncer keeps server connections to them open; `DROP DATABASE ... WITH (FORCE)` ends
those; migration 0003 is not atomic and refuses transaction pooling) and the child runs
with `--reuse-db`, so Django finds them ready and never creates or drops them there.
PgBouncer's own statistics prove the traffic went through it.
Marked `scaling` (`make test-scaling`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import ThrowawayCluster
from tests.faults.figures import FIGURES
from tests.scaling.servers import Bouncer, cluster_for_pgbouncer

pytestmark = pytest.mark.scaling

BASE_DIR = Path(__file__).resolve().parents[2]
WORKERS = 2
TEST_DATABASE = "test_through_bouncer"
SUITE = ["tests/repositories"]


@pytest.fixture(scope="module")
def bouncer() -> Iterator[Bouncer]:
    """PgBouncer (transaction mode, 10 server connections per database) on a fresh cluster."""
    cluster = cluster_for_pgbouncer("suite")
    # Ten per test database: the concurrency tests hold several transactions at once.
    server = Bouncer(cluster, pool_size=10)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        cluster.remove()


def _test_databases() -> list[str]:
    return [f"{TEST_DATABASE}_gw{worker}" for worker in range(WORKERS)]


def _child_env(**values: str) -> dict[str, str]:
    """This process's environment without the settings the child gets from `values`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "SCALING_", "DB_", "DATABASE_"))
    }
    env.setdefault("SECRET_KEY", "through-pgbouncer")
    env.update(values)
    return env


def _recreate_directly(cluster: ThrowawayCluster, names: list[str]) -> None:
    """Drop (ending PgBouncer's server connections), create and migrate `names` on the
    server itself: a non-atomic migration refuses to run through PgBouncer."""
    with cluster.connect("postgres") as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    for name in names:
        url = f"postgres://postgres@127.0.0.1:{cluster.port}/{name}"
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=BASE_DIR,
            env=_child_env(DATABASE_URL=url, DB_POOL="0"),
            check=True,
            timeout=300,
        )


def _drop_directly(cluster: ThrowawayCluster, names: list[str]) -> None:
    with cluster.connect("postgres") as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.timeout(1600)  # the child pytest runs a few minutes
@pytest.mark.parametrize("pool", [True, False], ids=["pool", "no-pool"])
def test_repository_suite_passes_through_pgbouncer(bouncer: Bouncer, pool: bool) -> None:
    names = _test_databases()
    _recreate_directly(bouncer.cluster, names)
    env = _child_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{bouncer.port}/{bouncer.cluster.dbname}",
        DB_TRANSACTION_POOLING="1",
        DB_POOL="1" if pool else "0",
        TEST_DATABASE_NAME=TEST_DATABASE,
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-n",
        str(WORKERS),
        "--reuse-db",
        "-p",
        "no:cacheprovider",
        "-q",
        "-m",
        "not faults and not browser and not scaling",
        *SUITE,
    ]
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=1500
        )
        transactions = sum(int(bouncer.stats(name)["total_xact_count"]) for name in names)
    finally:
        _drop_directly(bouncer.cluster, names)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    FIGURES[f"scaling: suite through PgBouncer ({'pool' if pool else 'no pool'})"] = {
        "result": summary,
        "seconds": f"{time.monotonic() - started:.0f}",
        "transactions through PgBouncer": transactions,
    }
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    # Every test ran at least one transaction through PgBouncer, most of them many.
    assert transactions > 5000, transactions
