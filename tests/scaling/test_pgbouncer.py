"""Repository calls through Debian's PgBouncer in transaction mode, Django's pool on and off.

A throwaway cluster (tests/faults/cluster.py) with PgBouncer in front of it, both run as the
unprivileged OS user; `default` points at PgBouncer with REPOSITORIES["TRANSACTION_POOLING"]
on (its system check passes) and DISABLE_SERVER_SIDE_CURSORS. PgBouncer has two server
connections for all clients, so a session setting one transaction left behind would show
in the next ones. Marked `scaling` (`make test-scaling`).
"""

from __future__ import annotations

from collections.abc import Iterator
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
from tests.scaling.servers import Bouncer, cluster_for_pgbouncer, point_alias, restore_alias

pytestmark = pytest.mark.scaling


@pytest.fixture(scope="module")
def bouncer(django_db_blocker: Any) -> Iterator[Bouncer]:
    cluster = cluster_for_pgbouncer("bouncer")
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
