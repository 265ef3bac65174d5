"""Scaling fixtures: a throwaway primary with a streaming replica, routed to.

`make test-scaling` runs these tests (marker `scaling`); `make test` leaves them out. For
the session, alias `default` points at the throwaway primary (migrated) and `replica_0` at
a `pg_basebackup -R` replica of it, with REPOSITORIES["READ_REPLICAS"] = ["replica_0"];
both servers are removed at the end, also when a test fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from repositories.core import routing
from tests.faults.cluster import ClusterUnavailable, ThrowawayCluster
from tests.faults.figures import FIGURES
from tests.scaling.servers import make_replica, point_alias, restore_alias

REPLICA = "replica_0"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the scaling tests unless asked for (`-m scaling`, `make test-scaling`): each
    run starts two PostgreSQL servers."""
    if "scaling" in (config.getoption("markexpr") or "") or os.environ.get("SCALING_REQUIRED"):
        return
    skip = pytest.mark.skip(reason="scaling: run `make test-scaling` (pytest -m scaling)")
    for item in items:
        if item.get_closest_marker("scaling") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures = {name: values for name, values in FIGURES.items() if "scaling" in name}
    if not figures:
        return
    terminalreporter.section("scaling figures")
    for test, values in figures.items():
        terminalreporter.write_line(f"{test}:")
        for name, value in values.items():
            terminalreporter.write_line(f"    {name}: {value}")


@pytest.fixture(scope="session")
def servers(django_db_blocker: Any) -> Iterator[tuple[ThrowawayCluster, ThrowawayCluster]]:
    """(primary, replica), with `default` on the primary and `replica_0` on the replica."""
    try:
        primary = ThrowawayCluster.create(dbname="scaling")
    except ClusterUnavailable as exc:
        if os.environ.get("SCALING_REQUIRED"):
            raise
        pytest.skip(f"no throwaway PostgreSQL cluster on this machine: {exc}")
    replica = None
    previous_default = previous_replica = None
    try:
        with django_db_blocker.unblock():
            previous_default = point_alias("default", primary)
            call_command("migrate", verbosity=0, interactive=False)
            connections["default"].close()
            replica = make_replica(primary)
            pool = dict(connections.databases["default"]["OPTIONS"].get("pool") or {})
            replica_options: dict[str, Any] = {"connect_timeout": 1}
            if pool:
                replica_options["pool"] = {**pool, "min_size": 0, "timeout": 2}
            previous_replica = point_alias(REPLICA, replica, **replica_options)
        repositories = {**getattr(settings, "REPOSITORIES", {}), "READ_REPLICAS": [REPLICA]}
        with override_settings(REPOSITORIES=repositories):
            yield primary, replica
    finally:
        with django_db_blocker.unblock():
            restore_alias(REPLICA, previous_replica)
            restore_alias("default", previous_default)
        routing.forget_health()
        if replica is not None:
            replica.remove()
        primary.remove()


@pytest.fixture
def routed(
    servers: tuple[ThrowawayCluster, ThrowawayCluster], django_db_blocker: Any
) -> Iterator[tuple[ThrowawayCluster, ThrowawayCluster]]:
    """The servers, database access allowed, fresh replica health, the replica running and
    replaying (also after a test that paused or stopped it)."""
    primary, replica = servers
    routing.forget_health()
    with django_db_blocker.unblock():
        try:
            yield primary, replica
        finally:
            for alias in ("default", REPLICA):
                connections[alias].close()
            if not replica.is_running():
                replica.start()
            with replica.connect() as conn:
                conn.execute("SELECT pg_wal_replay_resume()")
            routing.forget_health()
