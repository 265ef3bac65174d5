"""Repository calls through Debian's PgBouncer in transaction mode, Django's pool on and off.

A throwaway cluster (tests/faults/cluster.py) with PgBouncer in front of it, both run as the
unprivileged OS user; `default` points at PgBouncer with REPOSITORIES["TRANSACTION_POOLING"]
on (its system check passes) and DISABLE_SERVER_SIDE_CURSORS. PgBouncer has two server
connections for all clients, so a session setting one transaction left behind would show
in the next ones. Marked `scaling` (`make test-scaling`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connection, connections
from django.test import override_settings

from repositories import ProductRepository
from repositories.orders import OrderRepository
from repositories.transactions import atomic
from tests.factories import ProductFactory, UserFactory
from tests.faults.cluster import ClusterUnavailable, ThrowawayCluster, free_port
from tests.scaling.servers import point_alias, restore_alias

pytestmark = pytest.mark.scaling
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class Bouncer:
    """PgBouncer in transaction mode in front of `cluster`, in the cluster's directory."""

    def __init__(self, cluster: ThrowawayCluster) -> None:
        self.cluster = cluster
        self.root = cluster.root / "pgbouncer"
        self.port = free_port(cluster.port + 100)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.root.mkdir()
        (self.root / "users.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{self.cluster.dbname} = host=127.0.0.1 port={self.cluster.port} "
            f"dbname={self.cluster.dbname}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            f"auth_type = trust\nauth_file = {self.root / 'users.txt'}\n"
            "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 200\n"
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


@pytest.fixture(scope="module")
def bouncer(django_db_blocker: Any) -> Iterator[Bouncer]:
    if not Path(PGBOUNCER).exists():
        if os.environ.get("SCALING_REQUIRED"):
            raise RuntimeError("pgbouncer not installed (apt-get install pgbouncer)")
        pytest.skip("pgbouncer not installed")
    try:
        cluster = ThrowawayCluster.create(dbname="bouncer")
    except ClusterUnavailable as exc:
        if os.environ.get("SCALING_REQUIRED"):
            raise
        pytest.skip(f"no throwaway PostgreSQL cluster on this machine: {exc}")
    server = Bouncer(cluster)
    previous = None
    try:
        with django_db_blocker.unblock():
            # Migrations on a direct connection; the tests go through PgBouncer.
            previous = point_alias("default", cluster)
            call_command("migrate", verbosity=0, interactive=False)
            restore_alias("default", previous)
            previous = None
        server.start()
        yield server
    finally:
        if previous is not None:
            with django_db_blocker.unblock():
                restore_alias("default", previous)
        server.stop()
        cluster.remove()


@pytest.fixture(params=["pool", "no-pool"])
def through_bouncer(request: Any, bouncer: Bouncer, django_db_blocker: Any) -> Iterator[Bouncer]:
    """`default` on PgBouncer, with Django's pool (params "pool") or without."""
    options: dict[str, Any] = {}
    previous = None
    with django_db_blocker.unblock():
        try:
            previous = point_alias("default", bouncer.cluster)
            entry = connections.databases["default"]
            entry["PORT"] = str(bouncer.port)
            entry["DISABLE_SERVER_SIDE_CURSORS"] = True
            entry["OPTIONS"].pop("pool", None)
            if request.param == "pool":
                options["pool"] = {"min_size": 2, "max_size": 4, "timeout": 10}
                entry["CONN_MAX_AGE"] = 0
            entry["OPTIONS"].update(options)
            # No replicas here, whatever order the scaling tests run in.
            repositories = {
                **getattr(settings, "REPOSITORIES", {}),
                "TRANSACTION_POOLING": True,
                "READ_REPLICAS": [],
            }
            with override_settings(REPOSITORIES=repositories):
                yield bouncer
        finally:
            restore_alias("default", previous)


def _server_defaults() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout')"
        )
        return cursor.fetchall()


def test_pooling_check_passes_with_these_settings(through_bouncer):
    assert [m.id for m in run_checks(tags=["repositories"])] == []


def test_repository_calls_through_pgbouncer_transaction_mode(through_bouncer):
    baseline = _server_defaults()
    assert baseline == [("0", "0")]
    orders = OrderRepository()
    placed = []
    for _ in range(8):  # more than psycopg's default prepare threshold
        product = ProductFactory.with_stock(5)
        user = UserFactory.create()
        placed.append(orders.place_order(user.pk, [(product.pk, 2)]))
    for order in placed:
        found = orders.get_with_items(order.pk)
        assert found.number == order.number
        assert [item.quantity for item in found.items.all()] == [2]
    assert ProductRepository().count({}) >= 8
    with atomic(statement_timeout=1500, lock_timeout=700):
        assert _server_defaults() == [("1500ms", "700ms")]
        ProductRepository().find_many({}, limit=3)
    # Every later transaction, on whichever of the two server sessions: the defaults.
    for _ in range(10):
        assert _server_defaults() == baseline
    # A plain psycopg client (prepare_threshold None, as Django's; psycopg's default 5
    # prepares "_pg3_0" on a server session the next client then collides with).
    with psycopg.connect(
        **through_bouncer.conninfo(), autocommit=True, prepare_threshold=None
    ) as other:
        for _ in range(10):
            row = other.execute("SELECT current_setting('statement_timeout')").fetchone()
            assert row == ("0",)


def test_place_order_prepares_nothing_through_pgbouncer(through_bouncer):
    """Even on a connection told to prepare at once (prepare_threshold 0), place_order's
    server-binding cursor sends unnamed statements with TRANSACTION_POOLING on: without
    that, the second call fails (`_pg3_0` exists, or not, on the server session it gets)."""
    connection.ensure_connection()
    raw = connection.connection
    threshold = raw.prepare_threshold
    raw.prepare_threshold = 0
    try:
        for _ in range(4):
            order = OrderRepository().place_order(
                UserFactory.create().pk, [(ProductFactory.with_stock(2).pk, 1)]
            )
            assert order.pk is not None
    finally:
        raw.prepare_threshold = threshold
