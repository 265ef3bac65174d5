"""Fault-injection fixtures: a throwaway PostgreSQL cluster and a Django alias on it.

`make test-faults` runs these tests (marker `faults`); `make test` leaves them out. The
cluster is created once per session (initdb + migrate, a few seconds), run as an
unprivileged OS user, and stopped and deleted at the end, also when a test fails.
Figures are printed (`pytest -s`) and summed up at the end of the run.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from tests.faults.cluster import (
    ClusterUnavailable,
    ThrowawayCluster,
    register_alias,
    unregister_alias,
)
from tests.faults.figures import FIGURES

ALIAS = "faults"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the fault tests unless asked for (`-m faults`, `make test-faults`): each run
    starts a PostgreSQL cluster, which a plain `pytest` should not do behind one's back."""
    if "faults" in (config.getoption("markexpr") or "") or os.environ.get("FAULTS_REQUIRED"):
        return
    skip = pytest.mark.skip(reason="fault injection: run `make test-faults` (pytest -m faults)")
    for item in items:
        if item.get_closest_marker("faults") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault-injection figures")
    for test, figures in FIGURES.items():
        terminalreporter.write_line(f"{test}:")
        for name, value in figures.items():
            terminalreporter.write_line(f"    {name}: {value}")
    path = os.environ.get("FAULTS_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(FIGURES, handle, indent=2, default=str, sort_keys=True)


@pytest.fixture(scope="session")
def cluster(django_db_blocker: Any) -> Iterator[ThrowawayCluster]:
    """The throwaway cluster, migrated, with alias `faults` registered."""
    try:
        server = ThrowawayCluster.create()
    except ClusterUnavailable as exc:
        if os.environ.get("FAULTS_REQUIRED"):  # `make test-faults`: fail, never skip
            raise
        pytest.skip(f"no throwaway PostgreSQL cluster on this machine: {exc}")
    try:
        register_alias(server, ALIAS)
        with django_db_blocker.unblock():
            call_command("migrate", database=ALIAS, verbosity=0, interactive=False)
            connections[ALIAS].close()
        yield server
    finally:
        try:
            unregister_alias(ALIAS)
        finally:
            server.remove()


@pytest.fixture(autouse=True)
def _quiet_slow_query_log() -> Iterator[None]:
    """Queries stalled by an injected fault are slow on purpose: keep the warnings out."""
    logger = logging.getLogger("repositories.queries")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@pytest.fixture
def faults_db(cluster: ThrowawayCluster, django_db_blocker: Any) -> Iterator[str]:
    """The alias on the throwaway cluster, database access allowed for the test (and the
    threads it starts); the server is up when the test starts and when it ends."""
    if not cluster.is_running():
        cluster.start()
    with django_db_blocker.unblock():
        try:
            yield ALIAS
        finally:
            connections[ALIAS].close()
            if not cluster.is_running():  # a test that crashed it and failed before restarting
                cluster.start()
